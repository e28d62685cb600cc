"""TLS over an already open raw stream, driven through ssl.MemoryBIO.

Doing the handshake on memory buffers instead of wrapping the socket keeps the raw
stream in our hands: the same `RawStream` that carried the STARTTLS dialogue can carry
this handshake, or a crafted ClientHello from a deeper TLS scanner.
"""

from __future__ import annotations

import _ssl
import ipaddress
import re
import ssl

from ..config import TLSSettings
from ..results import FailureReason
from .mailproto import DialogueError, RawStream

_TLS_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def client_context(settings: TLSSettings) -> ssl.SSLContext:
    """A client context that accepts any certificate, so that the facts of invalid,
    expired or misnamed chains are still collected; they are judged afterwards."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # OpenSSL's own default cipher list (what Postfix and Dovecot clients get), not
    # Python's narrower one, which would fail against older but still sane servers.
    context.set_ciphers("DEFAULT")
    if settings.min_version is not None:
        context.minimum_version = _TLS_VERSIONS[settings.min_version]
    if settings.max_version is not None:
        context.maximum_version = _TLS_VERSIONS[settings.max_version]
    if settings.only_key_type is not None:
        # TLS 1.3 picks the certificate by signature algorithms, which Python cannot restrict:
        # TLS 1.2 with only the suites authenticated by that key type.
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(_KEY_TYPE_CIPHERS[settings.only_key_type])
    return context


_KEY_TYPE_CIPHERS = {"rsa": "aRSA", "ec": "aECDSA"}


def sni_name(name: str) -> str | None:
    """The name to send as SNI: none for IP literals (RFC 6066 forbids them)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name.rstrip(".")
    return None


# OpenSSL names TLS 1.0 "TLSv1"; the deep scan, the config and the alert rules say "TLSv1.0".
_VERSION_LABELS = {"TLSv1": "TLSv1.0"}


class TLSStream:
    """The plaintext side of a TLS session whose records travel over a RawStream."""

    def __init__(self, raw: RawStream, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO):
        self.raw = raw
        self.sslobj = sslobj
        self._incoming = incoming
        self._outgoing = outgoing

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            await self.raw.send(data)

    async def _feed(self) -> None:
        data = await self.raw.recv()
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def recv(self) -> bytes:
        while True:
            try:
                data = self.sslobj.read(16 * 1024)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._feed()
                continue
            except ssl.SSLZeroReturnError:
                return b""   # the server closed the TLS session cleanly
            except ssl.SSLEOFError:
                return b""   # the TCP connection ended without close_notify
            except ssl.SSLError as exc:
                raise DialogueError(FailureReason.PROTOCOL_ERROR, f"TLS error: {_ssl_error_text(exc)}") from None
            await self._flush()
            return data

    async def until_ticket(self) -> None:
        """Read until the session holds a ticket (TLS 1.3 servers send theirs after the
        handshake, before any data), data arrives (it comes after any ticket), or the stream
        ends. Data read here is dropped."""
        while True:
            try:
                if self.sslobj.read(16 * 1024):
                    return
            except ssl.SSLWantReadError:
                session = self.sslobj.session
                if session is not None and session.has_ticket:
                    return
                await self._flush()
                await self._feed()
            except ssl.SSLError:
                return      # closed, cleanly or not, or broken: no ticket is coming

    async def send(self, data: bytes) -> None:
        try:
            self.sslobj.write(data)
        except ssl.SSLError as exc:
            raise DialogueError(FailureReason.PROTOCOL_ERROR, f"TLS error: {_ssl_error_text(exc)}") from None
        await self._flush()

    def close(self) -> None:
        """Send close_notify (so servers log a clean shutdown), then close the TCP connection."""
        try:
            self.sslobj.unwrap()
        except ssl.SSLError:
            pass   # the server's close_notify is not awaited: we are leaving anyway
        self.raw.close(last_bytes=self._outgoing.read())

    @property
    def version(self) -> str:
        """"TLSv1.0" ... "TLSv1.3", the labels used everywhere here (OpenSSL says "TLSv1")."""
        version = self.sslobj.version() or ""
        return _VERSION_LABELS.get(version, version)

    @property
    def cipher(self) -> str:
        cipher = self.sslobj.cipher()
        return cipher[0] if cipher else ""

    def presented_chain(self) -> list[bytes]:
        """The certificates the server sent, leaf first, as DER."""
        # Public as SSLObject.get_unverified_chain() (returning DER) from Python 3.13;
        # before, a private method returning _ssl.Certificate objects.
        if hasattr(self.sslobj, "get_unverified_chain"):
            chain = self.sslobj.get_unverified_chain() or []
        else:
            chain = [cert.public_bytes(_ssl.ENCODING_DER) for cert in self.sslobj._sslobj.get_unverified_chain() or []]
        if chain:
            return chain
        leaf = self.sslobj.getpeercert(binary_form=True)
        return [leaf] if leaf else []


async def tls_handshake(raw: RawStream, context: ssl.SSLContext, server_name: str, *,
                        session: ssl.SSLSession | None = None) -> TLSStream:
    """Run a client handshake over `raw`; failures become DialogueError(tls_handshake_error).
    With `session` (one an earlier connection with the same `context` got), ask to resume it.

    A connection closed or reset by the server during the handshake is reported as a
    handshake failure: that is how many servers reject a client's TLS offer.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=sni_name(server_name),
                              session=session)
    stream = TLSStream(raw, sslobj, incoming, outgoing)
    while True:
        try:
            sslobj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLEOFError:
            raise DialogueError(
                FailureReason.TLS_HANDSHAKE_ERROR, "connection closed by the server during the TLS handshake"
            ) from None
        except ssl.SSLError as exc:
            raise DialogueError(FailureReason.TLS_HANDSHAKE_ERROR, _ssl_error_text(exc)) from None
        try:
            await stream._flush()
            await stream._feed()
        except DialogueError as exc:
            raise DialogueError(FailureReason.TLS_HANDSHAKE_ERROR, f"during the TLS handshake: {exc.detail}") from None
    await stream._flush()   # the client Finished of TLS 1.2 and below
    return stream


def _ssl_error_text(exc: ssl.SSLError) -> str:
    """OpenSSL's message, e.g. "[SSL: WRONG_VERSION_NUMBER] wrong version number",
    without Python's source location suffix " (_ssl.c:1006)"."""
    return re.sub(r" \(_ssl\.c:\d+\)\Z", "", exc.strerror or str(exc))
