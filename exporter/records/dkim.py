"""DKIM public-key records (RFC 6376 §3.6.1, Ed25519 keys from RFC 8463).

`parse_dkim_key` decodes the key to learn its type and size, and flags what RFC 8301
says about weak keys and SHA-1. Tag names are case-sensitive (RFC 6376 §3.2).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from exporter.records.common import RecordError, RecordWarning, Tag, parse_tag_list, split_list, tag_map


class DKIMError(RecordError):
    """The key record is invalid or its key cannot be decoded."""


@dataclass(frozen=True)
class DKIMKey:
    key_type: str                         # k: "rsa" or "ed25519"
    key_bits: int | None                  # None when revoked
    revoked: bool                         # empty p=
    public_key: bytes                     # p, decoded (b"" when revoked)
    hash_algorithms: tuple[str, ...] | None   # h, lower-case; None: absent, all allowed
    service_types: tuple[str, ...]        # s, default ("*",)
    flags: tuple[str, ...]                # t
    notes: str | None                     # n
    tags: tuple[Tag, ...]
    warnings: tuple[RecordWarning, ...]

    @property
    def testing(self) -> bool:
        """t=y: the domain is testing DKIM; verifiers must not treat failures differently."""
        return "y" in self.flags

    @property
    def strict(self) -> bool:
        """t=s: the i= domain of signatures must equal d=, not be a subdomain of it."""
        return "s" in self.flags

    @property
    def sha1_only(self) -> bool:
        """h= allows SHA-1 and no SHA-256: no signature made with it is valid since RFC 8301."""
        return self.hash_algorithms is not None and (
            "sha1" in self.hash_algorithms and "sha256" not in self.hash_algorithms
        )

    @property
    def usable_for_email(self) -> bool:
        return "*" in self.service_types or "email" in self.service_types


KEY_TYPES = ("rsa", "ed25519")
MIN_RSA_BITS = 1024          # RFC 8301 §3.2: shorter keys MUST NOT be used to verify
RECOMMENDED_RSA_BITS = 2048  # RFC 8301 §3.2: signers SHOULD use at least this
_ED25519_KEY_BYTES = 32
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")


def parse_dkim_key(text: str) -> DKIMKey:
    """Parse a DKIM key record (its TXT strings joined); raise DKIMError if invalid."""
    tags = parse_tag_list(text, DKIMError)
    by_name = tag_map(tags)
    if "v" in by_name:
        version = by_name["v"]
        if tags[0].name != "v":
            raise DKIMError("tag 'v' must come first", version.position)
        if version.value != "DKIM1":
            raise DKIMError(f"v={version.value!r}: only DKIM1 is defined", version.position)
    key_type = by_name["k"].value.lower() if "k" in by_name else "rsa"
    if key_type not in KEY_TYPES:
        raise DKIMError(f"unknown key type k={key_type!r}", by_name["k"].position)
    if "p" not in by_name:
        raise DKIMError("the required tag 'p' is missing")
    public_key = _decode_base64(by_name["p"])
    revoked = not public_key
    key_bits = None if revoked else _key_bits(key_type, public_key, by_name["p"].position)

    key = DKIMKey(
        key_type=key_type,
        key_bits=key_bits,
        revoked=revoked,
        public_key=public_key,
        hash_algorithms=_colon_list(by_name.get("h")),
        service_types=_colon_list(by_name.get("s")) or ("*",),
        flags=_colon_list(by_name.get("t")) or (),
        notes=by_name["n"].value if "n" in by_name else None,
        tags=tags,
        warnings=(),
    )
    return replace(key, warnings=_warnings(key))


def _colon_list(tag: Tag | None) -> tuple[str, ...] | None:
    if tag is None:
        return None
    return tuple(item.lower() for item in split_list(tag.value, ":") if item)


def _decode_base64(tag: Tag) -> bytes:
    compact = re.sub(r"[ \t\r\n]", "", tag.value)   # p may be folded with whitespace
    if not _BASE64.match(compact):
        raise DKIMError("p= is not valid base64", tag.position)
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as error:
        raise DKIMError(f"p= is not valid base64: {error}", tag.position) from None


def _key_bits(key_type: str, der: bytes, position: int) -> int:
    if key_type == "ed25519":
        # RFC 8463 §4.2: p is the bare 32-byte public key, not a SubjectPublicKeyInfo.
        if len(der) != _ED25519_KEY_BYTES:
            raise DKIMError(
                f"an ed25519 key must be {_ED25519_KEY_BYTES} bytes, p has {len(der)}", position
            )
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(der)
        except ValueError:
            raise DKIMError("p= is not a valid ed25519 key", position) from None
        return 256
    try:
        # A SubjectPublicKeyInfo as RFC 6376 says; cryptography also accepts the bare
        # PKCS#1 RSAPublicKey that some records carry.
        key = load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise DKIMError("p= is not a DER-encoded public key", position) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise DKIMError(f"k=rsa but p= holds a {type(key).__name__}", position)
    return key.key_size


def _warnings(key: DKIMKey) -> tuple[RecordWarning, ...]:
    found: list[RecordWarning] = []
    if key.key_type == "rsa" and key.key_bits is not None:
        if key.key_bits < MIN_RSA_BITS:
            found.append(RecordWarning(
                "rsa_key_unusable",
                f"{key.key_bits}-bit RSA key: verifiers must ignore keys under "
                f"{MIN_RSA_BITS} bits (RFC 8301)",
            ))
        elif key.key_bits < RECOMMENDED_RSA_BITS:
            found.append(RecordWarning(
                "rsa_key_short",
                f"{key.key_bits}-bit RSA key: at least {RECOMMENDED_RSA_BITS} is recommended",
            ))
    if key.sha1_only:
        found.append(RecordWarning(
            "sha1_only", "h= allows only SHA-1, which verifiers must reject (RFC 8301)"
        ))
    if key.testing:
        found.append(RecordWarning("testing", "t=y: the domain declares it is testing DKIM"))
    if not key.usable_for_email:
        found.append(RecordWarning(
            "not_for_email", f"s={':'.join(key.service_types)} excludes email"
        ))
    return tuple(found)
