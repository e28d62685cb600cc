"""The grade of a whole scan (exporter/tlsscan/grade.py): the worst class of its findings.
Each case changes one finding of a clean TLS 1.3-only scan, which grades good."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.results import CertificateInfo
from exporter.tlsscan.grade import cipher_order_violation, grade_certificate, grade_scan
from exporter.tlsscan.results import AcceptedCipher, GroupSupport
from exporter.tlswire import NamedGroup, ProtocolVersion as V
from exporter.tlswire.grading import Class

G, S, P, I = Class.GOOD, Class.SUFFICIENT, Class.PHASE_OUT, Class.INSUFFICIENT


def certificate(key_type: str, key_bits: int, signature_hash: str | None) -> CertificateInfo:
    """A leaf certificate with only the fields that are graded filled in."""
    return CertificateInfo(der=b"", subject="CN=mx.example.test", issuer="CN=mx.example.test", serial="1",
                           fingerprint_sha256="00", sans=(), not_before=0.0, not_after=0.0,
                           key_type=key_type, key_bits=key_bits, signature_hash=signature_hash,
                           self_signed=True)


CLEAN: dict[str, Any] = dict(
    versions=(V.TLS1_3,),
    ciphers=(AcceptedCipher(V.TLS1_3, 0x1302, "TLS_AES_256_GCM_SHA384", G),),
    normal_client_groups=(GroupSupport(V.TLS1_3, NamedGroup.X25519, G),),
    dh_grade=None,
    certificates=(certificate("ec", 256, "sha256"),),
    compression=None,
    secure_renegotiation=None,
)

CASES = {
    "clean TLS 1.3": ({}, G),
    "no version supported: no grade": ({"versions": ()}, None),
    "TLS 1.2 is sufficient": ({"versions": (V.TLS1_3, V.TLS1_2)}, S),
    "TLS 1.0 is insufficient": ({"versions": (V.TLS1_3, V.TLS1_0)}, I),
    "SSL 2.0 is insufficient": ({"versions": (V.SSL2,)}, I),
    # The classes found with the suites and groups count as given.
    "a phase_out suite": ({"ciphers": (*CLEAN["ciphers"], AcceptedCipher(
        V.TLS1_3, 0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", P))}, P),
    # The group an ordinary client gets is graded (internet.nl: the ephemeral key of each
    # accepted suite as its client gets it); groups accepted only when forced are not inputs.
    "an ordinary client gets an insufficient group": (
        {"normal_client_groups": (GroupSupport(V.TLS1_2, NamedGroup.SECP256K1, I),)}, I),
    "an ordinary client gets secp224r1": (
        {"normal_client_groups": (GroupSupport(V.TLS1_2, NamedGroup.SECP224R1, P),)}, P),
    "phase_out DH parameters": ({"dh_grade": P}, P),
    "an RSA 2048 key is phase_out": ({"certificates": (certificate("rsa", 2048, "sha256"),)}, P),
    "a SHA-1 signature is insufficient": ({"certificates": (certificate("rsa", 4096, "sha1"),)}, I),
    "EdDSA (no hash) is good": ({"certificates": (certificate("ed25519", 256, None),)}, G),
    "no certificate seen": ({"certificates": ()}, G),
    "the worst of two certificates": ({"certificates": (certificate("ec", 384, "sha384"),
                                                        certificate("ec", 224, "sha256"))}, P),
    "compression is insufficient": ({"compression": True}, I),
    "no compression": ({"compression": False}, G),
    "no secure renegotiation is insufficient": ({"secure_renegotiation": False}, I),
    "secure renegotiation": ({"secure_renegotiation": True}, G),
    "no extended master secret is insufficient": ({"extended_master_secret": False}, I),
    "extended master secret": ({"extended_master_secret": True}, G),
    "a phase_out suite preferred is insufficient": ({"cipher_order_violation": True}, I),
    "cipher order unknown": ({"cipher_order_violation": None}, G),
}


@pytest.mark.parametrize("changes, expected", CASES.values(), ids=CASES.keys())
def test_grade_scan(changes: dict[str, Any], expected: Class | None):
    assert grade_scan(**(CLEAN | changes)) is expected


@pytest.mark.parametrize("key_type, key_bits, signature_hash, expected", [
    ("ec", 256, "sha256", G),
    ("rsa", 3072, "sha256", G),
    ("rsa", 2048, "sha384", P),
    ("rsa", 4096, "sha224", P),
    ("rsa", 1024, "sha256", I),
    ("ec", 256, "md5", I),
    ("ed448", 456, None, G),
    ("dsa", 2048, "sha256", I),
])
def test_grade_certificate_is_the_worse_of_key_and_hash(key_type: str, key_bits: int, signature_hash: str | None,
                                                        expected: Class):
    assert grade_certificate(certificate(key_type, key_bits, signature_hash)) is expected


def suite(version: V, grade: Class, code: int = 0) -> AcceptedCipher:
    return AcceptedCipher(version, code, f"suite-{code}", grade)


ORDER_CASES = {
    # internet.nl scans.py test_cipher_order: in the highest version below TLS 1.3, offering the
    # phase_out suites first and one better suite last, the server must pick the better one.
    "nothing phase_out": ([suite(V.TLS1_2, S), suite(V.TLS1_2, I)], None, False),
    "only phase_out": ([suite(V.TLS1_2, P), suite(V.TLS1_2, P)], False, False),
    "client order with phase_out and better": ([suite(V.TLS1_2, S), suite(V.TLS1_2, P)], False, True),
    "own order, better first": ([suite(V.TLS1_2, S), suite(V.TLS1_2, P), suite(V.TLS1_2, I)], True, False),
    "own order, phase_out first": ([suite(V.TLS1_2, P), suite(V.TLS1_2, S)], True, True),
    "order unknown": ([suite(V.TLS1_2, S), suite(V.TLS1_2, P)], None, None),
    # TLS 1.3 has no phase_out suite and is not part of the test.
    "TLS 1.3 is left out": ([suite(V.TLS1_3, G), suite(V.TLS1_2, P)], False, False),
    # Only the highest version below TLS 1.3 counts (lower ones are insufficient anyway).
    "a lower version's order does not count": (
        [suite(V.TLS1_2, S), suite(V.TLS1_2, P), suite(V.TLS1_0, P), suite(V.TLS1_0, S)], True, False),
    "no suite below TLS 1.3": ([suite(V.TLS1_3, G)], None, False),
}


@pytest.mark.parametrize("ciphers, own_order, expected", ORDER_CASES.values(), ids=ORDER_CASES.keys())
def test_cipher_order_violation(ciphers: list[AcceptedCipher], own_order: bool | None, expected: bool | None):
    order = () if own_order is None else ((V.TLS1_2, own_order), (V.TLS1_0, own_order))
    assert cipher_order_violation(ciphers, order) is expected
