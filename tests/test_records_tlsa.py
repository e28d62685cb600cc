import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.tlsa import (
    MatchingType,
    Selector,
    TLSAError,
    TLSARecord,
    Usage,
    make_tlsa,
    parse_tlsa,
    subject_public_key_info,
    tlsa_matches,
)

NOW = datetime.datetime.now(datetime.timezone.utc)


def _certificate(name, key, issuer_name=None, issuer_key=None, *, days=30, ca=False):
    issuer_name = issuer_name or name
    issuer_key = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=60))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


class Chain:
    """root -> intermediate -> leaf, plus an unrelated leaf with the same issuer name."""

    def __init__(self):
        root_key = ec.generate_private_key(ec.SECP256R1())
        inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf_key = ed25519.Ed25519PrivateKey.generate()
        other_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _certificate("Test Root", root_key, ca=True)
        self.inter = _certificate("Test Intermediate", inter_key, "Test Root", root_key, ca=True)
        self.leaf = _certificate("mx.example.com", leaf_key, "Test Intermediate", inter_key)
        # Claims the intermediate as issuer but is signed by another key.
        self.forged_leaf = _certificate("mx.example.com", leaf_key, "Test Intermediate", other_key)
        # Expired, and for another name: DANE-EE does not care.
        self.expired_leaf = _certificate("other.example", leaf_key, "Test Intermediate",
                                         inter_key, days=-1)

    def der(self, *names):
        return [getattr(self, name).public_bytes(Encoding.DER) for name in names]


@pytest.fixture(scope="module")
def chain():
    return Chain()


def _association(cert, selector, matching_type):
    """Computed independently of the module: cryptography's encodings and hashlib."""
    if selector == 0:
        data = cert.public_bytes(Encoding.DER)
    else:
        data = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}[
        matching_type]


def _record(usage, selector, matching_type, cert):
    return make_tlsa(usage, selector, matching_type, _association(cert, selector, matching_type))


SHA256_HEX = "ab" * 32


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"3 1 1 {SHA256_HEX}", (Usage.DANE_EE, Selector.SPKI, MatchingType.SHA256)),
        (f"2 0 2 {'CD' * 64}", (Usage.DANE_TA, Selector.CERT, MatchingType.SHA512)),
        (f"3 1 1 {SHA256_HEX[:20]} {SHA256_HEX[20:]}", (Usage.DANE_EE, Selector.SPKI,
                                                         MatchingType.SHA256)),
        (f"  0 0 1\t{SHA256_HEX}\n", (Usage.PKIX_TA, Selector.CERT, MatchingType.SHA256)),
        ("3 1 0 3059301306", (Usage.DANE_EE, Selector.SPKI, MatchingType.FULL)),
    ],
)
def test_parse_presentation_format(text, expected):
    record = parse_tlsa(text)
    assert (record.usage, record.selector, record.matching_type) == expected
    assert record.data == bytes.fromhex("".join(text.split()[3:]))
    assert parse_tlsa(record.to_text()) == record


@pytest.mark.parametrize(
    "text, message",
    [
        (f"4 1 1 {SHA256_HEX}", "unsupported parameters"),
        (f"3 2 1 {SHA256_HEX}", "unsupported parameters"),
        (f"3 1 3 {SHA256_HEX}", "unsupported parameters"),
        (f"256 1 1 {SHA256_HEX}", "not an integer 0-255"),
        (f"-1 1 1 {SHA256_HEX}", "not an integer 0-255"),
        (f"x 1 1 {SHA256_HEX}", "not an integer 0-255"),
        (f"3 1 1 {SHA256_HEX[:-2]}", "SHA256 digest is 32 bytes"),
        (f"3 1 1 {SHA256_HEX}00", "SHA256 digest is 32 bytes"),
        (f"3 1 2 {SHA256_HEX}", "SHA512 digest is 64 bytes"),
        (f"3 1 1 {SHA256_HEX[:-1]}", "not hex"),
        ("3 1 1 zz", "not hex"),
        ("3 1 1", "expected"),
        ("", "expected"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(TLSAError, match=message):
        parse_tlsa(text)


def test_make_tlsa_from_fields():
    record = make_tlsa(3, 1, 1, bytes(32))
    assert record == TLSARecord(Usage.DANE_EE, Selector.SPKI, MatchingType.SHA256, bytes(32))
    with pytest.raises(TLSAError, match="empty"):
        make_tlsa(3, 1, 0, b"")


@pytest.mark.parametrize("usage, usable", [(0, False), (1, False), (2, True), (3, True)])
def test_usable_for_smtp(usage, usable):
    record = make_tlsa(usage, 1, 1, bytes(32))
    assert record.usable_for_smtp is usable
    assert (record.smtp_unusable_reason is None) is usable
    if not usable:
        assert "unusable for SMTP" in record.smtp_unusable_reason


@pytest.mark.parametrize("name", ["root", "inter", "leaf"])
def test_subject_public_key_info_is_the_certificates_own(chain, name):
    cert = getattr(chain, name)
    expected = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert subject_public_key_info(cert.public_bytes(Encoding.DER)) == expected


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x82\xff\xff\x30", b"\x30\x03\x02\x01\x01"])
def test_subject_public_key_info_of_garbage(data):
    with pytest.raises(TLSAError):
        subject_public_key_info(data)


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matching_type", [0, 1, 2])
def test_dane_ee_matches_the_leaf_only(chain, selector, matching_type):
    record = _record(3, selector, matching_type, chain.leaf)
    assert tlsa_matches(record, chain.der("leaf", "inter", "root"))
    assert tlsa_matches(record, chain.der("leaf"))
    assert not tlsa_matches(record, chain.der("inter", "leaf"))
    on_intermediate = _record(3, selector, matching_type, chain.inter)
    assert not tlsa_matches(on_intermediate, chain.der("leaf", "inter", "root"))


def test_dane_ee_ignores_expiry_and_names(chain):
    record = _record(3, 1, 1, chain.leaf)   # same key as the expired leaf
    assert tlsa_matches(record, chain.der("expired_leaf"))
    assert not tlsa_matches(_record(3, 0, 1, chain.leaf), chain.der("expired_leaf"))


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matching_type", [0, 1, 2])
@pytest.mark.parametrize("anchor", ["root", "inter"])
def test_dane_ta_matches_an_issuer_in_the_chain(chain, selector, matching_type, anchor):
    record = _record(2, selector, matching_type, getattr(chain, anchor))
    assert tlsa_matches(record, chain.der("leaf", "inter", "root"))


def test_dane_ta_rules(chain):
    root_ta = _record(2, 0, 1, chain.root)
    inter_ta = _record(2, 1, 1, chain.inter)
    assert tlsa_matches(inter_ta, chain.der("leaf", "inter"))
    assert not tlsa_matches(root_ta, chain.der("leaf", "inter"))        # TA not presented
    assert not tlsa_matches(inter_ta, chain.der("forged_leaf", "inter", "root"))  # bad signature
    assert not tlsa_matches(root_ta, chain.der("leaf", "root", "inter"))  # broken order
    assert not tlsa_matches(_record(2, 1, 1, chain.leaf), chain.der("leaf", "inter"))  # leaf


def test_pkix_usages_never_match(chain):
    for usage, cert in ((0, chain.root), (1, chain.leaf)):
        record = _record(usage, 1, 1, cert)
        assert not tlsa_matches(record, chain.der("leaf", "inter", "root"))


def test_empty_and_malformed_chains(chain):
    record = _record(3, 1, 1, chain.leaf)
    assert not tlsa_matches(record, [])
    assert not tlsa_matches(record, [b"not a certificate"])
    assert not tlsa_matches(_record(2, 1, 1, chain.inter), chain.der("leaf") + [b"\x30\x00"])


@given(st.text())
def test_any_text_gives_a_record_or_tlsa_error(text):
    try:
        record = parse_tlsa(text)
    except TLSAError:
        return
    assert record.data


@given(st.lists(st.binary(max_size=64), max_size=3),
       st.sampled_from([(3, 1, 1), (3, 0, 0), (2, 1, 2), (2, 0, 0)]))
def test_matching_garbage_never_raises(chain_der, params):
    usage, selector, matching_type = params
    data = bytes(64 if matching_type == 2 else 32)
    assert tlsa_matches(make_tlsa(usage, selector, matching_type, data), chain_der) in (True, False)


def test_long_numbers_are_errors():
    with pytest.raises(TLSAError, match="0-255"):
        parse_tlsa(f"{'3' * 5000} 1 1 {SHA256_HEX}")
