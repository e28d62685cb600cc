"""The grade of a whole scan: the worst NCSC-NL class (tlswire.grading) of everything it found.
Pure: it reads the findings and nothing else, so any combination can be graded without a server."""

from __future__ import annotations

from collections.abc import Sequence

from ..results import CertificateInfo
from ..tlswire import ProtocolVersion
from ..tlswire.grading import Class, grade_certificate_key, grade_signature_hash, grade_version, worst
from .results import AcceptedCipher, GroupSupport


def grade_scan(*, versions: Sequence[ProtocolVersion], ciphers: Sequence[AcceptedCipher],
               groups: Sequence[GroupSupport], dh_grade: Class | None,
               certificates: Sequence[CertificateInfo], compression: bool | None,
               secure_renegotiation: bool | None) -> Class | None:
    """The worst class of the supported `versions`, the accepted suites and groups (graded as
    found), the DHE parameters, the leaf certificates' keys and signature hashes, compression
    and secure renegotiation (None: not seen, no penalty). None when no version is supported:
    there is nothing to grade."""
    if not versions:
        return None
    return worst(
        *(grade_version(version) for version in versions),
        *(cipher.grade for cipher in ciphers),
        *(group.grade for group in groups),
        *((dh_grade,) if dh_grade is not None else ()),
        *(grade_certificate(certificate) for certificate in certificates),
        # NCSC-NL 2025: TLS compression and the lack of secure renegotiation are insufficient.
        Class.INSUFFICIENT if compression else Class.GOOD,
        Class.INSUFFICIENT if secure_renegotiation is False else Class.GOOD,
    )


def grade_certificate(certificate: CertificateInfo) -> Class:
    """The worse of the certificate's key and its signature hash."""
    return worst(grade_certificate_key(certificate.key_type, certificate.key_bits),
                 grade_signature_hash(certificate.signature_hash))
