"""Client-initiated renegotiation (TLS <= 1.2): does the server run a new handshake when the
client asks for one inside an established session, and how many in a row?

A server that accepts gives every client a lever to make it do full handshakes (public-key
operations) at the cost of a few bytes each: internet.nl fails mail servers on it, testssl.sh
(`run_renego`) and sslyze (`session_renegotiation`, "vulnerable to DoS") report it. (RFC 5746
secure renegotiation, `secure_renegotiation` in the results, is another matter: whether a
renegotiation, when it happens, is bound to the session it renegotiates.)

One connection: the dialogue up to TLS, a TLS 1.2 handshake (pyOpenSSL: Python's ssl module
cannot renegotiate), then renegotiations one after another until the server refuses one (a
no_renegotiation alert, which OpenSSL servers send since 3.0 unless told otherwise; another
alert; a close) or MAX_RENEGOTIATIONS were accepted; then close_notify. No mail command is
sent inside TLS (data the server sends, the greeting of implicit TLS, is read and dropped).
The client allows legacy (RFC 5746-less) servers and renegotiation with them, so that an old
server's answer is measured too. TLS 1.3 has no renegotiation: a server without TLS 1.2 gets
None and no connection (one with neither TLS 1.2 nor 1.3 is not checked by the scan at all).

Silence until the connection's timeout is no verdict for the first renegotiation (None); after
k accepted ones it leaves `accepted` True and `in_a_row` None (k depends on timing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import Module
from ..probes.mailproto import DialogueError, RawStream
from ..probes.tlsconn import sni_name
from ..tlswire import ProtocolVersion
from .connection import Connector
from .results import ClientRenegotiation

if TYPE_CHECKING:
    from OpenSSL import SSL

log = logging.getLogger(__name__)

# As testssl.sh and sslyze: a server that accepts this many in a row accepts any number.
MAX_RENEGOTIATIONS = 10

# SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION (OpenSSL's ssl.h; pyOpenSSL does not name it).
_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION = 0x00040000

class _Refused(Exception):
    """The server refused (an alert, a TLS error, a close); the message says how."""


class _OpenSSLStream:
    """A pyOpenSSL client connection over a RawStream, on memory BIOs: handshake, renegotiate."""

    def __init__(self, raw: RawStream, connection: SSL.Connection):
        self.raw = raw
        self.connection = connection

    def _call(self, step: Callable[[], object]) -> bool:
        """Call `step`; False when OpenSSL needs bytes from the server first. Raises _Refused."""
        from OpenSSL import SSL
        try:
            step()
        except SSL.WantReadError:
            return False
        except SSL.ZeroReturnError:
            raise _Refused("closed (close_notify)") from None
        except SSL.Error as exc:
            raise _Refused(_error_text(exc)) from None
        return True

    def _outgoing(self) -> bytes:
        from OpenSSL import SSL
        data = b""
        while True:
            try:
                data += self.connection.bio_read(64 * 1024)
            except SSL.WantReadError:
                return data

    async def _flush(self) -> None:
        data = self._outgoing()
        if data:
            await self.raw.send(data)

    async def _feed(self) -> None:
        data = await self.raw.recv()
        if not data:
            raise _Refused("closed")
        self.connection.bio_write(data)

    async def handshake(self) -> None:
        while not self._call(self.connection.do_handshake):
            await self._flush()
            await self._feed()
        await self._flush()

    async def renegotiate(self) -> None:
        """One client-initiated renegotiation, to its end; raises _Refused. Driven by reads, as
        an application would: data the server sends meanwhile (the greeting of implicit TLS)
        is dropped."""
        if not self.connection.renegotiate():
            raise _Refused("our client could not start a renegotiation")
        while self.connection.renegotiate_pending():
            # The first read sends our hello; the next ones read the server's answer.
            if self._call(lambda: self.connection.recv(16 * 1024)):
                continue
            await self._flush()
            if self.connection.renegotiate_pending():
                await self._feed()
        await self._flush()

    def close(self) -> None:
        """close_notify when the session is still up, our alert when it failed; then close."""
        from OpenSSL import SSL
        try:
            self.connection.shutdown()
        except SSL.Error:
            pass
        self.raw.close(last_bytes=self._outgoing())


def _error_text(exc: Exception) -> str:
    """pyOpenSSL's [(library, function, reason), ...] as "reason; reason"."""
    reasons = [entry[2] for entry in exc.args[0] if isinstance(entry, tuple) and len(entry) == 3] \
        if exc.args and isinstance(exc.args[0], list) else []
    return "; ".join(reasons) or str(exc) or type(exc).__name__


def _client(server_name: str) -> SSL.Connection:
    from OpenSSL import SSL
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_NONE)
    context.set_cipher_list(b"DEFAULT")
    context.set_options(SSL.OP_LEGACY_SERVER_CONNECT | _OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION)
    connection = SSL.Connection(context, None)
    connection.set_connect_state()
    name = sni_name(server_name)
    if name is not None:
        connection.set_tlsext_host_name(name.encode("idna"))
    return connection


async def check_client_renegotiation(connector: Connector, module: Module, server_name: str,
                                     versions: tuple[ProtocolVersion, ...]) -> ClientRenegotiation:
    """See the module docstring; `versions`: those the scan found supported. Never raises for
    what a server does."""
    if ProtocolVersion.TLS1_2 not in versions:
        return ClientRenegotiation(None, None, "no TLS 1.2 (TLS 1.3 has no renegotiation)")
    try:
        async with connector.connection_at_tls() as (raw, deadline):
            stream = _OpenSSLStream(raw, _client(server_name))
            try:
                return await _series(stream, deadline, connector.connection_timeout)
            finally:
                stream.close()
    except DialogueError as exc:
        log.info("Client renegotiation check of %s port %d: %s", connector.address, connector.port, exc.detail)
        return ClientRenegotiation(None, None, exc.detail)


async def _series(stream: _OpenSSLStream, deadline: float, timeout: float) -> ClientRenegotiation:
    """The handshake, then renegotiations until a refusal or MAX_RENEGOTIATIONS."""
    try:
        async with asyncio.timeout_at(deadline):
            await stream.handshake()
    except _Refused as exc:
        return ClientRenegotiation(None, None, f"handshake failed: {exc}")
    except TimeoutError:
        return ClientRenegotiation(None, None, f"no handshake within {timeout:g} s")
    accepted = 0
    try:
        async with asyncio.timeout_at(deadline):
            while accepted < MAX_RENEGOTIATIONS:
                await stream.renegotiate()
                accepted += 1
    except _Refused as exc:
        if accepted == 0:
            return ClientRenegotiation(False, 0, f"refused: {exc}")
        return ClientRenegotiation(True, accepted, f"accepted {accepted}, then refused: {exc}")
    except TimeoutError:
        if accepted == 0:
            return ClientRenegotiation(None, None, f"no answer within {timeout:g} s")
        return ClientRenegotiation(True, None, f"accepted {accepted} before the {timeout:g} s timeout")
    return ClientRenegotiation(True, accepted, f"accepted {MAX_RENEGOTIATIONS} in a row")
