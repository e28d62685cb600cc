"""ClientHello builders: TLS 1.3 ... SSL 3.0 hellos as complete records, and the SSLv2 CLIENT-HELLO.

The hellos are meant for probing: the scanner reads the ServerHello (or Alert) and closes the
connection, so no private key is kept. They still carry real key shares and the extensions a
real client sends, because servers answer an odd-looking hello differently from a real one.

References: RFC 8446 (TLS 1.3) 4.1.2, RFC 5246 (TLS 1.2) 7.4.1.2, RFC 6101 (SSL 3.0),
RFC 6066 (SNI, status_request), RFC 5746 (renegotiation_info), RFC 7627 (extended master
secret), RFC 7685 (padding), RFC 7507 (fallback SCSV), SSL 2.0 draft (Hickman 1995).
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.ciphers import EMPTY_RENEGOTIATION_INFO_SCSV, FALLBACK_SCSV

MAX_RECORD_PAYLOAD = 16384
# nmap's ssl-enum-ciphers and internet.nl send 64 suites per hello: some servers ignore what
# follows, others reject long lists.
DEFAULT_CIPHERS_PER_HELLO = 64


class ExtensionType(enum.IntEnum):
    SERVER_NAME = 0
    STATUS_REQUEST = 5
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    HEARTBEAT = 15
    ALPN = 16
    SIGNED_CERTIFICATE_TIMESTAMP = 18
    PADDING = 21
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    KEY_SHARE = 51
    RENEGOTIATION_INFO = 0xFF01


class RenegotiationSignal(enum.Enum):
    """How the hello says "I support secure renegotiation" (RFC 5746)."""

    EXTENSION = "extension"   # an empty renegotiation_info extension
    SCSV = "scsv"             # TLS_EMPTY_RENEGOTIATION_INFO_SCSV in the cipher list (for extension-less hellos)
    NONE = "none"


DEFAULT_GROUPS: tuple[int, ...] = (
    NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1, NamedGroup.SECP521R1, NamedGroup.X448,
    NamedGroup.BRAINPOOLP256R1, NamedGroup.BRAINPOOLP384R1, NamedGroup.BRAINPOOLP512R1, NamedGroup.SECP224R1,
    NamedGroup.FFDHE2048, NamedGroup.FFDHE3072, NamedGroup.FFDHE4096, NamedGroup.FFDHE6144, NamedGroup.FFDHE8192,
)

# Broad on purpose: a server must never refuse a probe for want of a signature algorithm.
DEFAULT_SIGNATURE_ALGORITHMS: tuple[int, ...] = (
    0x0403, 0x0503, 0x0603,           # ecdsa_secp256r1_sha256, ecdsa_secp384r1_sha384, ecdsa_secp521r1_sha512
    0x0807, 0x0808,                   # ed25519, ed448
    0x0804, 0x0805, 0x0806,           # rsa_pss_rsae_sha256/384/512
    0x0809, 0x080A, 0x080B,           # rsa_pss_pss_sha256/384/512
    0x081A, 0x081B, 0x081C,           # ecdsa_brainpoolP256r1tls13_sha256 / P384 / P512
    0x0401, 0x0501, 0x0601,           # rsa_pkcs1_sha256/384/512
    0x0402, 0x0502, 0x0602,           # dsa_sha256/384/512 (TLS 1.2 only)
    0x0303, 0x0301, 0x0302,           # ecdsa_sha224, rsa_sha224, dsa_sha224
    0x0203, 0x0201, 0x0202,           # ecdsa_sha1, rsa_pkcs1_sha1, dsa_sha1
)

DEFAULT_KEY_SHARE_GROUPS: tuple[int, ...] = (NamedGroup.X25519, NamedGroup.SECP256R1)

# What an ordinary client offers, in its order: OpenSSL 1.1.1's default groups, those of the
# nassl client through which internet.nl (sslyze) sees the key exchange it grades; OpenSSL 3
# adds the FFDHE groups after these, which no server prefers over them. Key share: X25519 only.
NORMAL_CLIENT_GROUPS: tuple[int, ...] = (
    NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.X448, NamedGroup.SECP521R1, NamedGroup.SECP384R1,
)
NORMAL_CLIENT_KEY_SHARE_GROUPS: tuple[int, ...] = (NamedGroup.X25519,)

_COMPRESSION_NULL = 0
COMPRESSION_DEFLATE = 1


def build_client_hello(
    version: ProtocolVersion,
    cipher_codes: Sequence[int],
    *,
    server_name: str | None = None,
    groups: Sequence[int] = DEFAULT_GROUPS,
    signature_algorithms: Sequence[int] = DEFAULT_SIGNATURE_ALGORITHMS,
    key_share_groups: Sequence[int] = DEFAULT_KEY_SHARE_GROUPS,
    supported_versions: Sequence[ProtocolVersion] | None = None,
    compression_methods: Sequence[int] = (_COMPRESSION_NULL,),
    with_extensions: bool = True,
    renegotiation: RenegotiationSignal = RenegotiationSignal.EXTENSION,
    fallback_scsv: bool = False,
    status_request: bool = True,
    session_ticket: bool = True,
    extended_master_secret: bool = True,
    alpn_protocols: Sequence[str] = (),
    random: bytes | None = None,
    session_id: bytes | None = None,
) -> bytes:
    """A complete TLS record holding one ClientHello offering `version` and `cipher_codes`.

    TLS 1.3: legacy_version 0x0303 plus supported_versions (default: only 1.3, pass
    `supported_versions` to offer a range), key_share for `key_share_groups`, a 32-byte legacy
    session id (RFC 8446 D.4). SSL 3.0 ... TLS 1.2: the version itself as client_version.
    `with_extensions=False` sends no extension block at all (SSL 3.0 servers may choke on one);
    the renegotiation signal then falls back to the SCSV.
    Raises ValueError when the hello cannot be built as asked (no suites, too big, SSLv2).
    """
    if version is ProtocolVersion.SSL2:
        raise ValueError("SSLv2 uses build_sslv2_client_hello")
    if not cipher_codes:
        raise ValueError("a ClientHello needs at least one cipher suite")
    if not 1 <= len(compression_methods) <= 255:
        raise ValueError("a ClientHello needs 1..255 compression methods")
    if random is not None and len(random) != 32:
        raise ValueError("the client random is 32 bytes")
    tls13 = version >= ProtocolVersion.TLS1_3
    if tls13 and not with_extensions:
        raise ValueError("TLS 1.3 cannot be offered without extensions")

    codes = list(cipher_codes)
    if renegotiation is RenegotiationSignal.SCSV or (renegotiation is RenegotiationSignal.EXTENSION
                                                     and not with_extensions):
        codes.append(EMPTY_RENEGOTIATION_INFO_SCSV)
    if fallback_scsv:
        codes.append(FALLBACK_SCSV)

    if session_id is None:
        session_id = os.urandom(32) if tls13 else b""
    body = b"".join((
        struct.pack("!H", ProtocolVersion.TLS1_2 if tls13 else version),
        random if random is not None else os.urandom(32),
        _vector(session_id, 1),
        _vector(b"".join(struct.pack("!H", code) for code in codes), 2),
        _vector(bytes(compression_methods), 1),
    ))
    if with_extensions:
        extensions = _extensions(
            version, server_name=server_name, groups=groups, signature_algorithms=signature_algorithms,
            key_share_groups=key_share_groups, supported_versions=supported_versions,
            renegotiation=renegotiation, status_request=status_request, session_ticket=session_ticket,
            extended_master_secret=extended_master_secret, alpn_protocols=alpn_protocols,
        )
        extensions += _padding_extension(len(body) + 4 + 2 + len(extensions))
        body += _vector(extensions, 2)
    message = _handshake(1, body)
    record_version = ProtocolVersion.SSL3 if version is ProtocolVersion.SSL3 else ProtocolVersion.TLS1_0
    if len(message) > MAX_RECORD_PAYLOAD:
        raise ValueError(f"ClientHello of {len(message)} bytes does not fit one record; "
                         "use split_cipher_codes")
    return struct.pack("!BHH", 22, record_version, len(message)) + message


def split_cipher_codes(codes: Iterable[int], per_hello: int = DEFAULT_CIPHERS_PER_HELLO) -> tuple[tuple[int, ...], ...]:
    """`codes` cut into consecutive chunks of at most `per_hello`, one chunk per ClientHello."""
    if per_hello < 1:
        raise ValueError("per_hello must be positive")
    codes = tuple(codes)
    return tuple(codes[start:start + per_hello] for start in range(0, len(codes), per_hello))


def build_sslv2_client_hello(
    cipher_kinds: Sequence[int],
    *,
    version: ProtocolVersion = ProtocolVersion.SSL2,
    tls_cipher_codes: Sequence[int] = (),
    challenge: bytes | None = None,
) -> bytes:
    """An SSL 2.0 CLIENT-HELLO record (2-byte header): 3-byte cipher kinds, then TLS suites as 0x00XXYY.

    With version SSL2 (0x0002) it asks for SSL 2.0 itself; with a higher version it is the
    "SSLv2-compatible" hello of RFC 5246 E.2 that old clients used to reach SSL 3.0 / TLS servers.
    """
    specs = [kind.to_bytes(3, "big") for kind in cipher_kinds]
    specs += [code.to_bytes(3, "big") for code in tls_cipher_codes]
    if not specs:
        raise ValueError("an SSLv2 CLIENT-HELLO needs at least one cipher spec")
    challenge = challenge if challenge is not None else os.urandom(16)
    if not 16 <= len(challenge) <= 32:
        raise ValueError("the SSLv2 challenge is 16..32 bytes")
    cipher_specs = b"".join(specs)
    message = struct.pack("!BHHHH", 1, version, len(cipher_specs), 0, len(challenge)) + cipher_specs + challenge
    if len(message) > 0x7FFF:
        raise ValueError("SSLv2 CLIENT-HELLO too long")
    return struct.pack("!H", 0x8000 | len(message)) + message


# ---------------------------------------------------------------------------------------------

def _extensions(
    version: ProtocolVersion, *, server_name: str | None, groups: Sequence[int],
    signature_algorithms: Sequence[int], key_share_groups: Sequence[int],
    supported_versions: Sequence[ProtocolVersion] | None, renegotiation: RenegotiationSignal,
    status_request: bool, session_ticket: bool, extended_master_secret: bool, alpn_protocols: Sequence[str],
) -> bytes:
    parts = []
    if server_name:
        host = server_name.rstrip(".").encode("idna")
        parts.append(_extension(ExtensionType.SERVER_NAME, _vector(b"\x00" + _vector(host, 2), 2)))
    if status_request:
        # status_type ocsp(1), empty responder_id_list, empty request_extensions
        parts.append(_extension(ExtensionType.STATUS_REQUEST, b"\x01\x00\x00\x00\x00"))
    if groups:
        parts.append(_extension(ExtensionType.SUPPORTED_GROUPS, _vector(_u16s(groups), 2)))
        if any(not _is_finite_field_group(g) for g in groups):
            parts.append(_extension(ExtensionType.EC_POINT_FORMATS, _vector(b"\x00", 1)))  # uncompressed
    if version >= ProtocolVersion.TLS1_2 and signature_algorithms:
        parts.append(_extension(ExtensionType.SIGNATURE_ALGORITHMS, _vector(_u16s(signature_algorithms), 2)))
    if alpn_protocols:
        names = b"".join(_vector(name.encode("ascii"), 1) for name in alpn_protocols)
        parts.append(_extension(ExtensionType.ALPN, _vector(names, 2)))
    if extended_master_secret:
        parts.append(_extension(ExtensionType.EXTENDED_MASTER_SECRET, b""))
    if session_ticket:
        parts.append(_extension(ExtensionType.SESSION_TICKET, b""))
    if version >= ProtocolVersion.TLS1_3:
        offered = supported_versions if supported_versions is not None else (ProtocolVersion.TLS1_3,)
        parts.append(_extension(ExtensionType.SUPPORTED_VERSIONS, _vector(_u16s(offered), 1)))
        parts.append(_extension(ExtensionType.PSK_KEY_EXCHANGE_MODES, _vector(b"\x01", 1)))  # psk_dhe_ke
        shares = b"".join(struct.pack("!H", group) + _vector(key_share_public_key(group), 2)
                          for group in key_share_groups)
        parts.append(_extension(ExtensionType.KEY_SHARE, _vector(shares, 2)))
    if renegotiation is RenegotiationSignal.EXTENSION:
        parts.append(_extension(ExtensionType.RENEGOTIATION_INFO, b"\x00"))  # empty renegotiated_connection
    return b"".join(parts)


def key_share_public_key(group: int) -> bytes:
    """A fresh public key for a key_share entry (the private half is thrown away: probes never finish)."""
    if group == NamedGroup.X25519:
        return x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    if group == NamedGroup.X448:
        return x448.X448PrivateKey.generate().public_key().public_bytes_raw()
    curve = _EC_CURVES.get(group)
    if curve is None:
        raise ValueError(f"no key share generator for group {group:#06x}")
    return ec.generate_private_key(curve).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


_EC_CURVES = {
    NamedGroup.SECP256R1: ec.SECP256R1(),
    NamedGroup.SECP384R1: ec.SECP384R1(),
    NamedGroup.SECP521R1: ec.SECP521R1(),
}


def _is_finite_field_group(group: int) -> bool:
    return 256 <= group <= 511       # RFC 7919 range for FFDHE groups


def _padding_extension(hello_length: int) -> bytes:
    """RFC 7685 padding that lifts a hello of 256..511 bytes to 512 (the F5 "hello hang" bug).

    `hello_length` is the handshake message length (4-byte header included) without padding.
    """
    if not 256 <= hello_length < 512:
        return b""
    missing = 512 - hello_length
    pad = missing - 4 if missing >= 5 else 1      # the extension header alone takes 4 bytes
    return _extension(ExtensionType.PADDING, b"\x00" * pad)


def _handshake(msg_type: int, body: bytes) -> bytes:
    return struct.pack("!B", msg_type) + len(body).to_bytes(3, "big") + body


def _extension(ext_type: int, data: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(data)) + data


def _vector(data: bytes, length_bytes: int) -> bytes:
    if len(data) >= 1 << (8 * length_bytes):
        raise ValueError(f"{len(data)} bytes do not fit a {length_bytes}-byte length")
    return len(data).to_bytes(length_bytes, "big") + data


def _u16s(values: Iterable[int]) -> bytes:
    return b"".join(struct.pack("!H", value) for value in values)
