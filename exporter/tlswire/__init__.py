"""TLS handshake wire format, pure: bytes in -> typed values out, values in -> bytes out.

Modules:
  ciphers  the IANA cipher suite registry (and SSLv2 cipher kinds) with parsed attributes
  hello    ClientHello builders (TLS 1.3 ... SSLv3, and the SSLv2 CLIENT-HELLO)
  parse    record-layer reassembly and parsing of the server's first flight / alerts
  grading  the NCSC-NL TLS guideline classes (good / sufficient / phase_out / insufficient)

Nothing here opens a socket: the scanner that sends hellos lives elsewhere.
"""

from __future__ import annotations

import enum


class ProtocolVersion(enum.IntEnum):
    """Protocol versions as they appear on the wire (SSLv2 uses 0x0002)."""

    SSL2 = 0x0002
    SSL3 = 0x0300
    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303
    TLS1_3 = 0x0304

    @property
    def label(self) -> str:
        """The conventional name: "SSLv3", "TLSv1.0", "TLSv1.2", ... (as config.TLS_VERSIONS spells them)."""
        return _LABELS[self]


_LABELS = {
    ProtocolVersion.SSL2: "SSLv2",
    ProtocolVersion.SSL3: "SSLv3",
    ProtocolVersion.TLS1_0: "TLSv1.0",
    ProtocolVersion.TLS1_1: "TLSv1.1",
    ProtocolVersion.TLS1_2: "TLSv1.2",
    ProtocolVersion.TLS1_3: "TLSv1.3",
}


class NamedGroup(enum.IntEnum):
    """TLS Supported Groups registry (RFC 8446 4.2.7, RFC 7919, RFC 8422, RFC 8734, hybrids)."""

    SECP192R1 = 19
    SECP224R1 = 21
    SECP256K1 = 22
    SECP256R1 = 23
    SECP384R1 = 24
    SECP521R1 = 25
    BRAINPOOLP256R1 = 26
    BRAINPOOLP384R1 = 27
    BRAINPOOLP512R1 = 28
    X25519 = 29
    X448 = 30
    BRAINPOOLP256R1TLS13 = 31
    BRAINPOOLP384R1TLS13 = 32
    BRAINPOOLP512R1TLS13 = 33
    FFDHE2048 = 256
    FFDHE3072 = 257
    FFDHE4096 = 258
    FFDHE6144 = 259
    FFDHE8192 = 260
    SECP256R1MLKEM768 = 0x11EB
    X25519MLKEM768 = 0x11EC
    SECP384R1MLKEM1024 = 0x11ED

    @property
    def finite_field(self) -> bool:
        return 256 <= self <= 511       # RFC 7919 range


def group_name(code: int) -> str:
    """The registry name of a group code, in lower case ("x25519", "ffdhe2048"), or "0x...."."""
    try:
        return NamedGroup(code).name.lower()
    except ValueError:
        return f"0x{code:04x}"
