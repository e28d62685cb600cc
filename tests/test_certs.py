"""Certificate facts, OpenSSL chain verification and RFC 6125/9525 name matching."""

from __future__ import annotations

import datetime
import hashlib
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.certs import certificate_info, dns_name_matches, hostname_matches, verify_chain
from tests.hostile import issue, write_pem

NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module")
def pki():
    root = issue("Test Root CA", is_ca=True, not_after=NOW + datetime.timedelta(days=3650))
    intermediate = issue("Test Intermediate CA", issuer=root, is_ca=True)
    leaf = issue("mx.example.test", issuer=intermediate, dns_names=("mx.example.test", "*.mail.example.test"),
                 ip_addresses=("192.0.2.25", "2001:db8::25"))
    return root, intermediate, leaf


def test_certificate_info_of_a_leaf(pki):
    _, intermediate, leaf = pki
    info = certificate_info(leaf.der)
    assert info.der == leaf.der
    assert info.subject == "CN=mx.example.test"
    assert info.issuer == "CN=Test Intermediate CA"
    assert info.serial == format(leaf.cert.serial_number, "x")
    assert info.fingerprint_sha256 == hashlib.sha256(leaf.der).hexdigest()
    assert info.sans == ("mx.example.test", "*.mail.example.test", "192.0.2.25", "2001:db8::25")
    assert info.not_before == leaf.cert.not_valid_before_utc.timestamp()
    assert info.not_after == leaf.cert.not_valid_after_utc.timestamp()
    assert (info.key_type, info.key_bits, info.signature_hash) == ("ec", 256, "sha256")
    assert info.self_signed is False


def test_a_root_is_self_signed_but_a_name_twin_is_not(pki):
    root, _, _ = pki
    assert certificate_info(root.der).self_signed is True
    # Same subject and issuer, but signed by another key: it only looks self-signed.
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor = issue("Test Root CA", issuer=root, key=impostor_key)
    assert certificate_info(impostor.der).subject == certificate_info(impostor.der).issuer
    assert certificate_info(impostor.der).self_signed is False


@pytest.mark.parametrize(
    "make_key, key_type, key_bits, signature_hash",
    [
        (lambda: rsa.generate_private_key(65537, 2048), "rsa", 2048, "sha256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ec", 384, "sha256"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "ed25519", 256, None),
        (lambda: ed448.Ed448PrivateKey.generate(), "ed448", 456, None),
        (lambda: dsa.generate_private_key(2048), "dsa", 2048, "sha256"),
    ],
)
def test_key_types_and_sizes(make_key, key_type, key_bits, signature_hash):
    info = certificate_info(issue("k.test", key=make_key()).der)
    assert (info.key_type, info.key_bits, info.signature_hash, info.self_signed) == (
        key_type, key_bits, signature_hash, True,
    )


def test_unparsable_der_is_a_value_error():
    with pytest.raises(ValueError):
        certificate_info(b"\x30\x03\x02\x01\x00")


def _unix(moment: datetime.datetime) -> float:
    return moment.timestamp()


@pytest.mark.parametrize(
    "case, expected_error",   # OpenSSL's message; some versions append a hint, hence startswith
    [
        ("complete chain", None),
        ("leaf only, intermediate missing", "unable to get local issuer certificate"),
        ("expired", "certificate has expired"),
        ("not yet valid", "certificate is not yet valid"),
        ("self-signed leaf", "self-signed certificate"),
        ("client-only key usage", "unsuitable certificate purpose"),
    ],
)
def test_verify_chain(pki, tmp_path, case, expected_error):
    root, intermediate, leaf = pki
    ca_file = write_pem(str(tmp_path), "root.pem", root)
    chain, at = [leaf.der, intermediate.der], time.time()
    if case == "leaf only, intermediate missing":
        chain = [leaf.der]
    elif case == "expired":
        at = _unix(leaf.cert.not_valid_after_utc + datetime.timedelta(days=1))
    elif case == "not yet valid":
        at = _unix(leaf.cert.not_valid_before_utc - datetime.timedelta(days=1))
    elif case == "self-signed leaf":
        chain = [issue("mx.example.test", dns_names=("mx.example.test",)).der]
    elif case == "client-only key usage":
        client = issue("mx.example.test", issuer=intermediate, extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        chain = [client.der, intermediate.der]
    error = verify_chain(chain, ca_file, at)
    if expected_error is None:
        assert error is None
    else:
        assert error is not None and error.startswith(expected_error)


def test_verify_chain_uses_the_system_store_without_a_ca_file(pki):
    _, intermediate, leaf = pki
    assert verify_chain([leaf.der, intermediate.der], None, time.time()) == "unable to get local issuer certificate"


def test_verify_chain_without_certificates():
    assert verify_chain([], None, time.time()) == "no certificate presented"


@pytest.mark.parametrize(
    "pattern, name, matches",
    [
        ("mx.example.com", "mx.example.com", True),
        ("MX.Example.COM", "mx.example.com", True),
        ("mx.example.com.", "mx.example.com", True),
        ("mx.example.com", "mx.example.com.", True),
        ("mx.example.com", "mx2.example.com", False),
        ("mx.example.com", "example.com", False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "A.EXAMPLE.COM", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.com", "example.com", False),
        ("f*.example.com", "foo.example.com", False),
        ("*oo.example.com", "foo.example.com", False),
        ("a.*.example.com", "a.b.example.com", False),
        ("*", "localhost", False),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", True),
        ("xn--bcher-kva.example", "bücher.example", False),
        ("mx..example.com", "mx..example.com", False),
    ],
)
def test_dns_name_matches(pattern, name, matches):
    assert dns_name_matches(pattern, name) is matches


@pytest.mark.parametrize(
    "name, matches",
    [
        ("mx.example.test", True),
        ("imap.mail.example.test", True),
        ("mail.example.test", False),
        ("192.0.2.25", True),
        ("2001:db8::25", True),
        ("2001:DB8:0:0::25", True),
        ("192.0.2.26", False),
    ],
)
def test_hostname_matches_subject_alt_names(pki, name, matches):
    _, _, leaf = pki
    assert hostname_matches(certificate_info(leaf.der), name) is matches
    assert hostname_matches(leaf.cert, name) is matches


def test_no_fallback_to_the_common_name():
    cert = issue("mx.example.test")   # no subjectAltName at all
    assert hostname_matches(certificate_info(cert.der), "mx.example.test") is False


def test_an_ip_address_only_matches_ip_entries():
    cert = issue("x", dns_names=("192.0.2.25",))   # an IP written as a dNSName does not count
    assert hostname_matches(cert.cert, "192.0.2.25") is False
