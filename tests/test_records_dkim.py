import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.dkim import DKIMError, parse_dkim_key

# RFC 6376 Appendix C (1024-bit RSA) and RFC 8463 Appendix A (Ed25519, brisbane._domainkey).
RFC_6376_KEY = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCK"
    "G9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwG"
    "jaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"
)
RFC_8463_ED25519 = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def rsa_2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def test_rfc_6376_rsa_key():
    key = parse_dkim_key(f"v=DKIM1; p={RFC_6376_KEY}")
    assert (key.key_type, key.key_bits, key.revoked) == ("rsa", 1024, False)
    assert [w.code for w in key.warnings] == ["rsa_key_short"]
    assert key.public_key == base64.b64decode(RFC_6376_KEY)


def test_rfc_8463_ed25519_key():
    key = parse_dkim_key(RFC_8463_ED25519)
    assert (key.key_type, key.key_bits, key.warnings) == ("ed25519", 256, ())


def test_folded_base64_and_generated_rsa_key(rsa_2048):
    encoded = _b64(rsa_2048.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    folded = " \r\n\t".join(encoded[i:i + 60] for i in range(0, len(encoded), 60))
    key = parse_dkim_key(f"v=DKIM1; k=rsa; p={folded}")
    assert key.key_bits == 2048 and key.warnings == ()


def test_bare_pkcs1_rsa_key_is_accepted(rsa_2048):
    pkcs1 = rsa_2048.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    assert parse_dkim_key(f"p={_b64(pkcs1)}").key_bits == 2048


def test_rsa_key_under_1024_bits_is_flagged_unusable():
    # A 768-bit public key built from its numbers (cryptography will not generate one).
    modulus = (1 << 767) | 1 | (12345 << 100)
    weak = rsa.RSAPublicNumbers(65537, modulus).public_key()
    der = weak.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key = parse_dkim_key(f"p={_b64(der)}")
    assert key.key_bits == 768
    assert [w.code for w in key.warnings] == ["rsa_key_unusable"]


@pytest.mark.parametrize("text", ["v=DKIM1; p=", "v=DKIM1; k=ed25519; p= ", "p="])
def test_empty_p_means_revoked(text):
    key = parse_dkim_key(text)
    assert key.revoked and key.key_bits is None and key.public_key == b""


@pytest.mark.parametrize(
    "tags, testing, strict, sha1_only, hashes, services, warnings",
    [
        ("", False, False, False, None, ("*",), []),
        ("t=y; ", True, False, False, None, ("*",), ["testing"]),
        ("t=s:y:x; ", True, True, False, None, ("*",), ["testing"]),
        ("t=s; ", False, True, False, None, ("*",), []),
        ("h=sha1; ", False, False, True, ("sha1",), ("*",), ["sha1_only"]),
        ("h=SHA1 : sha256; ", False, False, False, ("sha1", "sha256"), ("*",), []),
        ("h=sha256; ", False, False, False, ("sha256",), ("*",), []),
        ("s=email; ", False, False, False, None, ("email",), []),
        ("s=other; ", False, False, False, None, ("other",), ["not_for_email"]),
        ("n=some notes here; ", False, False, False, None, ("*",), []),
        ("V=DKIM2; ", False, False, False, None, ("*",), []),   # tag names are case-sensitive
    ],
)
def test_tags(tags, testing, strict, sha1_only, hashes, services, warnings):
    key = parse_dkim_key(f"v=DKIM1; k=ed25519; {tags}p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    assert (key.testing, key.strict, key.sha1_only) == (testing, strict, sha1_only)
    assert key.hash_algorithms == hashes
    assert key.service_types == services
    assert [w.code for w in key.warnings] == warnings


def _spki(public_key) -> str:
    return _b64(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


ED25519_SPKI = _spki(ed25519.Ed25519PrivateKey.generate().public_key())
EC_SPKI = _spki(ec.generate_private_key(ec.SECP256R1()).public_key())


@pytest.mark.parametrize(
    "text, message",
    [
        (f"k=rsa; v=DKIM1; p={RFC_6376_KEY}", "'v' must come first"),
        (f"v=DKIM2; p={RFC_6376_KEY}", "only DKIM1"),
        (f"v=DKIM1; k=dsa; p={RFC_6376_KEY}", "unknown key type"),
        ("v=DKIM1; k=rsa", "'p' is missing"),
        ("v=DKIM1; p=abc$", "not valid base64"),
        ("v=DKIM1; p=QUJDRA", "not valid base64"),   # missing padding
        ("v=DKIM1; p=QUJD", "not a DER-encoded public key"),
        (f"v=DKIM1; p={ED25519_SPKI}", "k=rsa but p= holds"),
        (f"v=DKIM1; k=rsa; p={EC_SPKI}", "k=rsa but p= holds"),
        (f"v=DKIM1; k=ed25519; p={ED25519_SPKI}", "must be 32 bytes"),
        (f"v=DKIM1; k=ed25519; p={_b64(bytes(31))}", "must be 32 bytes"),
        (f"v=DKIM1; p={RFC_6376_KEY}; p=", "duplicate tag 'p'"),
        ("v=DKIM1; 5=x; p=", "invalid tag name"),
    ],
)
def test_errors(text, message):
    with pytest.raises(DKIMError, match=message):
        parse_dkim_key(text)


def test_error_names_position_of_p():
    text = "v=DKIM1; k=rsa; p=QUJD"
    with pytest.raises(DKIMError) as caught:
        parse_dkim_key(text)
    assert caught.value.position == text.index("p=")


DKIM_PIECES = st.sampled_from(
    ["v=DKIM1", "; ", ";", "k=", "rsa", "ed25519", "p=", "h=", "sha1", ":", "t=y", "s=",
     RFC_6376_KEY, RFC_6376_KEY[:40], "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "=", " ",
     "A", "=="])


@given(st.one_of(st.text(), st.lists(DKIM_PIECES).map("".join)))
def test_any_text_gives_a_key_or_dkim_error(text):
    try:
        key = parse_dkim_key(text)
    except DKIMError:
        return
    assert key.revoked == (key.key_bits is None)
