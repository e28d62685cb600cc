"""Parsing what a server sends back to a probe ClientHello: records, handshake messages, alerts.

Everything that goes wrong raises `TLSParseError` (a ValueError) - for any input bytes, never
another exception - and every buffer is bounded, so a hostile server cannot make the scanner
allocate without limit.

`ServerFlightParser` is the entry point: feed it the bytes as they arrive, it returns the
messages it could complete. Stop reading when you have what you need (ServerHello, then for
TLS <= 1.2 the Certificate / ServerKeyExchange / ServerHelloDone; an Alert ends the probe).
TLS 1.3 encrypts everything after the ServerHello, so those records are skipped.

References: RFC 8446 (TLS 1.3) 4 and 5, RFC 5246 (TLS 1.2) 6.2 and 7.4, RFC 8422 5.4,
RFC 6066 8, the SSL 2.0 draft (Hickman 1995).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from exporter.tlswire import ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES, Authentication, KeyExchange
from exporter.tlswire.hello import ExtensionType

MAX_RECORD_LENGTH = 16384 + 2048          # TLSCiphertext limit; plaintext is <= 16384
MAX_HANDSHAKE_MESSAGE = 64 * 1024         # a certificate chain larger than this is refused
RECORD_HEADER_LENGTH = 5

# RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello with this random.
HELLO_RETRY_REQUEST_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
# RFC 8446 4.1.3: a TLS 1.3 server negotiating an older version says so in its random.
_DOWNGRADE_TLS12 = b"DOWNGRD\x01"
_DOWNGRADE_TLS11 = b"DOWNGRD\x00"


class TLSParseError(ValueError):
    """The bytes are not the TLS (or SSLv2) a server should send."""


class ContentType(enum.IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class HandshakeType(enum.IntEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_STATUS = 22


class AlertLevel(enum.IntEnum):
    WARNING = 1
    FATAL = 2


class AlertDescription(enum.IntEnum):
    """TLS Alerts registry (RFC 8446 6, RFC 5246 7.2, plus the SSL 3.0 / TLS 1.0 ones)."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    DECRYPTION_FAILED = 21
    RECORD_OVERFLOW = 22
    DECOMPRESSION_FAILURE = 30
    HANDSHAKE_FAILURE = 40
    NO_CERTIFICATE = 41
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    TOO_MANY_CIDS_REQUESTED = 52
    EXPORT_RESTRICTION = 60
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    NO_RENEGOTIATION = 100
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    CERTIFICATE_UNOBTAINABLE = 111
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    BAD_CERTIFICATE_HASH_VALUE = 114
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    GENERAL_ERROR = 117
    NO_APPLICATION_PROTOCOL = 120
    ECH_REQUIRED = 121


# ---------------------------------------------------------------------------------------------
# Typed results


@dataclass(frozen=True)
class Record:
    content_type: ContentType
    version: int
    fragment: bytes


@dataclass(frozen=True)
class HandshakeMessage:
    msg_type: int
    body: bytes


@dataclass(frozen=True)
class Alert:
    level: int
    description: int

    @property
    def fatal(self) -> bool:
        return self.level == AlertLevel.FATAL

    @property
    def name(self) -> str:
        """The registry name in lower case ("handshake_failure"), or "unknown_N"."""
        try:
            return AlertDescription(self.description).name.lower()
        except ValueError:
            return f"unknown_{self.description}"


@dataclass(frozen=True)
class ServerHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_code: int
    compression_method: int
    extensions: tuple[tuple[int, bytes], ...]     # (type, data) in the order received

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    @property
    def version(self) -> int:
        """The negotiated version: supported_versions when present (TLS 1.3), else legacy_version."""
        selected = self.extension(ExtensionType.SUPPORTED_VERSIONS)
        return _u16(selected, "supported_versions") if selected is not None else self.legacy_version

    @property
    def key_share_group(self) -> int | None:
        """The group of the server's key share (ServerHello) or the group it asks for (HRR)."""
        data = self.extension(ExtensionType.KEY_SHARE)
        if data is None:
            return None
        if self.is_hello_retry_request:
            return _u16(data, "key_share")
        reader = _Reader(data, "key_share")
        group = reader.u16()
        reader.vector(2)
        reader.end()
        return group

    @property
    def secure_renegotiation(self) -> bool:
        """renegotiation_info present (RFC 5746); in an initial handshake it must be empty."""
        return self.extension(ExtensionType.RENEGOTIATION_INFO) is not None

    @property
    def extended_master_secret(self) -> bool:
        return self.extension(ExtensionType.EXTENDED_MASTER_SECRET) is not None

    @property
    def status_request(self) -> bool:
        """The server will staple an OCSP response (TLS <= 1.2: a CertificateStatus follows)."""
        return self.extension(ExtensionType.STATUS_REQUEST) is not None

    @property
    def session_ticket(self) -> bool:
        return self.extension(ExtensionType.SESSION_TICKET) is not None

    @property
    def ec_point_formats(self) -> tuple[int, ...] | None:
        data = self.extension(ExtensionType.EC_POINT_FORMATS)
        if data is None:
            return None
        reader = _Reader(data, "ec_point_formats")
        formats = tuple(reader.vector(1))
        reader.end()
        return formats

    @property
    def alpn_protocol(self) -> str | None:
        data = self.extension(ExtensionType.ALPN)
        if data is None:
            return None
        reader = _Reader(data, "alpn")
        names = _Reader(reader.vector(2), "alpn")
        reader.end()
        name = names.vector(1)
        names.end()
        return name.decode("ascii", errors="replace")

    @property
    def downgrade_sentinel(self) -> ProtocolVersion | None:
        """The version a TLS 1.3 server signals it was downgraded to (RFC 8446 4.1.3), if any."""
        if self.random.endswith(_DOWNGRADE_TLS12):
            return ProtocolVersion.TLS1_2
        if self.random.endswith(_DOWNGRADE_TLS11):
            return ProtocolVersion.TLS1_1
        return None

    def extension(self, ext_type: int) -> bytes | None:
        for found_type, data in self.extensions:
            if found_type == ext_type:
                return data
        return None


@dataclass(frozen=True)
class Certificate:
    """The TLS <= 1.2 Certificate message: DER certificates as sent, leaf first."""

    chain: tuple[bytes, ...]


@dataclass(frozen=True)
class DHParameters:
    """Finite-field DH parameters from a ServerKeyExchange."""

    p: int
    g: int
    public_key: bytes

    @property
    def p_bits(self) -> int:
        return self.p.bit_length()


@dataclass(frozen=True)
class ECDHParameters:
    curve_type: int            # 3 = named_curve (the only kind still used)
    named_curve: int | None    # NamedGroup code for named curves
    public_key: bytes


@dataclass(frozen=True)
class RSAParameters:
    """The temporary RSA key of an EXPORT suite."""

    modulus: int
    exponent: int

    @property
    def modulus_bits(self) -> int:
        return self.modulus.bit_length()


@dataclass(frozen=True)
class ServerKeyExchange:
    parameters: DHParameters | ECDHParameters | RSAParameters | None   # None: a kind not parsed (SRP, ...)
    body: bytes


@dataclass(frozen=True)
class CertificateStatus:
    status_type: int           # 1 = ocsp
    ocsp_response: bytes       # DER OCSPResponse


@dataclass(frozen=True)
class ServerHelloDone:
    pass


@dataclass(frozen=True)
class OtherHandshake:
    """A handshake message this module does not interpret (e.g. CertificateRequest)."""

    msg_type: int
    body: bytes


ServerMessage = (ServerHello | Certificate | ServerKeyExchange | CertificateStatus | ServerHelloDone
                 | OtherHandshake | Alert)


# ---------------------------------------------------------------------------------------------
# Record layer


class RecordReader:
    """Cuts a byte stream into TLS records, refusing non-TLS bytes as early as they show."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Record]:
        self._buffer += data
        records = []
        while True:
            self._check_header_so_far()
            if len(self._buffer) < RECORD_HEADER_LENGTH:
                return records
            length = int.from_bytes(self._buffer[3:5], "big")
            if len(self._buffer) < RECORD_HEADER_LENGTH + length:
                return records
            content_type, version = self._buffer[0], int.from_bytes(self._buffer[1:3], "big")
            fragment = bytes(self._buffer[RECORD_HEADER_LENGTH:RECORD_HEADER_LENGTH + length])
            del self._buffer[:RECORD_HEADER_LENGTH + length]
            records.append(Record(ContentType(content_type), version, fragment))

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete record."""
        return len(self._buffer)

    def _check_header_so_far(self) -> None:
        buffer = self._buffer
        if len(buffer) >= 1 and buffer[0] not in ContentType._value2member_map_:
            raise TLSParseError(f"not a TLS record: content type {buffer[0]}")
        if len(buffer) >= 2 and buffer[1] != 3:
            raise TLSParseError(f"not a TLS record: version major {buffer[1]}")
        if len(buffer) >= RECORD_HEADER_LENGTH:
            length = int.from_bytes(buffer[3:5], "big")
            if length > MAX_RECORD_LENGTH:
                raise TLSParseError(f"record of {length} bytes exceeds {MAX_RECORD_LENGTH}")
            if length == 0 and buffer[0] in (ContentType.HANDSHAKE, ContentType.ALERT):
                raise TLSParseError("empty handshake or alert record")


class HandshakeReassembler:
    """Joins handshake records into messages: one message may span records, one record may hold several."""

    def __init__(self, max_message: int = MAX_HANDSHAKE_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max_message = max_message

    def feed(self, fragment: bytes) -> list[HandshakeMessage]:
        self._buffer += fragment
        messages = []
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[1:4], "big")
            if length > self._max_message:
                raise TLSParseError(f"handshake message of {length} bytes exceeds {self._max_message}")
            if len(self._buffer) < 4 + length:
                break
            messages.append(HandshakeMessage(self._buffer[0], bytes(self._buffer[4:4 + length])))
            del self._buffer[:4 + length]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of a handshake message received but not yet complete."""
        return len(self._buffer)


class ServerFlightParser:
    """Bytes from the server in, typed messages out, for one probe connection.

    It remembers the ServerHello so that a later ServerKeyExchange can be read (its layout
    depends on the chosen suite and version).
    """

    def __init__(self) -> None:
        self._records = RecordReader()
        self._handshake = HandshakeReassembler()
        self.server_hello: ServerHello | None = None

    def feed(self, data: bytes) -> list[ServerMessage]:
        messages: list[ServerMessage] = []
        for record in self._records.feed(data):
            if record.content_type is ContentType.ALERT:
                messages.extend(parse_alerts(record.fragment))
            elif record.content_type is ContentType.HANDSHAKE:
                for message in self._handshake.feed(record.fragment):
                    messages.append(self._interpret(message))
            elif record.content_type is ContentType.APPLICATION_DATA and self._expects_plaintext():
                raise TLSParseError("application data before the handshake was encrypted")
            # change_cipher_spec, encrypted TLS 1.3 records, heartbeats: nothing to read
        return messages

    @property
    def pending(self) -> int:
        """Bytes received that are not yet a complete record or a complete handshake message.

        Non-zero when the stream ends means the server stopped in the middle of something:
        a truncated answer, not a clean close.
        """
        return self._records.pending + self._handshake.pending

    def _expects_plaintext(self) -> bool:
        return self.server_hello is None or self.server_hello.version < ProtocolVersion.TLS1_3

    def _interpret(self, message: HandshakeMessage) -> ServerMessage:
        if message.msg_type == HandshakeType.SERVER_HELLO:
            hello = parse_server_hello(message.body)
            if self.server_hello is None or self.server_hello.is_hello_retry_request:
                self.server_hello = hello
            return hello
        if self.server_hello is None:
            raise TLSParseError(f"handshake message {message.msg_type} before the ServerHello")
        if message.msg_type == HandshakeType.CERTIFICATE:
            return parse_certificate(message.body)
        if message.msg_type == HandshakeType.SERVER_KEY_EXCHANGE:
            return parse_server_key_exchange(message.body, self.server_hello.cipher_code)
        if message.msg_type == HandshakeType.CERTIFICATE_STATUS:
            return parse_certificate_status(message.body)
        if message.msg_type == HandshakeType.SERVER_HELLO_DONE:
            if message.body:
                raise TLSParseError("ServerHelloDone with a body")
            return ServerHelloDone()
        return OtherHandshake(message.msg_type, message.body)


# ---------------------------------------------------------------------------------------------
# Message parsers (each takes the handshake body, without the 4-byte header)


def parse_alerts(fragment: bytes) -> list[Alert]:
    if len(fragment) % 2:
        raise TLSParseError(f"alert record of odd length {len(fragment)}")
    return [Alert(fragment[i], fragment[i + 1]) for i in range(0, len(fragment), 2)]


def parse_server_hello(body: bytes) -> ServerHello:
    reader = _Reader(body, "ServerHello")
    legacy_version = reader.u16()
    if legacy_version >> 8 != 3:
        raise TLSParseError(f"ServerHello version {legacy_version:#06x}")
    random = reader.take(32)
    session_id = reader.vector(1)
    if len(session_id) > 32:
        raise TLSParseError("ServerHello session id longer than 32 bytes")
    cipher_code = reader.u16()
    compression_method = reader.u8()
    extensions: list[tuple[int, bytes]] = []
    if reader.remaining:           # SSL 3.0 / TLS 1.0 servers may omit the extension block
        block = _Reader(reader.vector(2), "ServerHello extensions")
        seen = set()
        while block.remaining:
            ext_type = block.u16()
            if ext_type in seen:
                raise TLSParseError(f"duplicate ServerHello extension {ext_type}")
            seen.add(ext_type)
            extensions.append((ext_type, block.vector(2)))
    reader.end()
    hello = ServerHello(legacy_version, random, session_id, cipher_code, compression_method, tuple(extensions))
    # Decode the typed extensions once now, so that reading them later cannot raise.
    for accessor in (ServerHello.version, ServerHello.key_share_group, ServerHello.ec_point_formats,
                     ServerHello.alpn_protocol):
        accessor.fget(hello)
    return hello


def parse_certificate(body: bytes) -> Certificate:
    reader = _Reader(body, "Certificate")
    entries = _Reader(reader.vector(3), "Certificate list")
    reader.end()
    chain = []
    while entries.remaining:
        der = entries.vector(3)
        if not der:
            raise TLSParseError("empty certificate in Certificate message")
        chain.append(der)
    return Certificate(tuple(chain))


def parse_certificate_status(body: bytes) -> CertificateStatus:
    reader = _Reader(body, "CertificateStatus")
    status_type = reader.u8()
    response = reader.vector(3)
    reader.end()
    return CertificateStatus(status_type, response)


def parse_server_key_exchange(body: bytes, cipher_code: int) -> ServerKeyExchange:
    """Reads the key-exchange parameters; the signature after them is not checked (probes never finish).

    Layout by key exchange (RFC 5246 7.4.3, RFC 4279 2, RFC 5489 2, RFC 8422 5.4): an optional
    PSK identity hint, then ServerDHParams (p, g, Ys), ServerECDHParams (curve, point) or, for
    RSA EXPORT suites, ServerRSAParams (modulus, exponent).
    """
    suite = CIPHER_SUITES.get(cipher_code)
    if suite is None:
        return ServerKeyExchange(None, body)
    reader = _Reader(body, "ServerKeyExchange")
    if suite.authentication is Authentication.PSK:
        reader.vector(2)                                     # psk_identity_hint
    if suite.key_exchange is KeyExchange.DHE:
        p, g, ys = reader.vector(2), reader.vector(2), reader.vector(2)
        if not p or not g or not ys:
            raise TLSParseError("empty DH parameter")
        parameters: DHParameters | ECDHParameters | RSAParameters | None = DHParameters(
            int.from_bytes(p, "big"), int.from_bytes(g, "big"), ys)
    elif suite.key_exchange is KeyExchange.ECDHE:
        curve_type = reader.u8()
        if curve_type == 3:                                  # named_curve
            parameters = ECDHParameters(curve_type, reader.u16(), reader.vector(1))
        else:                                                # explicit curves (deprecated): not read
            parameters = ECDHParameters(curve_type, None, b"")
    elif suite.key_exchange is KeyExchange.RSA and suite.authentication is Authentication.RSA:
        modulus, exponent = reader.vector(2), reader.vector(2)
        parameters = RSAParameters(int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big"))
    else:
        parameters = None
    return ServerKeyExchange(parameters, body)


# ---------------------------------------------------------------------------------------------
# SSL 2.0


@dataclass(frozen=True)
class SSLv2ServerHello:
    session_id_hit: bool
    certificate_type: int       # 1 = X.509
    version: int                # 0x0002
    certificate: bytes          # DER
    cipher_kinds: tuple[int, ...]
    connection_id: bytes


@dataclass(frozen=True)
class SSLv2Error:
    error_code: int             # 1 no-cipher, 2 no-certificate, 4 bad-certificate, 6 unsupported-certificate-type


def parse_sslv2_server_hello(data: bytes) -> SSLv2ServerHello | SSLv2Error | None:
    """The server's first SSLv2 record, from the bytes received so far; None while incomplete.

    Anything that is not an SSLv2 SERVER-HELLO or ERROR raises TLSParseError (a TLS server
    answering with a TLS alert or handshake record included).
    """
    if not data:
        return None
    if not data[0] & 0x80:
        # SERVER-HELLO and ERROR are never padded, so they always have the 2-byte header; a
        # clear top bit is a TLS record, a plaintext line, or other garbage.
        raise TLSParseError(f"not an SSLv2 record: first byte {data[0]:#04x}")
    if len(data) < 2:
        return None
    length = ((data[0] & 0x7F) << 8) | data[1]
    if len(data) < 2 + length:
        return None
    reader = _Reader(data[2:2 + length], "SSLv2 record")
    msg_type = reader.u8()
    if msg_type == 0:
        error = SSLv2Error(reader.u16())
        reader.end()
        return error
    if msg_type != 4:
        raise TLSParseError(f"SSLv2 message type {msg_type}, expected SERVER-HELLO")
    session_id_hit, certificate_type, version = reader.u8(), reader.u8(), reader.u16()
    certificate_length, specs_length, connection_id_length = reader.u16(), reader.u16(), reader.u16()
    if version >> 8 != 0:
        raise TLSParseError(f"SSLv2 SERVER-HELLO version {version:#06x}")
    if specs_length % 3:
        raise TLSParseError("SSLv2 cipher specs not a multiple of 3 bytes")
    certificate = reader.take(certificate_length)
    specs = reader.take(specs_length)
    connection_id = reader.take(connection_id_length)
    reader.end()
    kinds = tuple(int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs), 3))
    return SSLv2ServerHello(bool(session_id_hit), certificate_type, version, certificate, kinds, connection_id)


# ---------------------------------------------------------------------------------------------


class _Reader:
    """Bounds-checked reading of a byte string; every shortfall is a TLSParseError naming `what`."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._offset = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def take(self, count: int) -> bytes:
        if count > self.remaining:
            raise TLSParseError(f"{self._what}: truncated (wanted {count} bytes, {self.remaining} left)")
        chunk = self._data[self._offset:self._offset + count]
        self._offset += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(int.from_bytes(self.take(length_bytes), "big"))

    def end(self) -> None:
        if self.remaining:
            raise TLSParseError(f"{self._what}: {self.remaining} trailing bytes")


def _u16(data: bytes, what: str) -> int:
    reader = _Reader(data, what)
    value = reader.u16()
    reader.end()
    return value
