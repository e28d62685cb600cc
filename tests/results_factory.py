"""Builds realistic results for tests of the collector, the store and the web side.

The certificate facts come from a real certificate generated here, through the same
`certificate_info` the probe uses, so the numbers are those a probe would report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.certs import certificate_info
from exporter.config import MailProtocol
from exporter.probes.names import compare_names
from exporter.probes.policy import classify_capabilities
from exporter.results import EndpointResult, FailureReason, HostResult, TLSFacts
from exporter.revocation.results import (
    CertificateCheck,
    RevocationFailure,
    RevocationMethod,
    RevocationResult,
    RevocationStatus,
    Verdict,
    failed,
)

NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)


def self_signed_der(name: str = "mail.example.test") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def tls_result(observed_at: float = 1_780_000_000.0) -> EndpointResult:
    leaf = certificate_info(self_signed_der())
    tls = TLSFacts(
        version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        chain=(leaf,),
        chain_valid=False,
        chain_error="self-signed certificate",
        hostname_valid=True,
        verified_name="mail.example.test",
    )
    return EndpointResult(
        success=True,
        failure=None,
        failure_detail="",
        observed_at=observed_at,
        duration_seconds=0.25,
        address="127.0.0.1",
        starttls_offered=True,
        plaintext_auth_exposed=False,
        tls=tls,
        connect_seconds=0.001,
        greeting_seconds=0.01,
        tls_handshake_seconds=0.02,
        protocol=MailProtocol.SMTP,
        starttls_enforced=False,
        offered_before_tls=classify_capabilities("smtp", ("PIPELINING", "SIZE 10240000", "STARTTLS", "XFOO")),
        offered_after_tls=classify_capabilities("smtp", ("PIPELINING", "AUTH PLAIN LOGIN", "REQUIRETLS")),
        # Greeting, EHLO reply and certificate agree (the PTR was not looked up).
        names=compare_names("mail.example.test ESMTP", "mail.example.test", None, leaf),
        open_relay=False,
    )


def failed_result(reason: FailureReason = FailureReason.CONNECTION_REFUSED) -> EndpointResult:
    return EndpointResult(
        success=False,
        failure=reason,
        failure_detail="test",
        observed_at=1_780_000_000.0,
        duration_seconds=0.01,
    )


def host_result(*addresses: EndpointResult, **fields) -> HostResult:
    """A host probe made of these address results (an address result without an address
    is given 127.0.0.1), timed as its first one."""
    addresses = tuple(result if result.address else replace(result, address="127.0.0.1") for result in addresses)
    first = addresses[0]
    return HostResult(observed_at=first.observed_at, duration_seconds=first.duration_seconds,
                      addresses=addresses, **fields)


def revocation_result(detail: str = "no answer") -> RevocationResult:
    """A revoked leaf (by OCSP) whose CRL could not be fetched (with `detail`)."""
    revoked = Verdict(RevocationStatus.REVOKED, None, "revoked", 1_780_000_000.0, 1_780_300_000.0, 1_779_000_000.0,
                      "key_compromise")
    return RevocationResult(1_780_000_000.0, 0.2, (
        CertificateCheck("127.0.0.1", 0, RevocationMethod.OCSP, "http://ocsp.ca.test/", "CN=mail.example.test",
                         "1234abcd", revoked, 1_780_000_000.0),
        CertificateCheck("127.0.0.1", 0, RevocationMethod.CRL, "http://crl.ca.test/ca.crl", "CN=mail.example.test",
                         "1234abcd", failed(RevocationFailure.TIMEOUT, detail), 1_780_000_000.0),
    ))
