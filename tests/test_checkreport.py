"""The check report's pure parts: MX endpoint findings and the exit status."""

from __future__ import annotations

from dataclasses import replace

import pytest

from exporter.domains.report import endpoint_findings
from exporter.config import Target
from exporter.results import FailureReason

from results_factory import NOT_AFTER, failed_result, tls_result

TARGET = Target("mx.example.test", 25, "smtp")
DAY = 86400.0


def codes(result, now):
    return {finding.code for finding in endpoint_findings(TARGET, result, now)}


@pytest.mark.parametrize("days_left, expected", [
    (30, set()), (20, {"mx_cert_expiring"}), (6, {"mx_cert_expiring"}), (-1, {"mx_cert_expired"}),
])
def test_certificate_expiry(days_left, expected):
    result = tls_result()
    valid = replace(result, tls=replace(result.tls, chain_valid=True))
    assert codes(valid, NOT_AFTER.timestamp() - days_left * DAY) == expected


def test_invalid_chain_name_mismatch_plaintext_auth_and_old_tls():
    result = tls_result()
    bad = replace(result, plaintext_auth_exposed=True,
                  tls=replace(result.tls, chain_valid=False, hostname_valid=False, version="TLSv1.1"))
    assert codes(bad, NOT_AFTER.timestamp() - 100 * DAY) == {
        "mx_cert_chain_invalid", "mx_cert_name_mismatch", "mx_plaintext_auth", "mx_tls_legacy_version"}


def test_a_failed_probe_is_one_error_with_its_reason():
    findings = endpoint_findings(TARGET, failed_result(FailureReason.STARTTLS_NOT_OFFERED), 0.0)
    assert [f.code for f in findings] == ["mx_tls_starttls_not_offered"]
    assert "STARTTLS" in findings[0].fix
