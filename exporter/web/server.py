"""The HTTP server's defences against its own clients: a cap on open connections kept well
under the descriptor limit, a deadline for reading each request, size limits on requests,
and logs that count noisy events instead of repeating them.

aiohttp has size limits but no deadline for reading a request's headers, and asyncio's own
accept loop logs every failed accept with a traceback. So the exporter accepts connections
itself (`ConnectionGuard`): each accepted socket is counted from accept to close (through a
TLS handshake too), gets a deadline while it is not inside a request handler, and is then
handed to aiohttp's request handler as usual.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import os
import resource
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..logfmt import with_fields
from ..presentation import printable

log = logging.getLogger("exporter.http")

# Request sizes, enforced by aiohttp's parser (answered 400) and by request.read() (413).
MAX_LINE_BYTES = 8190          # the request line, e.g. a /probe URL
MAX_FIELD_BYTES = 8190         # one header line; browsers' Cookie headers fit
MAX_HEADERS = 64
MAX_BODY_BYTES = 64 * 1024     # no endpoint takes a body; an unread one is discarded

# A connection gets this long to deliver a request (headers and body), counted from accept
# (the TLS handshake included) and again from the end of each answer (keep-alive idle).
# A Prometheus scrape sends its whole request at once; a client sending one header line
# every 10 s is cut off after this.
READ_TIMEOUT_SECONDS = 5.0

# A quarter of the descriptor limit, never fewer than MIN_CONNECTIONS nor more than
# MAX_CONNECTIONS: the other three quarters stay free for the probes' connections, DNS
# sockets and files, so that a flood of clients cannot starve the probes.
MIN_CONNECTIONS = 16
MAX_CONNECTIONS = 4096

# A client that reads nothing of its answer for this long is cut off; at the cap, one that is
# not reading now is evicted like an idle one. A scraper reading a 30 MB /metrics resumes
# within milliseconds.
WRITE_STALL_SECONDS = 30.0

LOG_INTERVAL_SECONDS = 60.0
ACCEPT_RETRY_SECONDS = 0.1     # after the system refused a descriptor
LISTEN_BACKLOG = 1024


def connection_cap(descriptor_limit: int) -> int:
    """The most HTTP connections open at once under a soft RLIMIT_NOFILE of `descriptor_limit`."""
    if descriptor_limit < 0 or descriptor_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, descriptor_limit // 4))


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int
    read_timeout: float = READ_TIMEOUT_SECONDS
    write_stall_timeout: float = WRITE_STALL_SECONDS

    @classmethod
    def for_this_process(cls) -> ServerLimits:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(connection_cap(soft))

    @staticmethod
    def handler_args() -> dict[str, Any]:
        """aiohttp's request handler arguments for the request sizes."""
        return {"max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_FIELD_BYTES, "max_headers": MAX_HEADERS}


class ServerEvent(enum.Enum):
    """What the server logs by count, once per interval, because a client can cause it at will."""

    ACCEPT_FAILED = "accept_failed"                  # the system refused a descriptor (EMFILE, ...)
    OVER_CAPACITY = "over_capacity"                  # at the cap, every connection busy: closed at once
    EVICTED = "evicted"                              # at the cap: the longest-idle connection closed for a new one
    READ_TIMEOUT = "read_timeout"                    # no complete request within the read timeout
    WRITE_STALLED = "write_stalled"                  # the client read nothing of its answer for too long
    MALFORMED_REQUEST = "malformed_request"          # answered 400 by aiohttp's parser
    TLS_HANDSHAKE_FAILED = "tls_handshake_failed"


class EventTally:
    """Counts `ServerEvent`s and logs each kind at most once per `interval`: the first one at
    once, the ones after it as one line with their count when the interval ends."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS, logger: logging.Logger = log,
                 clock: Callable[[], float] = time.monotonic,
                 count: Callable[[ServerEvent], None] = lambda kind: None):
        self._count = count       # every event, for a counter: the log lines are rate-limited
        self._interval = interval
        self._logger = logger
        self._clock = clock
        self._counts: dict[ServerEvent, int] = {}
        self._last_detail: dict[ServerEvent, str] = {}
        self._next_log_at: dict[ServerEvent, float] = {}
        self._flush_scheduled: set[ServerEvent] = set()

    def add(self, kind: ServerEvent, detail: str = "") -> None:
        self._count(kind)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        self._last_detail[kind] = printable(" ".join(detail[:200].split()))   # one line, no controls
        now = self._clock()
        due = self._next_log_at.get(kind, now)
        if now >= due:
            self._flush(kind)
        elif kind not in self._flush_scheduled:
            self._flush_scheduled.add(kind)
            asyncio.get_running_loop().call_later(due - now, self._flush, kind)

    def _flush(self, kind: ServerEvent) -> None:
        self._flush_scheduled.discard(kind)
        self._next_log_at[kind] = self._clock() + self._interval
        count = self._counts.pop(kind, 0)
        if count:
            self._logger.warning("http server: %s", kind.value.replace("_", " "), extra=with_fields(
                event=kind.value, count=count, last=self._last_detail[kind],
                logged_at_most_every=f"{self._interval:g}s"))


class ServerLog:
    """The logger given to aiohttp's request handler. A malformed request is counted (it
    would be an ERROR with a traceback, per request: a log-flood lever); a client that left
    mid-answer (a Prometheus scrape timeout) is a debug line without traceback; anything
    else goes to aiohttp's logger unchanged."""

    def __init__(self, tally: EventTally, logger: logging.Logger = logging.getLogger("aiohttp.server")):
        self._tally = tally
        self._logger = logger

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, msg, args, kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.WARNING, msg, args, kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, args, {**kwargs, "exc_info": exc_info})

    def _log(self, level: int, msg: str, args: tuple, kwargs: dict[str, Any]) -> None:
        error = _exception_of(kwargs.get("exc_info"))
        if isinstance(error, HttpProcessingError):
            self._tally.add(ServerEvent.MALFORMED_REQUEST, error.message or type(error).__name__)
        elif isinstance(error, ConnectionError):
            self._logger.debug("client went away: %s", printable(str(error) or type(error).__name__))
        else:
            self._logger.log(level, msg, *args, **kwargs)


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if exc_info is True:
        return sys.exc_info()[1]
    if isinstance(exc_info, tuple):
        return exc_info[1]
    return None


def listening_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets on every address of `host` (every interface when
    None), as asyncio's create_server binds them. Raises OSError (address in use, unknown host)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@dataclass(eq=False)
class _Connection:
    """One accepted connection, from accept to close."""

    transport: asyncio.BaseTransport | None = None     # None until connected (TLS: handshake done)
    starter: asyncio.Task | None = None
    deadline: asyncio.TimerHandle | None = None
    busy: int = 0                                      # requests inside a handler now
    stall: asyncio.TimerHandle | None = None           # set while the client reads nothing of its answer
    closing: bool = False
    peer: str = ""


class _TrackedProtocol(asyncio.Protocol):
    """aiohttp's request handler behind a thin layer that tells the guard when the connection
    is up and when it is gone."""

    def __init__(self, handler: asyncio.Protocol, connection: _Connection, guard: ConnectionGuard):
        self._handler = handler
        self._connection = connection
        self._guard = guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard._connected(self._connection, transport)
        self._handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._handler.connection_lost(exc)
        finally:
            self._guard._release(self._connection)

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._guard._write_paused(self._connection)
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._guard._write_resumed(self._connection)
        self._handler.resume_writing()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionGuard:
    """Accepts connections on the listening sockets and hands them to aiohttp, within the limits.

    At most `limits.max_connections` are open. When one more arrives, the connection that has
    been idle the longest (waiting for a request, not inside a handler) is closed to make room,
    so a flood of slow clients evicts itself while a scrape, which sends its request at once,
    gets in; if every connection is busy inside a handler, the new one is closed at once.
    A connection gets `limits.read_timeout` seconds to deliver each request; time inside a
    handler, writing the answer included, does not count (`middleware` marks it).
    """

    def __init__(self, limits: ServerLimits, tally: EventTally, tls: ssl.SSLContext | None = None):
        self._limits = limits
        self._tally = tally
        self._tls = tls
        self._open: dict[_Connection, None] = {}          # the longest idle first
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._closing = 0
        self._accepting: list[asyncio.Task] = []
        self._listeners: list[socket.socket] = []
        self._protocol_factory: Callable[[], asyncio.Protocol] | None = None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def start(self, listeners: list[socket.socket], protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self._listeners = listeners
        self._protocol_factory = protocol_factory
        self._accepting = [asyncio.create_task(self._accept_forever(sock)) for sock in listeners]

    def close(self) -> None:
        """Stop accepting; end the TLS handshakes still running (aiohttp closes the rest)."""
        for task in self._accepting:
            task.cancel()
        for sock in self._listeners:
            sock.close()
        for connection in list(self._open):
            if connection.transport is None and connection.starter is not None:
                connection.starter.cancel()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = self._by_transport.get(request.transport)
        if connection is None:           # not accepted by this guard (aiohttp's test server)
            return await handler(request)
        self._became_busy(connection)
        try:
            response = await handler(request)
            await response.prepare(request)       # the answer is written while the request counts as busy
            await response.write_eof()
            return response
        finally:
            self._became_idle(connection)

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except OSError as exc:
                self._tally.add(ServerEvent.ACCEPT_FAILED, os.strerror(exc.errno) if exc.errno else str(exc))
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._evict_longest_idle()       # its descriptor, for the next accept
                    await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            self._admit(sock, peer)
            await asyncio.sleep(0)   # sock_accept does not yield while the backlog is full: let the rest run

    def _admit(self, sock: socket.socket, peer: Any) -> None:
        if len(self._open) - self._closing >= self._limits.max_connections and not self._evict_longest_idle():
            self._tally.add(ServerEvent.OVER_CAPACITY, f"{self._limits.max_connections} connections, all busy")
            sock.close()
            return
        sock.setblocking(False)
        connection = _Connection(peer=str(peer[0]) if isinstance(peer, tuple) else "")
        self._open[connection] = None
        self._arm_deadline(connection)
        connection.starter = asyncio.create_task(self._start(sock, connection))
        # A done callback, not a `finally`: a task cancelled before it ran never runs its body.
        connection.starter.add_done_callback(lambda _: self._started(sock, connection))

    async def _start(self, sock: socket.socket, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: _TrackedProtocol(self._protocol_factory(), connection, self),
                                               sock, ssl=self._tls)
        except OSError as exc:           # the TLS handshake failed (SSLError, reset, ...)
            self._tally.add(ServerEvent.TLS_HANDSHAKE_FAILED, f"{connection.peer}: {exc}")

    def _started(self, sock: socket.socket, connection: _Connection) -> None:
        if connection.transport is None:     # never connected: handshake failed, deadline, evicted, shutdown
            sock.close()
            self._release(connection)

    def _connected(self, connection: _Connection, transport: asyncio.BaseTransport) -> None:
        if connection in self._open:
            connection.transport = transport
            self._by_transport[transport] = connection
        else:                                # released while asyncio was connecting it
            transport.abort()

    def _release(self, connection: _Connection) -> None:
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)
        if self._open.pop(connection, False) is False:
            return                       # released already
        if connection.closing:
            self._closing -= 1
        if connection.deadline is not None:
            connection.deadline.cancel()
        self._write_resumed(connection)

    def _became_busy(self, connection: _Connection) -> None:
        connection.busy += 1
        if connection.deadline is not None:
            connection.deadline.cancel()
            connection.deadline = None

    def _became_idle(self, connection: _Connection) -> None:
        connection.busy -= 1
        if connection.busy == 0 and connection in self._open:
            del self._open[connection]       # to the end: the longest idle stay first
            self._open[connection] = None
            self._arm_deadline(connection)

    def _arm_deadline(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        connection.deadline = loop.call_later(self._limits.read_timeout, self._deadline_passed, connection)

    def _deadline_passed(self, connection: _Connection) -> None:
        connection.deadline = None
        if connection.busy == 0 and not connection.closing:
            self._tally.add(ServerEvent.READ_TIMEOUT, f"no request within {self._limits.read_timeout:g}s")
            self._close(connection)

    def _write_paused(self, connection: _Connection) -> None:
        if connection.stall is None:
            connection.stall = asyncio.get_running_loop().call_later(
                self._limits.write_stall_timeout, self._write_stalled, connection)

    def _write_resumed(self, connection: _Connection) -> None:
        if connection.stall is not None:
            connection.stall.cancel()
            connection.stall = None

    def _write_stalled(self, connection: _Connection) -> None:
        connection.stall = None
        if not connection.closing:
            self._tally.add(ServerEvent.WRITE_STALLED, f"{connection.peer}: read nothing for "
                                                       f"{self._limits.write_stall_timeout:g}s")
            self._close(connection)

    def _evict_longest_idle(self) -> bool:
        """Close the connection idle the longest, or else one whose client is not reading its
        answer (it holds a slot as uselessly); False if every connection is working."""
        candidate = next((c for c in self._open if not c.closing and c.busy == 0), None) or \
            next((c for c in self._open if not c.closing and c.stall is not None), None)
        if candidate is None:
            return False
        self._tally.add(ServerEvent.EVICTED, f"at the cap of {self._limits.max_connections} connections")
        self._close(candidate)
        return True

    def _close(self, connection: _Connection) -> None:
        """Close at once: abort() frees the descriptor without waiting for a slow peer."""
        connection.closing = True
        self._closing += 1
        if connection.transport is not None:
            connection.transport.abort()
        elif connection.starter is not None:
            connection.starter.cancel()
