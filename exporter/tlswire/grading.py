"""Security classes after the NCSC-NL "IT Security Guidelines for Transport Layer Security (TLS)".

Edition: the 2025-05 guidelines, as implemented by internet.nl (checks/tasks/tls/tls_constants.py
and evaluation.py). The four classes, best first: good, sufficient, phase_out, insufficient.
Whatever a table does not list is insufficient, as in the guidelines. docs/tls-grading.md has
the tables in prose, with the places where this module had to interpret.
"""

from __future__ import annotations

import enum

from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES


class Class(enum.IntEnum):
    """A guideline class; a larger value is worse, so max() picks the worst."""

    GOOD = 0
    SUFFICIENT = 1
    PHASE_OUT = 2
    INSUFFICIENT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def worst(*classes: Class) -> Class:
    """The worst of the classes; GOOD for none (nothing seen, nothing wrong)."""
    return max(classes, default=Class.GOOD)


# --- protocol versions (NCSC 2025 3.3.1) ------------------------------------------------------

_VERSIONS = {
    ProtocolVersion.TLS1_3: Class.GOOD,
    ProtocolVersion.TLS1_2: Class.SUFFICIENT,
}


def grade_version(version: int) -> Class:
    """TLS 1.3 good, TLS 1.2 sufficient; TLS 1.1, 1.0, SSL 3.0 and 2.0 insufficient (2025 edition)."""
    return _VERSIONS.get(version, Class.INSUFFICIENT)


# --- cipher suites (NCSC 2025 appendix B, derived from 3.3.3 / 3.3.4) -------------------------

_GOOD_SUITES = frozenset({
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
})
_SUFFICIENT_SUITES = frozenset({
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
})
_PHASE_OUT_SUITES = frozenset({
    "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384",
    "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_256_CCM",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CCM",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
})
_SUITE_CLASSES = {name: Class.GOOD for name in _GOOD_SUITES} | \
    {name: Class.SUFFICIENT for name in _SUFFICIENT_SUITES} | \
    {name: Class.PHASE_OUT for name in _PHASE_OUT_SUITES}


def grade_cipher_suite(code: int) -> Class:
    """The class of a cipher suite by its 2-byte code; unknown codes are insufficient."""
    suite = CIPHER_SUITES.get(code)
    return _SUITE_CLASSES.get(suite.name, Class.INSUFFICIENT) if suite else Class.INSUFFICIENT


# --- key-exchange groups (NCSC 2025 3.3.2.1 / 3.3.3.1) ----------------------------------------

_GROUPS = {
    NamedGroup.X25519: Class.GOOD,
    NamedGroup.X448: Class.GOOD,
    NamedGroup.SECP256R1: Class.GOOD,
    NamedGroup.SECP384R1: Class.GOOD,
    NamedGroup.SECP521R1: Class.GOOD,
    NamedGroup.BRAINPOOLP256R1: Class.GOOD,
    NamedGroup.BRAINPOOLP384R1: Class.GOOD,
    NamedGroup.BRAINPOOLP512R1: Class.GOOD,
    NamedGroup.BRAINPOOLP256R1TLS13: Class.GOOD,
    NamedGroup.BRAINPOOLP384R1TLS13: Class.GOOD,
    NamedGroup.BRAINPOOLP512R1TLS13: Class.GOOD,
    # Post-quantum hybrids: internet.nl does not grade them yet ("PQC not yet supported by us",
    # tls_constants.py). A hybrid is at least as strong as its classical half, so it gets that
    # half's class (docs/tls-grading.md, interpretation).
    NamedGroup.X25519MLKEM768: Class.GOOD,
    NamedGroup.SECP256R1MLKEM768: Class.GOOD,
    NamedGroup.SECP384R1MLKEM1024: Class.GOOD,
    NamedGroup.SECP224R1: Class.PHASE_OUT,
    NamedGroup.FFDHE3072: Class.PHASE_OUT,
    NamedGroup.FFDHE4096: Class.PHASE_OUT,
    NamedGroup.FFDHE6144: Class.PHASE_OUT,
    NamedGroup.FFDHE8192: Class.PHASE_OUT,
}


def grade_group(group: int) -> Class:
    """A named group (key_share / ServerKeyExchange curve); ffdhe2048 and unlisted groups are insufficient."""
    return _GROUPS.get(group, Class.INSUFFICIENT)


def _ffdhe_prime(bits: int, x: int) -> int:
    """RFC 7919 appendix A: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1."""
    return 2 ** bits - 2 ** (bits - 64) + (_e_times_power_of_two(bits - 130) + x) * 2 ** 64 - 1


def _e_times_power_of_two(bits: int) -> int:
    """floor(2^bits * e), from the series e = sum 1/k! in fixed point with guard bits."""
    guard = 64
    term = 1 << (bits + guard)
    total, k = 0, 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> guard


# The RFC 7919 groups (generator 2), with the X of each from appendix A.
FFDHE_PRIMES: dict[NamedGroup, int] = {
    NamedGroup.FFDHE2048: _ffdhe_prime(2048, 560316),
    NamedGroup.FFDHE3072: _ffdhe_prime(3072, 2625351),
    NamedGroup.FFDHE4096: _ffdhe_prime(4096, 5736041),
    NamedGroup.FFDHE6144: _ffdhe_prime(6144, 15705020),
    NamedGroup.FFDHE8192: _ffdhe_prime(8192, 10965728),
}
_GROUP_OF_PRIME = {prime: group for group, prime in FFDHE_PRIMES.items()}


def ffdhe_group(p: int, g: int) -> NamedGroup | None:
    """The RFC 7919 group these DH parameters are, or None for any other (custom) parameters."""
    return _GROUP_OF_PRIME.get(p) if g == 2 else None


def grade_dh_parameters(p: int, g: int) -> Class:
    """ServerKeyExchange DH parameters: only the RFC 7919 groups of 3072 bits and more are phase_out;
    ffdhe2048 and every custom prime, whatever its size, are insufficient (2025 edition, 3.3.3.1)."""
    group = ffdhe_group(p, g)
    return grade_group(group) if group is not None else Class.INSUFFICIENT


# --- certificate keys and signatures (NCSC 2025 3.3.2.1 / 3.3.5) ------------------------------

_EC_CURVES_GOOD = frozenset({"secp256r1", "secp384r1", "secp521r1",
                             "brainpoolp256r1", "brainpoolp384r1", "brainpoolp512r1"})
_EC_CURVES_PHASE_OUT = frozenset({"secp224r1"})
_EC_BITS = {256: Class.GOOD, 384: Class.GOOD, 521: Class.GOOD, 512: Class.GOOD, 224: Class.PHASE_OUT}


def grade_certificate_key(key_type: str, bits: int, curve: str | None = None) -> Class:
    """A certificate public key, as CertificateInfo describes it ("rsa", "ec", "ed25519", "ed448", "dsa").

    RSA: >= 3072 good, 2048..3071 phase_out, less insufficient. EC: the NIST P and brainpool curves
    of 256 bits and up good, P-224 phase_out; pass `curve` (cryptography's lower-case name) to tell
    P-256 from secp256k1, else the size decides. EdDSA good. DSA insufficient.
    """
    key_type = key_type.lower()
    if key_type == "rsa":
        return Class.GOOD if bits >= 3072 else Class.PHASE_OUT if bits >= 2048 else Class.INSUFFICIENT
    if key_type == "ec":
        if curve is not None:
            curve = curve.lower()
            return (Class.GOOD if curve in _EC_CURVES_GOOD
                    else Class.PHASE_OUT if curve in _EC_CURVES_PHASE_OUT else Class.INSUFFICIENT)
        return _EC_BITS.get(bits, Class.INSUFFICIENT)
    if key_type in ("ed25519", "ed448"):
        return Class.GOOD
    return Class.INSUFFICIENT


_SIGNATURE_HASHES = {
    "sha256": Class.GOOD, "sha384": Class.GOOD, "sha512": Class.GOOD,
    "sha3-256": Class.GOOD, "sha3-384": Class.GOOD, "sha3-512": Class.GOOD,
    "sha224": Class.PHASE_OUT,
}


def grade_signature_hash(hash_name: str | None) -> Class:
    """The hash of a certificate signature ("sha256", ...); None means EdDSA, which hashes internally."""
    if hash_name is None:
        return Class.GOOD
    return _SIGNATURE_HASHES.get(hash_name.lower(), Class.INSUFFICIENT)
