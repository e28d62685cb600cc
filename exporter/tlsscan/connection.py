"""One probe connection: connect, run the mail dialogue up to TLS, send one hello, read the answer
(or, once per scan at most, complete a real handshake to see a TLS 1.3 certificate).

Each hello gets a fresh TCP connection, because a server that answered a ServerHello waits
for a key exchange we never send. `Connector` opens them one after another (never two at
once), keeps `min_delay` between their starts, and counts them.

What can go wrong splits in two:
- before the hello is sent (connect, greeting, STARTTLS): the endpoint cannot be scanned
  right now; `DialogueError` is raised and the scan stops;
- after the hello is sent: whatever the server does is its answer to the hello, returned
  as a `ServerFlight` (an alert, a close, garbage, silence until the timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from dataclasses import dataclass
from typing import AsyncIterator

from ..config import Module, StartTLS
from ..results import FailureReason
from ..probes.mailproto import (
    DialogueError, LineConnection, RawStream, Transcript, connect, dialogue_for, negotiate_until_tls,
)
from ..probes.tlsconn import tls_handshake
from ..tlswire import ProtocolVersion
from ..tlswire.parse import (
    Alert, Certificate, CertificateStatus, ServerFlightParser, ServerHello, ServerHelloDone,
    ServerKeyExchange, SSLv2ServerHello, SSLv2Error, TLSParseError, parse_alerts, parse_sslv2_server_hello,
)

log = logging.getLogger(__name__)

MAX_SSLV2_ANSWER_BYTES = 64 * 1024    # an SSLv2 SERVER-HELLO is one record of at most 32 KiB


class FlightEnd(enum.StrEnum):
    """Why reading the server's answer stopped."""

    COMPLETE = "complete"              # ServerHelloDone, a TLS 1.3 ServerHello / HRR, an SSLv2 SERVER-HELLO
    ALERT = "alert"                    # a TLS alert (or an SSLv2 ERROR)
    CLOSED = "closed"                  # the server closed or reset the connection between two messages
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol_error"  # bytes that are not TLS (SSLv2), or a record / message cut short


@dataclass(frozen=True)
class ServerFlight:
    """The server's answer to one hello, as far as it was read."""

    end: FlightEnd
    detail: str = ""
    server_hello: ServerHello | None = None
    certificate: Certificate | None = None
    key_exchange: ServerKeyExchange | None = None
    certificate_status: CertificateStatus | None = None
    alert: Alert | None = None
    sslv2_hello: SSLv2ServerHello | None = None


class Connector:
    """Opens the scan's connections to one address, strictly one at a time."""

    def __init__(self, address: str, port: int, module: Module, *, connection_timeout: float,
                 min_delay: float = 0.0):
        self.address = address
        self.port = port
        self.module = module
        self.connection_timeout = connection_timeout
        self.min_delay = min_delay
        self.connections = 0
        self._last_start: float | None = None
        self._lock = asyncio.Lock()

    async def exchange(self, hello: bytes, *, sslv2: bool = False) -> ServerFlight:
        """Send `hello` on a fresh connection and read the answer (an SSLv2 one when `sslv2`).

        Raises DialogueError when the connection or the dialogue before TLS fails; the
        whole exchange, dialogue included, is bounded by `connection_timeout`.
        """
        async with self.connection_at_tls() as (raw, deadline):
            await raw.send(hello)
            reader = read_sslv2_answer if sslv2 else read_tls_flight
            try:
                async with asyncio.timeout_at(deadline):
                    return await reader(raw)
            except TimeoutError:
                return ServerFlight(FlightEnd.TIMEOUT, f"no complete answer within {self.connection_timeout:g} s")

    async def presented_chain(self, context: ssl.SSLContext, server_name: str) -> tuple[bytes, ...]:
        """Complete one real handshake with `context` on a fresh connection and return the
        certificates the server presented, leaf first (TLS 1.3 encrypts them, so a hello
        alone cannot show them); () when the handshake fails or does not finish in time.

        Raises DialogueError, like `exchange`, when the connection or the dialogue before TLS fails.
        """
        async with self.connection_at_tls() as (raw, deadline):
            try:
                async with asyncio.timeout_at(deadline):
                    stream = await tls_handshake(raw, context, server_name)
            except TimeoutError:
                log.info("TLS handshake with %s port %d not done within %g s", self.address, self.port,
                         self.connection_timeout)
                return ()
            except DialogueError as exc:
                log.info("TLS handshake with %s port %d failed: %s", self.address, self.port, exc.detail)
                return ()
            chain = tuple(stream.presented_chain())
            stream.close()
            return chain

    @contextlib.asynccontextmanager
    async def fresh_connection(self) -> AsyncIterator[tuple[RawStream, float]]:
        """A fresh, counted connection, before any byte is exchanged, and the loop time by
        which everything on it must be done. Closed on exit. Raises DialogueError when the
        connection cannot be opened."""
        async with self._lock:
            await self._pace()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.connection_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await connect(self.address, self.port)
            except TimeoutError:
                raise DialogueError(FailureReason.CONNECT_TIMEOUT,
                                    f"no TCP connection within {self.connection_timeout:g} s") from None
            self.connections += 1
            try:
                yield raw, deadline
            finally:
                raw.close()

    @contextlib.asynccontextmanager
    async def connection_at_tls(self) -> AsyncIterator[tuple[RawStream, float]]:
        """A fresh, counted connection on which the next bytes are a TLS handshake, and the loop
        time by which everything on it must be done. Closed on exit."""
        async with self.fresh_connection() as (raw, deadline):
            try:
                async with asyncio.timeout_at(deadline):
                    await self._until_tls(raw)
            except TimeoutError:
                raise DialogueError(FailureReason.TIMEOUT,
                                    f"dialogue before TLS not done within {self.connection_timeout:g} s") from None
            yield raw, deadline

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        if self._last_start is not None and self.min_delay > 0:
            wait = self._last_start + self.min_delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_start = loop.time()

    async def _until_tls(self, raw: RawStream) -> None:
        protocol = self.module.protocol
        dialogue = dialogue_for(protocol, LineConnection(raw, Transcript()), self.module)
        # A scan is about TLS: STARTTLS is always required, whatever the module says.
        starttls = StartTLS.NONE if protocol.implicit_tls else StartTLS.REQUIRED
        facts = await negotiate_until_tls(dialogue, protocol, starttls)
        if not facts.tls_starts:
            raise DialogueError(FailureReason.STARTTLS_NOT_OFFERED, "TLS does not start on this endpoint")


class _FlightSoFar:
    """The messages of a flight collected while reading it."""

    def __init__(self) -> None:
        self.parser = ServerFlightParser()
        self.certificate: Certificate | None = None
        self.key_exchange: ServerKeyExchange | None = None
        self.certificate_status: CertificateStatus | None = None
        self.alert: Alert | None = None

    def finish(self, end: FlightEnd, detail: str = "") -> ServerFlight:
        return ServerFlight(end, detail, self.parser.server_hello, self.certificate, self.key_exchange,
                            self.certificate_status, self.alert)

    def end_of_stream(self, detail: str) -> ServerFlight:
        """The server closed (or reset) the connection before the flight was complete.

        Between two messages that is a refusal like any other; inside a record or a handshake
        message it is a truncated answer, which no TLS implementation sends on purpose.
        """
        if self.parser.pending:
            return self.finish(FlightEnd.PROTOCOL_ERROR,
                               f"{detail} after {self.parser.pending} bytes of an incomplete record or message")
        return self.finish(FlightEnd.CLOSED, detail)


async def read_tls_flight(stream: RawStream) -> ServerFlight:
    """Read until the flight is complete (ServerHelloDone; TLS 1.3: the ServerHello, the rest is
    encrypted), an alert, the end of the stream, or bytes that are not TLS."""
    so_far = _FlightSoFar()
    while True:
        try:
            data = await stream.recv()
        except DialogueError as exc:           # reset by the server
            return so_far.end_of_stream(exc.detail)
        if not data:
            return so_far.end_of_stream("connection closed")
        try:
            messages = so_far.parser.feed(data)
        except TLSParseError as exc:
            return so_far.finish(FlightEnd.PROTOCOL_ERROR, str(exc))
        for message in messages:
            if isinstance(message, Alert):
                so_far.alert = message
                return so_far.finish(FlightEnd.ALERT, message.name)
            if isinstance(message, ServerHello):
                if message.is_hello_retry_request or message.version >= ProtocolVersion.TLS1_3:
                    return so_far.finish(FlightEnd.COMPLETE)
            elif isinstance(message, Certificate):
                so_far.certificate = message
            elif isinstance(message, ServerKeyExchange):
                so_far.key_exchange = message
            elif isinstance(message, CertificateStatus):
                so_far.certificate_status = message
            elif isinstance(message, ServerHelloDone):
                return so_far.finish(FlightEnd.COMPLETE)


async def read_sslv2_answer(stream: RawStream) -> ServerFlight:
    """Read the server's first SSLv2 record: a SERVER-HELLO, an ERROR, or anything else."""
    received = b""
    while True:
        tls_alert = _tls_alert_record(received)
        if tls_alert is not None:
            # A TLS-only server answers an SSLv2 hello with a TLS alert, or just closes.
            return ServerFlight(FlightEnd.ALERT, tls_alert.name, alert=tls_alert)
        try:
            answer = parse_sslv2_server_hello(received)
        except TLSParseError as exc:
            return ServerFlight(FlightEnd.PROTOCOL_ERROR, str(exc))
        if isinstance(answer, SSLv2ServerHello):
            return ServerFlight(FlightEnd.COMPLETE, sslv2_hello=answer)
        if isinstance(answer, SSLv2Error):
            return ServerFlight(FlightEnd.ALERT, f"SSLv2 error {answer.error_code}")
        if len(received) > MAX_SSLV2_ANSWER_BYTES:
            return ServerFlight(FlightEnd.PROTOCOL_ERROR, "SSLv2 answer too long")
        try:
            data = await stream.recv()
        except DialogueError as exc:
            return _sslv2_end_of_stream(received, exc.detail)
        if not data:
            return _sslv2_end_of_stream(received, "connection closed")
        received += data


def _tls_alert_record(received: bytes) -> Alert | None:
    """The alert, when `received` starts with a whole TLS alert record (type 21, version 3.x,
    length 2). An SSLv2 server's records have a 2-byte header with the high bit set, so they
    never start with 21."""
    if len(received) < 7 or received[0] != 21 or received[1] != 3 or received[3:5] != b"\x00\x02":
        return None
    alerts = parse_alerts(received[5:7])
    return alerts[0] if alerts else None


def _sslv2_end_of_stream(received: bytes, detail: str) -> ServerFlight:
    """A close before any byte is a refusal; a close inside the SSLv2 record is a truncated answer."""
    if received:
        return ServerFlight(FlightEnd.PROTOCOL_ERROR, f"{detail} after {len(received)} bytes of an incomplete SSLv2 record")
    return ServerFlight(FlightEnd.CLOSED, detail)
