"""A model TLS server for the fake server of fake.py: it negotiates like a real one (versions,
suites, groups, its own order or the client's) from a declared configuration, so that a test
can check the scan's findings and its connection count against what was declared, for many
configurations no real server here has (hypothesis draws them)."""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.tlswire import ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES, Authentication, KeyExchange
from tests.tlsservers.fake import SERVER_HELLO_DONE, OfferedHello, alert, server_hello, tls13_server_hello

HANDSHAKE_FAILURE, PROTOCOL_VERSION, INAPPROPRIATE_FALLBACK = 40, 70, 86
FALLBACK_SCSV = 0x5600
RENEGOTIATION_INFO = b"\xff\x01\x00\x01\x00"
EXTENDED_MASTER_SECRET = b"\x00\x17\x00\x00"
STATUS_REQUEST = b"\x00\x05\x00\x00"
_DH_PRIME_1024 = (1 << 1023) | 0x3   # only its size is read


@dataclass(frozen=True)
class ModelServer:
    """`suites`: per version, the accepted suites in the server's preference order.
    `own_order`: pick suites by that preference (else the client's first acceptable suite),
    and TLS 1.2 curves likewise. `tls13_own_group_order`: the group of a HelloRetryRequest is
    the server's favourite among those offered (OpenSSL 3.0, whatever `own_order`), else the
    client's first. `closes`: refuse by closing instead of an alert.
    `failing`: suites it picks but cannot serve (it then closes, like Dovecot on DHE without
    DH parameters)."""

    suites: dict[ProtocolVersion, tuple[int, ...]]
    own_order: bool = False
    groups: tuple[int, ...] = (29, 23, 24)           # x25519, secp256r1, secp384r1, by preference
    tls12_groups: tuple[int, ...] | None = None       # EC curves for ECDHE below TLS 1.3; None: `groups`
    tls13_own_group_order: bool = True
    closes: bool = False
    failing: frozenset[int] = field(default_factory=frozenset)
    echoes_status_request: bool = False     # the ServerHello echoes status_request (TLS <= 1.2)
    staple: bytes | None = None             # a CertificateStatus with this OCSP response follows the Certificate
    honours_fallback_scsv: bool = True      # RFC 7507: inappropriate_fallback to a fallback hello

    def respond(self, hello: OfferedHello) -> bytes:
        if hello.sslv2:
            return self._refuse(HANDSHAKE_FAILURE)
        version = ProtocolVersion(hello.version)
        accepted = self.suites.get(version, ())
        if not accepted:
            return self._refuse(PROTOCOL_VERSION)
        if (self.honours_fallback_scsv and FALLBACK_SCSV in hello.cipher_codes
                and any(v > version and codes for v, codes in self.suites.items())):
            return alert(INAPPROPRIATE_FALLBACK)
        if version is ProtocolVersion.TLS1_3:
            return self._tls13(hello, accepted)
        curves = self.groups if self.tls12_groups is None else self.tls12_groups
        shared_curves = self._in_order(hello.groups, curves, self.own_order)
        usable = [code for code in hello.cipher_codes if code in accepted
                  and (CIPHER_SUITES[code].key_exchange is not KeyExchange.ECDHE or shared_curves)]
        if not usable:
            return self._refuse(HANDSHAKE_FAILURE)
        code = min(usable, key=accepted.index) if self.own_order else usable[0]
        if code in self.failing:
            return b""
        extensions = RENEGOTIATION_INFO + EXTENDED_MASTER_SECRET + (STATUS_REQUEST if self.echoes_status_request else b"")
        answer = server_hello(version, code, extensions=extensions if version > ProtocolVersion.SSL3 else b"")
        certificate = _certificate_der()
        answer += _handshake_record(0x0B, _vector3(_vector3(certificate)))
        if self.staple is not None:
            answer += _handshake_record(0x16, b"\x01" + _vector3(self.staple))
        suite = CIPHER_SUITES[code]
        hint = b"\x00\x00" if suite.authentication is Authentication.PSK else b""   # empty psk_identity_hint
        if suite.key_exchange is KeyExchange.ECDHE:
            answer += _handshake_record(0x0C, hint + b"\x03" + shared_curves[0].to_bytes(2, "big") + b"\x01\x04")
        elif suite.key_exchange is KeyExchange.DHE:
            prime = _DH_PRIME_1024.to_bytes(128, "big")
            answer += _handshake_record(0x0C, hint + len(prime).to_bytes(2, "big") + prime + b"\x00\x01\x02\x00\x01\x05")
        return answer + SERVER_HELLO_DONE

    def _tls13(self, hello: OfferedHello, accepted: tuple[int, ...]) -> bytes:
        usable = [code for code in hello.cipher_codes if code in accepted]
        shared = self._in_order(hello.groups, self.groups, self.tls13_own_group_order)
        if not usable or not shared:
            return self._refuse(HANDSHAKE_FAILURE)
        code = min(usable, key=accepted.index) if self.own_order else usable[0]
        share = next((group for group in hello.key_share_groups if group in self.groups), None)
        if share is not None:                      # a usable key share is taken as it is (OpenSSL 3.0)
            return tls13_server_hello(code, share, retry=False)
        return tls13_server_hello(code, shared[0], retry=True)

    @staticmethod
    def _in_order(offered: tuple[int, ...], supported: tuple[int, ...], own_order: bool) -> list[int]:
        """The groups both sides have, by the server's preference or the client's."""
        if own_order:
            return [group for group in supported if group in offered]
        return [group for group in offered if group in supported]

    def _refuse(self, description: int) -> bytes:
        return b"" if self.closes else alert(description)


@functools.cache
def _certificate_der() -> bytes:
    """A self-signed certificate for the Certificate message (as real TLS <= 1.2 servers send)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.DER)


def _vector3(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


def _handshake_record(message_type: int, body: bytes) -> bytes:
    message = bytes([message_type]) + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(message).to_bytes(2, "big") + message
