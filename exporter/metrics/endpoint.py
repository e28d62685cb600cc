"""The metric families of an endpoint probe result, and its samples.

Nothing here is a global metric object: samples are built from the immutable results
(once per result for /metrics, see exposition.py; per request for /probe). Every family is
declared once in a `MetricSpec` table, which `docs/metrics.md` must match (a test keeps the
two in step). The domain and deep-scan families live beside their checks, in
domain_metrics.py and tlsscan_metrics.py.
"""

from __future__ import annotations

from typing import Callable

from ..config import Target
from .specs import Families, MetricSpec, subject_labels
from ..results import CAPABILITIES_BY_FAMILY, AuthMechanism, EndpointResult, OfferedCapabilities, TLSPhase


ENDPOINT_METRICS = (
    MetricSpec("mailsec_probe_success", "1 if the last probe of the endpoint completed its dialogue and TLS handshake, else 0."),
    MetricSpec("mailsec_probe_failure_info", "Why the last probe failed; present only while it fails.", ("reason",)),
    MetricSpec("mailsec_probe_duration_seconds", "How long the last probe took."),
    MetricSpec("mailsec_probe_phase_duration_seconds", "How long each phase of the last probe took.", ("phase",)),
    MetricSpec("mailsec_probe_last_run_timestamp_seconds", "When the last probe started."),
    MetricSpec("mailsec_probe_interval_seconds", "How often the exporter probes the endpoint (its module's interval); absent from /probe."),
    MetricSpec("mailsec_starttls_offered", "1 if the server advertised STARTTLS (STLS for POP3) before TLS; absent for implicit TLS."),
    MetricSpec("mailsec_plaintext_auth_exposed", "1 if the server offered password authentication before TLS."),
    MetricSpec("mailsec_starttls_enforced", "1 if the server refuses mail and logins before STARTTLS, 0 if it accepts either; absent where not determined.", ("protocol",)),
    MetricSpec("mailsec_capability_offered", "1 if the server advertised the capability (SMTP extension, IMAP or POP3 capability) in that phase, 0 if not; a closed list per protocol.", ("capability", "phase")),
    MetricSpec("mailsec_auth_mechanism_offered", "1 if the server offered the SASL mechanism in that phase, 0 if not; a closed list.", ("mechanism", "phase")),
    MetricSpec("mailsec_capabilities_unknown", "How many distinct capabilities and SASL mechanisms outside the closed lists the server advertised in that phase.", ("phase",)),
    MetricSpec("mailsec_name_mismatch", "1 if the two names of the pair disagree (greeting, EHLO reply, forward-confirmed PTR, certificate), 0 if they agree; SMTP only.", ("pair",)),
    MetricSpec("mailsec_open_relay", "1 if the server accepted the configured outside canary recipient (an open relay from the exporter's vantage point), 0 if it refused; only with open_relay_test."),
    MetricSpec("mailsec_tls_version_info", "The TLS version negotiated by the last probe.", ("version",)),
    MetricSpec("mailsec_tls_cipher_info", "The cipher suite negotiated by the last probe.", ("cipher",)),
    MetricSpec("mailsec_cert_not_before_timestamp_seconds", "The leaf certificate's notBefore."),
    MetricSpec("mailsec_cert_not_after_timestamp_seconds", "The leaf certificate's notAfter."),
    MetricSpec("mailsec_cert_chain_earliest_expiry_timestamp_seconds", "The earliest notAfter among the certificates the server presented."),
    MetricSpec("mailsec_cert_chain_certificates", "How many certificates the server presented."),
    MetricSpec("mailsec_cert_chain_valid", "1 if the presented chain verifies against the trust store (system or the module's ca_file)."),
    MetricSpec("mailsec_cert_hostname_valid", "1 if the leaf certificate is valid for the checked name (RFC 6125)."),
    MetricSpec("mailsec_cert_self_signed", "1 if the leaf certificate is self-signed."),
    MetricSpec("mailsec_cert_key_size", "Size of the leaf certificate's public key.", ("key_type",)),
    MetricSpec(
        "mailsec_cert_info",
        "Text facts of the leaf certificate; always 1.",
        ("subject", "issuer", "serial", "fingerprint_sha256", "sans", "signature_hash"),
    ),
)

_Add = Callable[..., None]   # add(name, value, **extra_labels), as in add_endpoint_samples

# Phases reported by mailsec_probe_phase_duration_seconds, in dialogue order.
PHASES = ("connect", "greeting", "tls_handshake")

# SAN lists can be long (hundreds of names on shared hosting): cap the label value.
_MAX_SANS_LABEL = 1024


def add_endpoint_samples(families: Families, target: Target, result: EndpointResult) -> None:
    """Add the samples of one endpoint's latest result."""
    base = subject_labels(target)

    def add(name: str, value: float, **extra: str) -> None:
        families.add(name, {**base, **extra} if extra else base, value)

    add("mailsec_probe_success", 1.0 if result.success else 0.0)
    if result.failure is not None:
        add("mailsec_probe_failure_info", 1.0, reason=result.failure.value)
    add("mailsec_probe_duration_seconds", result.duration_seconds)
    add("mailsec_probe_last_run_timestamp_seconds", result.observed_at)
    if result.interval_seconds is not None:
        add("mailsec_probe_interval_seconds", result.interval_seconds)
    phase_seconds = (result.connect_seconds, result.greeting_seconds, result.tls_handshake_seconds)
    for phase, seconds in zip(PHASES, phase_seconds):
        if seconds is not None:
            add("mailsec_probe_phase_duration_seconds", seconds, phase=phase)
    if result.starttls_offered is not None:
        add("mailsec_starttls_offered", float(result.starttls_offered))
    if result.plaintext_auth_exposed is not None:
        add("mailsec_plaintext_auth_exposed", float(result.plaintext_auth_exposed))
    _add_policy_samples(add, result)

    tls = result.tls
    if tls is None or not tls.chain:
        return
    leaf = tls.leaf
    add("mailsec_tls_version_info", 1.0, version=tls.version)
    add("mailsec_tls_cipher_info", 1.0, cipher=tls.cipher)
    add("mailsec_cert_not_before_timestamp_seconds", leaf.not_before)
    add("mailsec_cert_not_after_timestamp_seconds", leaf.not_after)
    add("mailsec_cert_chain_earliest_expiry_timestamp_seconds", tls.chain_earliest_not_after)
    add("mailsec_cert_chain_certificates", float(len(tls.chain)))
    add("mailsec_cert_chain_valid", float(tls.chain_valid))
    add("mailsec_cert_hostname_valid", float(tls.hostname_valid))
    add("mailsec_cert_self_signed", float(leaf.self_signed))
    add("mailsec_cert_key_size", float(leaf.key_bits), key_type=leaf.key_type)
    add(
        "mailsec_cert_info",
        1.0,
        subject=leaf.subject,
        issuer=leaf.issuer,
        serial=leaf.serial,
        fingerprint_sha256=leaf.fingerprint_sha256,
        sans=",".join(leaf.sans)[:_MAX_SANS_LABEL],
        signature_hash=leaf.signature_hash or "",
    )


def _add_offered(add: _Add, phase: TLSPhase, offered: OfferedCapabilities) -> None:
    """0/1 over the closed lists (so that "not offered" is a sample, not an absence)."""
    for capability in CAPABILITIES_BY_FAMILY[offered.family]:
        add("mailsec_capability_offered", float(capability in offered.capabilities),
            capability=capability.value, phase=phase.value)
    for mechanism in AuthMechanism:
        add("mailsec_auth_mechanism_offered", float(mechanism in offered.auth_mechanisms),
            mechanism=mechanism.value, phase=phase.value)
    add("mailsec_capabilities_unknown", float(offered.unknown), phase=phase.value)


def _add_policy_samples(add: _Add, result: EndpointResult) -> None:
    if result.starttls_enforced is not None and result.protocol is not None:
        add("mailsec_starttls_enforced", float(result.starttls_enforced), protocol=result.protocol.value)
    for phase, offered in ((TLSPhase.BEFORE_TLS, result.offered_before_tls),
                           (TLSPhase.AFTER_TLS, result.offered_after_tls)):
        if offered is not None:
            _add_offered(add, phase, offered)
    if result.names is not None:
        for pair in sorted(result.names.compared):
            add("mailsec_name_mismatch", float(pair in result.names.disagreeing), pair=pair.value)
    if result.open_relay is not None:
        add("mailsec_open_relay", float(result.open_relay))
