"""The whole exporter against real Postfix and Dovecot: what /metrics says equals what
the test servers were set up with."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import hashes

from exporter_process import ExporterProcess, sample_value
from mail_config import config_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scraped(mail_endpoints, tmp_path_factory):
    """The exporter's samples once every configured endpoint has been probed once."""
    config = tmp_path_factory.mktemp("e2e") / "config.yml"
    config.write_text(config_for(mail_endpoints))
    exporter = ExporterProcess(config)
    try:
        samples = exporter.wait_for(
            lambda s: len([x for x in s if x.name == "mailsec_probe_success"]) == len(mail_endpoints) and s,
            timeout=60,
        )
        yield exporter, samples
    finally:
        exporter.stop()


def metric(samples, name, scenario, **labels):
    return sample_value(samples, name, scenario=scenario, **labels)


IANA_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

GOOD = ["smtp-good", "submission-good", "smtps-good", "smtp-ecdsa", "imap-good", "imaps-good", "pop3-good", "pop3s-good"]


@pytest.mark.parametrize("scenario", GOOD)
def test_good_endpoints_report_their_real_certificate(scraped, mail_endpoints, scenario):
    _, samples = scraped
    endpoint = mail_endpoints[scenario]
    leaf = endpoint.leaf
    chain = endpoint.presented_chain
    assert metric(samples, "mailsec_probe_success", scenario) == 1
    assert metric(samples, "mailsec_cert_not_after_timestamp_seconds", scenario) == leaf.not_valid_after_utc.timestamp()
    assert metric(samples, "mailsec_cert_not_before_timestamp_seconds", scenario) == leaf.not_valid_before_utc.timestamp()
    assert metric(samples, "mailsec_cert_chain_earliest_expiry_timestamp_seconds", scenario) == min(
        cert.not_valid_after_utc.timestamp() for cert in chain
    )
    assert metric(samples, "mailsec_cert_chain_certificates", scenario) == len(chain)
    assert metric(samples, "mailsec_cert_chain_valid", scenario) == 1
    assert metric(samples, "mailsec_cert_hostname_valid", scenario) == 1
    assert metric(samples, "mailsec_cert_self_signed", scenario) == 0
    key_type = "ec" if scenario == "smtp-ecdsa" else "rsa"
    assert metric(samples, "mailsec_cert_key_size", scenario, key_type=key_type) == leaf.public_key().key_size
    info = [s for s in samples if s.name == "mailsec_cert_info" and s.labels["scenario"] == scenario]
    assert len(info) == 1
    assert info[0].labels["serial"] == format(leaf.serial_number, "x")
    assert info[0].labels["fingerprint_sha256"] == leaf.fingerprint(hashes.SHA256()).hex()
    assert info[0].labels["subject"] == leaf.subject.rfc4514_string()
    assert metric(samples, "mailsec_tls_version_info", scenario, version="TLSv1.3") == 1
    ciphers = [s.labels["cipher"] for s in samples if s.name == "mailsec_tls_cipher_info" and s.labels["scenario"] == scenario]
    assert len(ciphers) == 1 and ciphers[0] in IANA_TLS13_SUITES   # IANA names, not OpenSSL's
    if endpoint.protocol.implicit_tls:
        assert metric(samples, "mailsec_starttls_offered", scenario) is None
    else:
        assert metric(samples, "mailsec_starttls_offered", scenario) == 1
        assert metric(samples, "mailsec_plaintext_auth_exposed", scenario) == 0


def test_expired_certificate(scraped, mail_endpoints):
    _, samples = scraped
    assert metric(samples, "mailsec_probe_success", "smtp-expired") == 1
    assert metric(samples, "mailsec_cert_chain_valid", "smtp-expired") == 0
    not_after = metric(samples, "mailsec_cert_not_after_timestamp_seconds", "smtp-expired")
    assert not_after == mail_endpoints["smtp-expired"].leaf.not_valid_after_utc.timestamp() < time.time()


def test_name_mismatch(scraped):
    _, samples = scraped
    assert metric(samples, "mailsec_cert_hostname_valid", "smtp-mismatch") == 0
    assert metric(samples, "mailsec_cert_chain_valid", "smtp-mismatch") == 1


def test_self_signed(scraped):
    _, samples = scraped
    assert metric(samples, "mailsec_cert_self_signed", "smtp-self-signed") == 1
    assert metric(samples, "mailsec_cert_chain_valid", "smtp-self-signed") == 0


def test_no_tls_fails_with_starttls_not_offered(scraped):
    _, samples = scraped
    assert metric(samples, "mailsec_probe_success", "smtp-no-tls") == 0
    assert metric(samples, "mailsec_probe_failure_info", "smtp-no-tls", reason="starttls_not_offered") == 1
    assert metric(samples, "mailsec_starttls_offered", "smtp-no-tls") == 0
    assert metric(samples, "mailsec_cert_not_after_timestamp_seconds", "smtp-no-tls") is None


@pytest.mark.parametrize("scenario", ["smtp-auth-before-tls", "imap-plaintext-auth", "pop3-plaintext-auth"])
def test_plaintext_auth_exposed(scraped, scenario):
    _, samples = scraped
    assert metric(samples, "mailsec_plaintext_auth_exposed", scenario) == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_real_scrape(scraped):
    exporter, _ = scraped
    run = subprocess.run(["promtool", "check", "metrics"], input=exporter.scrape(),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not (run.stdout + run.stderr).strip(), run.stdout + run.stderr
