"""The endpoint probe against real Postfix and Dovecot servers on loopback.

Every expected fact comes from what the fixtures configured (the generated
certificates, the servers' settings), never from a previous run of the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from exporter.config import DNSSettings, Module, StartTLS, Target, TLSSettings
from exporter.dnsclient import DNSClient
from exporter.probes.endpoint import probe_endpoint
from exporter.results import CertificateInfo, EndpointResult, FailureReason
from tests.realservers import Endpoint

pytestmark = pytest.mark.integration


async def probe(endpoint: Endpoint, starttls: StartTLS | None = None,
                tls: TLSSettings | None = None) -> EndpointResult:
    """Probe `endpoint` as a user would configure it: the test root CA as trust anchor,
    the scenario's expected name, STARTTLS required unless said otherwise."""
    if starttls is None:
        starttls = StartTLS.NONE if endpoint.protocol.implicit_tls else StartTLS.REQUIRED
    if tls is None:
        tls = TLSSettings(ca_file=endpoint.ca_file, server_name=endpoint.server_name)
    module = Module(
        name=endpoint.scenario,
        protocol=endpoint.protocol,
        port=endpoint.port,
        starttls=starttls,
        timeout=10.0,
        interval=300.0,
        tls=tls,
    )
    target = Target(host=endpoint.host, port=endpoint.port, module=module.name)
    return await probe_endpoint(target, module, DNSClient(DNSSettings()))


def keywords(capabilities: tuple[str, ...]) -> set[str]:
    """"AUTH PLAIN LOGIN" -> "AUTH": the capability names without their parameters."""
    return {capability.split(" ", 1)[0] for capability in capabilities}


def assert_describes(info: CertificateInfo, cert: x509.Certificate) -> None:
    """`info` states exactly the facts of the certificate the server was given."""
    assert info.der == cert.public_bytes(serialization.Encoding.DER)
    assert info.subject == cert.subject.rfc4514_string()
    assert info.issuer == cert.issuer.rfc4514_string()
    assert info.serial == format(cert.serial_number, "x")
    assert info.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert info.not_before == cert.not_valid_before_utc.timestamp()
    assert info.not_after == cert.not_valid_after_utc.timestamp()
    assert info.signature_hash == "sha256"


@dataclass(frozen=True)
class Expected:
    chain_valid: bool = True
    hostname_valid: bool = True
    self_signed: bool = False
    key: tuple[str, int] = ("rsa", 2048)
    starttls_offered: bool | None = True        # None: implicit TLS, STARTTLS does not apply
    plaintext_auth_exposed: bool | None = False


TLS_SCENARIOS = {
    "smtp-good": Expected(),
    "submission-good": Expected(),
    "smtps-good": Expected(starttls_offered=None, plaintext_auth_exposed=None),
    "smtp-ecdsa": Expected(key=("ec", 256)),
    "smtp-expired": Expected(chain_valid=False),
    "smtp-mismatch": Expected(hostname_valid=False),
    "smtp-self-signed": Expected(chain_valid=False, self_signed=True),
    "smtp-auth-before-tls": Expected(plaintext_auth_exposed=True),
    "smtp-tls13-only": Expected(),
    "imap-good": Expected(),
    "imaps-good": Expected(starttls_offered=None, plaintext_auth_exposed=None),
    "pop3-good": Expected(),
    "pop3s-good": Expected(starttls_offered=None, plaintext_auth_exposed=None),
    "imap-plaintext-auth": Expected(plaintext_auth_exposed=True),
    "pop3-plaintext-auth": Expected(plaintext_auth_exposed=True),
}


@pytest.mark.parametrize("scenario", TLS_SCENARIOS)
async def test_tls_facts_match_the_served_certificates(mail_endpoints: Mapping[str, Endpoint], scenario: str):
    endpoint, expected = mail_endpoints[scenario], TLS_SCENARIOS[scenario]
    result = await probe(endpoint)

    assert result.success, result.transcript
    assert result.failure is None
    assert result.address == endpoint.host
    assert result.starttls_offered is expected.starttls_offered
    assert result.plaintext_auth_exposed is expected.plaintext_auth_exposed
    assert result.connect_seconds is not None and result.tls_handshake_seconds is not None

    tls = result.tls
    assert tls is not None
    assert tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.cipher
    assert len(tls.chain) == len(endpoint.presented_chain)
    for info, cert in zip(tls.chain, endpoint.presented_chain):
        assert_describes(info, cert)
    assert tls.chain_earliest_not_after == min(c.not_valid_after_utc.timestamp() for c in endpoint.presented_chain)
    assert tls.leaf.sans == tuple(endpoint.leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    assert (tls.leaf.key_type, tls.leaf.key_bits) == expected.key
    assert tls.leaf.self_signed is expected.self_signed
    assert tls.chain_valid is expected.chain_valid
    assert (tls.chain_error is None) is expected.chain_valid
    assert tls.hostname_valid is expected.hostname_valid
    assert tls.verified_name == endpoint.server_name
    assert result.capabilities_after_tls


async def test_good_chain_is_leaf_and_intermediate(mail_endpoints: Mapping[str, Endpoint]):
    endpoint = mail_endpoints["smtp-good"]
    result = await probe(endpoint)
    assert result.tls is not None
    assert len(result.tls.chain) == 2
    assert result.tls.chain[1].der == endpoint.intermediate.public_bytes(serialization.Encoding.DER)
    assert result.tls.chain[1].self_signed is False


@pytest.mark.parametrize(("scenario", "words"), [
    ("smtp-expired", ("expired",)),
    ("smtp-self-signed", ("self", "signed")),
])
async def test_chain_error_says_why(mail_endpoints: Mapping[str, Endpoint], scenario: str, words: tuple[str, ...]):
    result = await probe(mail_endpoints[scenario])
    assert result.tls is not None and result.tls.chain_error is not None
    assert all(word in result.tls.chain_error.lower() for word in words), result.tls.chain_error


async def test_leaf_is_checked_against_the_target_host_when_no_server_name_is_set(
        mail_endpoints: Mapping[str, Endpoint]):
    endpoint = mail_endpoints["smtp-good"]
    result = await probe(endpoint, tls=TLSSettings(ca_file=endpoint.ca_file))
    assert result.success, result.transcript
    assert result.tls is not None
    assert result.tls.verified_name == endpoint.host
    assert result.tls.hostname_valid is False   # the certificate names mail.good.test only
    assert result.tls.chain_valid is True


@pytest.mark.parametrize(("scenario", "before", "after"), [
    # Postfix with smtpd_tls_auth_only: AUTH appears only once TLS is up.
    ("smtp-good", {"STARTTLS"}, {"AUTH"}),
    ("smtp-auth-before-tls", {"STARTTLS", "AUTH"}, {"AUTH"}),
    # Dovecot with disable_plaintext_auth: LOGINDISABLED before TLS, AUTH=PLAIN after.
    ("imap-good", {"STARTTLS", "LOGINDISABLED"}, {"AUTH=PLAIN"}),
    ("pop3-good", {"STLS"}, {"USER"}),
])
async def test_capabilities_are_asked_again_inside_tls(mail_endpoints: Mapping[str, Endpoint],
                                                       scenario: str, before: set[str], after: set[str]):
    result = await probe(mail_endpoints[scenario])
    assert before <= keywords(result.capabilities_before_tls), result.capabilities_before_tls
    assert after <= keywords(result.capabilities_after_tls), result.capabilities_after_tls
    # What is only offered inside TLS must not have been seen outside.
    assert not (after - before) & keywords(result.capabilities_before_tls)
    assert "STARTTLS" not in keywords(result.capabilities_after_tls)
    assert "STLS" not in keywords(result.capabilities_after_tls)


async def test_missing_starttls_fails_when_required(mail_endpoints: Mapping[str, Endpoint]):
    endpoint = mail_endpoints["smtp-no-tls"]
    result = await probe(endpoint, starttls=StartTLS.REQUIRED)
    assert result.success is False
    assert result.failure is FailureReason.STARTTLS_NOT_OFFERED
    assert result.starttls_offered is False
    assert result.plaintext_auth_exposed is False
    assert "STARTTLS" not in keywords(result.capabilities_before_tls)
    assert result.capabilities_before_tls   # the EHLO answer was read before giving up
    assert result.tls is None


async def test_missing_starttls_is_only_reported_when_optional(mail_endpoints: Mapping[str, Endpoint]):
    result = await probe(mail_endpoints["smtp-no-tls"], starttls=StartTLS.OPTIONAL)
    assert result.success, result.transcript
    assert result.starttls_offered is False
    assert result.tls is None


async def test_starttls_none_stays_in_plaintext(mail_endpoints: Mapping[str, Endpoint]):
    result = await probe(mail_endpoints["smtp-good"], starttls=StartTLS.NONE)
    assert result.success, result.transcript
    assert result.starttls_offered is True
    assert result.tls is None
    assert result.capabilities_after_tls == ()


@pytest.mark.parametrize("scenario", ["smtp-good", "smtps-good", "imap-good", "imaps-good", "pop3-good", "pop3s-good"])
@pytest.mark.parametrize("max_version", ["TLSv1.2", "TLSv1.3"])
async def test_negotiated_version_is_reported(mail_endpoints: Mapping[str, Endpoint], scenario: str, max_version: str):
    # Both servers accept TLS 1.2 and 1.3 (OpenSSL 3): the client's ceiling decides.
    endpoint = mail_endpoints[scenario]
    tls = TLSSettings(ca_file=endpoint.ca_file, server_name=endpoint.server_name, max_version=max_version)
    result = await probe(endpoint, tls=tls)
    assert result.success, result.transcript
    assert result.tls is not None and result.tls.version == max_version
    # IANA names ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), never OpenSSL's ("ECDHE-RSA-...").
    assert result.tls.cipher.startswith("TLS_") and "-" not in result.tls.cipher, result.tls.cipher


async def test_handshake_below_the_servers_minimum_fails(mail_endpoints: Mapping[str, Endpoint]):
    # This Postfix listener accepts TLS 1.3 only; the probe is limited to TLS 1.2.
    endpoint = mail_endpoints["smtp-tls13-only"]
    tls = TLSSettings(ca_file=endpoint.ca_file, server_name=endpoint.server_name, max_version="TLSv1.2")
    result = await probe(endpoint, tls=tls)
    assert result.failure is FailureReason.TLS_HANDSHAKE_ERROR, result.transcript
    assert result.starttls_offered is True
    assert result.tls is None
