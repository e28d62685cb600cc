"""evaluate_dane: TLSA records + their DNSSEC status + a presented chain -> DANE outcome."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from exporter.domains.dane import DANEStatus, evaluate_dane
from exporter.domains.dnssec import DNSSECStatus
from exporter.records.tlsa import make_tlsa


def _certificate(name: str, key, issuer_name: str, issuer_key) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def chain() -> list[bytes]:
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", ca_key, "Test CA", ca_key)
    leaf = _certificate("mx.example", leaf_key, "Test CA", ca_key)
    return [leaf, ca]


def _full_cert_sha256(usage: int, cert_der: bytes):
    return make_tlsa(usage, 0, 1, hashlib.sha256(cert_der).digest())


def test_dane_ee_match(chain):
    record = _full_cert_sha256(3, chain[0])
    result = evaluate_dane((record,), DNSSECStatus.SECURE, chain)
    assert result.status is DANEStatus.MATCH and result.matching == (record,)


def test_dane_ta_match_on_the_issuer(chain):
    assert evaluate_dane((_full_cert_sha256(2, chain[1]),), DNSSECStatus.SECURE, chain).status is DANEStatus.MATCH


def test_no_match(chain):
    other = make_tlsa(3, 0, 1, bytes(32))
    assert evaluate_dane((other,), DNSSECStatus.SECURE, chain).status is DANEStatus.NO_MATCH


@pytest.mark.parametrize("dnssec, records, status", [
    (DNSSECStatus.INSECURE, "matching", DANEStatus.INSECURE),   # unvalidated TLSA are ignored
    (DNSSECStatus.BOGUS, "matching", DANEStatus.BOGUS),
    (DNSSECStatus.BOGUS, "none", DANEStatus.BOGUS),
    (DNSSECStatus.SECURE, "none", DANEStatus.NO_RECORDS),
    (DNSSECStatus.SECURE, "pkix", DANEStatus.UNUSABLE),          # PKIX-EE matches the leaf but is unusable for SMTP
])
def test_status_from_dnssec_and_usability(chain, dnssec, records, status):
    by_kind = {
        "matching": (_full_cert_sha256(3, chain[0]),),
        "none": (),
        "pkix": (_full_cert_sha256(1, chain[0]),),
    }
    assert evaluate_dane(by_kind[records], dnssec, chain).status is status


# --- without a chain, and the name of the leaf -----------------------------------------

def test_without_a_chain_only_the_chain_independent_outcomes_are_known(chain):
    usable = (_full_cert_sha256(3, chain[0]),)
    assert evaluate_dane(usable, DNSSECStatus.SECURE, None) is None          # not evaluated
    assert evaluate_dane(usable, DNSSECStatus.INSECURE, None).status is DANEStatus.INSECURE
    assert evaluate_dane((), DNSSECStatus.SECURE, None).status is DANEStatus.NO_RECORDS


@pytest.mark.parametrize("usage, reference_name, status", [
    (2, "mx.example", DANEStatus.MATCH),
    (2, "other.example", DANEStatus.NO_MATCH),   # DANE-TA: the leaf must name the MX host
    (3, "other.example", DANEStatus.MATCH),      # DANE-EE: names are ignored
])
def test_dane_ta_needs_the_mx_name_in_the_leaf(usage, reference_name, status):
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", ca_key, "Test CA", ca_key)
    leaf = x509.load_der_x509_certificate(_certificate("mx.example", leaf_key, "Test CA", ca_key))
    # The same leaf with a subjectAltName (names are matched in the SAN only).
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf_der = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
                .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("mx.example")]), critical=False)
                .sign(ca_key, hashes.SHA256()).public_bytes(Encoding.DER))
    record = _full_cert_sha256(usage, ca if usage == 2 else leaf_der)
    assert evaluate_dane((record,), DNSSECStatus.SECURE, [leaf_der, ca], reference_name).status is status
