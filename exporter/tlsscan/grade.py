"""The grade of a whole scan: the worst NCSC-NL class (tlswire.grading) of what internet.nl's mail
test rates, from the findings. Pure: it reads the findings and nothing else, so any
combination can be graded without a server. docs/tls-grading.md says what is rated and why.

What internet.nl rates (internetstandards/Internet.nl, checks/tasks/tls/scans.py
`check_mail_tls`, evaluation.py) and how it appears here:
- the versions accepted (`TLSProtocolEvaluation`);
- the suites accepted (`TLSCipherEvaluation`; it enumerates only the highest version below
  TLS 1.3, but any lower version is insufficient by itself, so grading all is the same);
- the key exchange of each accepted suite as its client gets it (`TLSForwardSecrecyParameterEvaluation`
  over the ephemeral keys of `find_accepted_ciphers`): here the groups an ordinary client's hello
  gets (`normal_client_groups`) and the DHE parameters; groups a server accepts only when a
  client offers nothing better (ffdhe2048 in TLS 1.3...) are facts, not graded;
- cipher order (`test_cipher_order`): a phase_out suite preferred over a better one is bad;
- compression, secure renegotiation, extended master secret (fail when absent);
- the certificate's key and signature (`check_pubkey`, `cert_checks`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..results import CertificateInfo
from ..tlswire import ProtocolVersion
from ..tlswire.grading import Class, grade_certificate_key, grade_signature_hash, grade_version, worst
from .results import AcceptedCipher, GroupSupport


def grade_scan(*, versions: Sequence[ProtocolVersion], ciphers: Sequence[AcceptedCipher],
               normal_client_groups: Sequence[GroupSupport], dh_grade: Class | None,
               certificates: Sequence[CertificateInfo], compression: bool | None,
               secure_renegotiation: bool | None, extended_master_secret: bool | None = None,
               cipher_order_violation: bool | None = None) -> Class | None:
    """The worst class of the supported `versions`, the accepted suites, the groups an ordinary
    client gets, the DHE parameters, the leaf certificates' keys and signature hashes, and the
    verdicts compression, secure renegotiation, extended master secret and cipher order (None:
    not seen, no penalty). None when no version is supported: there is nothing to grade."""
    if not versions:
        return None
    return worst(
        *(grade_version(version) for version in versions),
        *(cipher.grade for cipher in ciphers),
        *(group.grade for group in normal_client_groups),
        *((dh_grade,) if dh_grade is not None else ()),
        *(grade_certificate(certificate) for certificate in certificates),
        # internet.nl fails each of these (evaluation.py; NCSC-NL 2025 3.4).
        Class.INSUFFICIENT if compression else Class.GOOD,
        Class.INSUFFICIENT if secure_renegotiation is False else Class.GOOD,
        Class.INSUFFICIENT if extended_master_secret is False else Class.GOOD,
        Class.INSUFFICIENT if cipher_order_violation else Class.GOOD,
    )


def cipher_order_violation(ciphers: Sequence[AcceptedCipher],
                           server_cipher_order: Sequence[tuple[ProtocolVersion, bool]]) -> bool | None:
    """internet.nl's cipher order test (scans.py `test_cipher_order`), from the enumeration: in the
    highest version below TLS 1.3, does the server prefer a phase_out suite over a sufficient or
    good one? A server following the client's order does (internet.nl offers the phase_out
    suites first); one with its own order does when a phase_out suite comes before a better one
    in that order (the suites of a version are listed in the order found, which is the server's
    when it has one). None when the order is not known; False when there is nothing to order."""
    versions = sorted({c.version for c in ciphers if ProtocolVersion.SSL2 < c.version < ProtocolVersion.TLS1_3},
                      reverse=True)
    if not versions:
        return False
    version = versions[0]
    classes = [c.grade for c in ciphers if c.version is version]
    if not (Class.PHASE_OUT in classes and any(grade < Class.PHASE_OUT for grade in classes)):
        return False
    own_order = dict(server_cipher_order).get(version)
    if own_order is None:
        return None
    if not own_order:
        return True
    first_phase_out = classes.index(Class.PHASE_OUT)
    return any(grade < Class.PHASE_OUT for grade in classes[first_phase_out + 1:])


def grade_certificate(certificate: CertificateInfo) -> Class:
    """The worse of the certificate's key and its signature hash."""
    return worst(grade_certificate_key(certificate.key_type, certificate.key_bits),
                 grade_signature_hash(certificate.signature_hash))
