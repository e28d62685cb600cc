"""The metric families of the revocation checks of a target's presented certificates.

Each check is one certificate of one address's chain (`chain_position`: 0 the leaf) by one
method (`ocsp`, `crl`). Separate from `mailsec_probe_success`: a CA server that does not
answer says nothing about the mail server.
"""

from __future__ import annotations

from ..config import Target
from ..results import AddressFamily
from ..revocation.results import RevocationResult, RevocationStatus
from .specs import Families, MetricSpec, subject_labels

_LABELS = ("address", "family", "chain_position", "method")

REVOCATION_METRICS = (
    MetricSpec("mailsec_cert_revoked", "1 if the certificate's issuer says it is revoked, 0 if it says it is not; absent without a verdict.", _LABELS),
    MetricSpec("mailsec_cert_revocation_check_success", "1 if the revocation check by this method reached a verdict (a verified, current answer), else 0.", _LABELS),
    MetricSpec("mailsec_cert_revocation_failure_info", "Why the revocation check by this method reached no verdict; present only while it fails.", _LABELS + ("reason",)),
    MetricSpec("mailsec_cert_revocation_next_update_timestamp_seconds", "The nextUpdate of the OCSP response or CRL the verdict comes from; absent when it has none.", _LABELS),
    MetricSpec("mailsec_cert_revocation_fetched_timestamp_seconds", "When the answer the verdict comes from was fetched (answers are cached until their nextUpdate, within bounds).", _LABELS),
)


def add_revocation_samples(families: Families, target: Target, result: RevocationResult) -> None:
    base = subject_labels(target)
    for check in result.checks:
        labels = {**base, "address": check.address, "family": AddressFamily.of(check.address).value,
                  "chain_position": str(check.position), "method": check.method.value}
        verdict = check.verdict
        if verdict.status is not None:
            families.add("mailsec_cert_revoked", labels, float(verdict.status is RevocationStatus.REVOKED))
        families.add("mailsec_cert_revocation_check_success", labels, float(verdict.failure is None))
        if verdict.failure is not None:
            families.add("mailsec_cert_revocation_failure_info", {**labels, "reason": verdict.failure.value}, 1.0)
        if verdict.next_update is not None:
            families.add("mailsec_cert_revocation_next_update_timestamp_seconds", labels, verdict.next_update)
        families.add("mailsec_cert_revocation_fetched_timestamp_seconds", labels, check.fetched_at)
