"""Session resumption: does the server let a client skip the full handshake on its next
connection, by session ID (its session cache) or by ticket (RFC 5077 in TLS <= 1.2, a PSK
ticket in TLS 1.3)? What testssl.sh (`run_sessionresumption`) and sslyze (`session_resumption`)
report, with one attempt each instead of their five: a mail server is not a web server, and
connections are what it rate-limits.

Each attempt is two connections: a real handshake (Python's ssl, the same client as the
endpoint probe) and a clean close (close_notify: an OpenSSL server drops from its cache a
session that ended without one); then a new connection offering that session.
`session_reused` of the second says whether the server resumed it.

- By ticket first, in the best version the server speaks (what its clients get). TLS 1.3
  servers send their tickets after the handshake, before any data: the first connection reads
  until a ticket or data comes (the greeting of implicit TLS; after STARTTLS, where the server
  waits for the client, the answer to our QUIT / LOGOUT).
  No ticket in the first handshake: not resumable by ticket, no second connection. The
  ticket's lifetime hint comes from the same NewSessionTicket.
- By session ID: TLS 1.2 at most, tickets not offered (OP_NO_TICKET), so that only the
  server's session cache can resume. An empty session ID: not resumable, no second connection.
  TLS 1.3 has no resumption by ID: a server without TLS 1.2 gets None.

When the very first handshake fails (a server our client cannot talk to), nothing else is
tried: `handshake_completed` is False and the renegotiation check is skipped as well.
At most four connections, each counted and paced by the scan's Connector.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl

from ..config import Module
from ..probes.mailproto import DialogueError
from ..probes.tlsconn import TLSStream, client_context, tls_handshake
from ..tlswire import ProtocolVersion
from .connection import Connector
from .injection import PLANS
from .results import Resumption, SessionResumption

log = logging.getLogger(__name__)

_VERSIONS = {"TLSv1": ProtocolVersion.TLS1_0, "TLSv1.1": ProtocolVersion.TLS1_1,
             "TLSv1.2": ProtocolVersion.TLS1_2, "TLSv1.3": ProtocolVersion.TLS1_3}


@dataclasses.dataclass(frozen=True)
class _Handshake:
    """What one connection showed: the session (with the tickets read), whether it was resumed."""

    session: ssl.SSLSession | None
    reused: bool
    version: ProtocolVersion | None


class _NoHandshake(Exception):
    """A connection gave no completed handshake; the message says why."""


async def check_session_resumption(connector: Connector, module: Module, server_name: str,
                                   versions: tuple[ProtocolVersion, ...]) -> SessionResumption:
    """Resumption by ticket and by session ID (see the module docstring); `versions`: those the
    scan found supported. Never raises for what a server does."""
    ticket_context = client_context(module.tls)
    try:
        first = await _handshake(connector, module, ticket_context, server_name)
    except _NoHandshake as exc:
        failed = Resumption(None, f"handshake failed: {exc}")
        return SessionResumption(failed, failed, handshake_completed=False)
    ticket, hint = await _by_ticket(connector, module, ticket_context, server_name, first)
    if ProtocolVersion.TLS1_2 not in versions:
        by_id = Resumption(None, "no TLS 1.2 (TLS 1.3 resumes by ticket only)")
    else:
        by_id = await _by_session_id(connector, module, server_name)
    return SessionResumption(by_id, ticket, hint)


async def _by_ticket(connector: Connector, module: Module, context: ssl.SSLContext, server_name: str,
                     first: _Handshake) -> tuple[Resumption, int | None]:
    session = first.session
    if session is None or not session.has_ticket:
        return Resumption(False, "no ticket given", first.version), None
    return await _resume(connector, module, context, server_name, first), session.ticket_lifetime_hint


async def _by_session_id(connector: Connector, module: Module, server_name: str) -> Resumption:
    context = client_context(module.tls)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_TICKET
    try:
        first = await _handshake(connector, module, context, server_name)
    except _NoHandshake as exc:
        return Resumption(None, f"handshake failed: {exc}")
    if first.session is None or not first.session.id:
        return Resumption(False, "no session ID given", first.version)
    return await _resume(connector, module, context, server_name, first)


async def _resume(connector: Connector, module: Module, context: ssl.SSLContext, server_name: str,
                  first: _Handshake) -> Resumption:
    """The second connection, offering the first one's session."""
    try:
        second = await _handshake(connector, module, context, server_name, first.session)
    except _NoHandshake as exc:
        return Resumption(None, f"second handshake failed: {exc}", first.version)
    return Resumption(second.reused, "resumed" if second.reused else "not resumed", first.version)


async def _handshake(connector: Connector, module: Module, context: ssl.SSLContext, server_name: str,
                     session: ssl.SSLSession | None = None) -> _Handshake:
    """One connection: the handshake (offering `session`), the greeting of implicit TLS, our
    goodbye, a clean close. Raises _NoHandshake when the handshake does not complete."""
    try:
        async with connector.connection_at_tls() as (raw, deadline):
            try:
                async with asyncio.timeout_at(deadline):
                    stream = await tls_handshake(raw, context, server_name, session=session)
            except TimeoutError:
                raise _NoHandshake(f"no handshake within {connector.connection_timeout:g} s") from None
            try:
                async with asyncio.timeout_at(deadline):
                    await _read_tls13_tickets(stream, module)
            except (DialogueError, TimeoutError) as exc:
                # The handshake is what counts; without a ticket the verdict is "no ticket given".
                log.info("Session resumption check of %s port %d: no ticket after the handshake: %s", connector.address,
                         connector.port, exc.detail if isinstance(exc, DialogueError) else "timeout")
            result = _Handshake(stream.sslobj.session, stream.sslobj.session_reused, _VERSIONS.get(stream.sslobj.version() or ""))
            stream.close()
            return result
    except DialogueError as exc:
        raise _NoHandshake(exc.detail) from None


async def _read_tls13_tickets(stream: TLSStream, module: Module) -> None:
    """TLS 1.3: read the tickets the server sends after the handshake (TLS <= 1.2 sends its
    ticket within the handshake). After STARTTLS the server waits for a command: ours is the
    closing one, whose answer comes after any ticket."""
    if stream.version != "TLSv1.3" or (stream.sslobj.session is not None and stream.sslobj.session.has_ticket):
        return
    if not module.protocol.implicit_tls:
        await stream.send(PLANS[module.protocol.family].after_tls)
    await stream.until_ticket()
