"""NCSC-NL 2025 classes for versions, suites, groups, DH parameters, certificate keys and hashes."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import pytest
from cryptography.hazmat.primitives import serialization

from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES, KeyExchange, suite_by_name
from exporter.tlswire.grading import (
    FFDHE_PRIMES,
    Class,
    ffdhe_group,
    grade_certificate_key,
    grade_cipher_suite,
    grade_dh_parameters,
    grade_group,
    grade_signature_hash,
    grade_version,
    worst,
)

G, I, P, S = Class.GOOD, Class.INSUFFICIENT, Class.PHASE_OUT, Class.SUFFICIENT


def test_classes_are_ordered_and_worst_picks_the_worst():
    assert G < S < P < I
    assert worst(G, P, S) is P
    assert worst(I, G) is I
    assert worst() is G
    assert P.label == "phase_out"


@pytest.mark.parametrize("version, expected", [
    (ProtocolVersion.TLS1_3, G), (ProtocolVersion.TLS1_2, S), (ProtocolVersion.TLS1_1, I),
    (ProtocolVersion.TLS1_0, I), (ProtocolVersion.SSL3, I), (ProtocolVersion.SSL2, I), (0x7F1C, I),
])
def test_versions(version, expected):
    assert grade_version(version) is expected


@pytest.mark.parametrize("name, expected", [
    ("TLS_AES_256_GCM_SHA384", G),
    ("TLS_CHACHA20_POLY1305_SHA256", G),
    ("TLS_AES_128_GCM_SHA256", S),
    ("TLS_AES_128_CCM_SHA256", S),
    ("TLS_AES_128_CCM_8_SHA256", I),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", S),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CCM", S),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", I),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", S),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", P),
    ("TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256", P),
    ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", P),
    ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", P),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", I),
    ("TLS_DHE_DSS_WITH_AES_128_GCM_SHA256", I),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", I),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", I),
    ("TLS_RSA_WITH_RC4_128_SHA", I),
    ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", I),
    ("TLS_DH_anon_WITH_AES_128_GCM_SHA256", I),
    ("TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256", I),
    ("TLS_NULL_WITH_NULL_NULL", I),
])
def test_cipher_suites(name, expected):
    assert grade_cipher_suite(suite_by_name(name).code) is expected


def test_cipher_suite_classes_follow_the_guideline_rules():
    """Over the whole registry: nothing above insufficient lacks forward secrecy or uses SHA-1 / RSA kex."""
    graded = {code: grade_cipher_suite(code) for code in CIPHER_SUITES}
    assert sum(1 for c in graded.values() if c is G) == 2
    assert sum(1 for c in graded.values() if c is S) == 10
    assert sum(1 for c in graded.values() if c is P) == 35
    for code, grade in graded.items():
        suite = CIPHER_SUITES[code]
        if grade is not I:
            assert suite.forward_secret and suite.hash in ("SHA256", "SHA384"), suite.name
            assert suite.cipher in ("AES", "CHACHA20", "CAMELLIA", "ARIA"), suite.name
        if grade in (G, S):
            assert suite.aead and suite.key_exchange in (KeyExchange.ECDHE, KeyExchange.TLS13), suite.name
    assert grade_cipher_suite(0xFAFA) is I and grade_cipher_suite(0x00FF) is I


@pytest.mark.parametrize("group, expected", [
    (NamedGroup.X25519, G), (NamedGroup.X448, G), (NamedGroup.SECP256R1, G), (NamedGroup.SECP384R1, G),
    (NamedGroup.SECP521R1, G), (NamedGroup.BRAINPOOLP256R1, G), (NamedGroup.BRAINPOOLP512R1TLS13, G),
    (NamedGroup.SECP224R1, P), (NamedGroup.FFDHE3072, P), (NamedGroup.FFDHE8192, P),
    (NamedGroup.FFDHE2048, I), (NamedGroup.SECP192R1, I), (NamedGroup.SECP256K1, I), (0x4242, I),
    # Hybrids: their classical half's class (an interpretation: internet.nl does not grade them).
    (NamedGroup.X25519MLKEM768, G), (NamedGroup.SECP256R1MLKEM768, G), (NamedGroup.SECP384R1MLKEM1024, G),
])
def test_groups(group, expected):
    assert grade_group(group) is expected


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
@pytest.mark.parametrize("group", [NamedGroup.FFDHE2048, NamedGroup.FFDHE3072, NamedGroup.FFDHE4096,
                                   NamedGroup.FFDHE6144, NamedGroup.FFDHE8192])
def test_rfc7919_primes_match_openssl(group):
    pem = subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                          f"group:{group.name.lower()}"], capture_output=True, check=True).stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # cryptography deprecates finite-field DH
        numbers = serialization.load_pem_parameters(pem).parameter_numbers()
    assert ffdhe_group(numbers.p, numbers.g) is group
    assert FFDHE_PRIMES[group] == numbers.p and numbers.p.bit_length() == int(group.name[5:])
    assert grade_dh_parameters(numbers.p, numbers.g) is grade_group(group)


def test_custom_dh_parameters_are_insufficient():
    ffdhe3072 = FFDHE_PRIMES[NamedGroup.FFDHE3072]
    assert grade_dh_parameters(ffdhe3072, 2) is P
    assert grade_dh_parameters(ffdhe3072, 5) is I              # right prime, other generator
    assert grade_dh_parameters(ffdhe3072 - 2, 2) is I          # a 3072-bit prime of its own
    assert grade_dh_parameters((1 << 1023) | 1, 2) is I


@pytest.mark.parametrize("key_type, bits, curve, expected", [
    ("rsa", 4096, None, G), ("rsa", 3072, None, G), ("rsa", 2048, None, P), ("rsa", 1024, None, I),
    ("ec", 256, "secp256r1", G), ("ec", 384, "secp384r1", G), ("ec", 521, "secp521r1", G),
    ("ec", 256, "brainpoolP256r1", G), ("ec", 224, "secp224r1", P), ("ec", 256, "secp256k1", I),
    ("ec", 192, "secp192r1", I), ("ec", 256, None, G), ("ec", 224, None, P), ("ec", 163, None, I),
    ("ed25519", 256, None, G), ("ed448", 456, None, G), ("dsa", 3072, None, I), ("RSA", 3072, None, G),
])
def test_certificate_keys(key_type, bits, curve, expected):
    assert grade_certificate_key(key_type, bits, curve) is expected


@pytest.mark.parametrize("hash_name, expected", [
    ("sha256", G), ("SHA384", G), ("sha512", G), (None, G), ("sha224", P), ("sha1", I), ("md5", I),
])
def test_signature_hashes(hash_name, expected):
    assert grade_signature_hash(hash_name) is expected
