"""TLSA records (RFC 6698) and their matching against a presented chain for SMTP DANE.

Only DANE-TA(2) and DANE-EE(3) apply to SMTP: RFC 7672 §3.1.3 makes PKIX-TA(0) and
PKIX-EE(1) records unusable there, so `tlsa_matches` never matches them.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from exporter.records.common import RecordError


class TLSAError(RecordError):
    """The TLSA record is malformed or uses parameters that are not defined."""


class Usage(enum.IntEnum):
    PKIX_TA = 0
    PKIX_EE = 1
    DANE_TA = 2
    DANE_EE = 3


class Selector(enum.IntEnum):
    CERT = 0   # the whole certificate, DER
    SPKI = 1   # its SubjectPublicKeyInfo, DER


class MatchingType(enum.IntEnum):
    FULL = 0
    SHA256 = 1
    SHA512 = 2


_DIGEST_SIZES = {MatchingType.SHA256: 32, MatchingType.SHA512: 64}


@dataclass(frozen=True)
class TLSARecord:
    usage: Usage
    selector: Selector
    matching_type: MatchingType
    data: bytes   # certificate association data

    @property
    def usable_for_smtp(self) -> bool:
        return self.usage in (Usage.DANE_TA, Usage.DANE_EE)

    @property
    def smtp_unusable_reason(self) -> str | None:
        if self.usable_for_smtp:
            return None
        return f"usage {self.usage.value} ({self.usage.name}) is unusable for SMTP (RFC 7672 §3.1.3)"

    def to_text(self) -> str:
        return f"{self.usage.value} {self.selector.value} {self.matching_type.value} {self.data.hex()}"


def make_tlsa(usage: int, selector: int, matching_type: int, data: bytes) -> TLSARecord:
    """Validate the four fields of a TLSA record (e.g. from dnswire's TLSAData)."""
    try:
        record = TLSARecord(Usage(usage), Selector(selector), MatchingType(matching_type),
                            bytes(data))
    except ValueError:
        raise TLSAError(
            f"unsupported parameters usage={usage} selector={selector} "
            f"matching type={matching_type} (defined: 0-3, 0-1, 0-2)"
        ) from None
    expected = _DIGEST_SIZES.get(record.matching_type)
    if expected is not None and len(record.data) != expected:
        raise TLSAError(
            f"a {record.matching_type.name} digest is {expected} bytes, the record has "
            f"{len(record.data)}"
        )
    if not record.data:
        raise TLSAError("the certificate association data is empty")
    return record


def parse_tlsa(text: str) -> TLSARecord:
    """Parse presentation format: "usage selector matching-type hex", where the hex may
    be split by whitespace (RFC 6698 §2.2)."""
    fields = text.split()
    if len(fields) < 4:
        raise TLSAError(f"expected 'usage selector matching-type data', got {text!r}", 0)
    numbers = []
    for name, field in zip(("usage", "selector", "matching type"), fields[:3]):
        if not re.fullmatch(r"[0-9]{1,3}", field) or int(field) > 255:
            raise TLSAError(f"{name} {field!r} is not an integer 0-255", text.find(field))
        numbers.append(int(field))
    hex_data = "".join(fields[3:])
    try:
        data = bytes.fromhex(hex_data)
    except ValueError:
        raise TLSAError("the certificate association data is not hex",
                        text.find(fields[3])) from None
    return make_tlsa(numbers[0], numbers[1], numbers[2], data)


def tlsa_matches(record: TLSARecord, chain_der: list[bytes]) -> bool:
    """Whether a TLSA record authenticates a presented chain (DER, leaf first), per
    RFC 7671 §5 and RFC 7672 §3.1.

    DANE-EE(3): the leaf alone is compared; no name or expiry check applies.
    DANE-TA(2): some issuer certificate in the chain (not the leaf) must match, and each
    certificate from the leaf up to it must be signed by the next one. Checking the
    leaf's name and the validity dates is the caller's job.
    PKIX-TA(0) / PKIX-EE(1): never match (unusable for SMTP).
    """
    if not chain_der or not record.usable_for_smtp:
        return False
    if record.usage == Usage.DANE_EE:
        return _association_matches(record, chain_der[0])
    return any(
        _association_matches(record, chain_der[depth]) and _issued_in_order(chain_der[: depth + 1])
        for depth in range(1, len(chain_der))
    )


def certificate_association(cert_der: bytes, selector: Selector, matching_type: MatchingType) -> bytes:
    """The data a TLSA record with these parameters would hold for this certificate."""
    selected = cert_der if selector == Selector.CERT else subject_public_key_info(cert_der)
    if matching_type == MatchingType.SHA256:
        return hashlib.sha256(selected).digest()
    if matching_type == MatchingType.SHA512:
        return hashlib.sha512(selected).digest()
    return selected


def subject_public_key_info(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a certificate exactly as encoded in it.

    Read from the DER instead of re-encoding the parsed key, so that the bytes are the
    certificate's own even for key types the crypto library does not know.
    """
    try:
        _, certificate, _ = _der_element(cert_der, 0)
        tag, position, _ = _der_element(cert_der, certificate)   # tbsCertificate
        tag, _, end = _der_element(cert_der, position)
        if tag == 0xA0:   # [0] version, absent in v1 certificates
            position = end
        for _ in range(5):   # serialNumber, signature, issuer, validity, subject
            _, _, position = _der_element(cert_der, position)
        tag, _, end = _der_element(cert_der, position)
    except IndexError:
        raise TLSAError("the certificate is truncated") from None
    if tag != 0x30:
        raise TLSAError("the certificate has no SubjectPublicKeyInfo where expected")
    return cert_der[position:end]


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, offset of the contents, offset after the element) of a DER TLV at `offset`."""
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4 or start + size > len(data):
            raise TLSAError("invalid DER length in certificate")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    if start + length > len(data):
        raise IndexError(offset)
    return tag, start, start + length


def _association_matches(record: TLSARecord, cert_der: bytes) -> bool:
    try:
        return certificate_association(cert_der, record.selector, record.matching_type) == record.data
    except TLSAError:   # a malformed certificate matches nothing
        return False


def _issued_in_order(chain_der: list[bytes]) -> bool:
    """Each certificate is issued (name and signature) by the one after it."""
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
        for subject, issuer in zip(chain, chain[1:]):
            subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True
