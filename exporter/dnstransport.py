"""The wire under dnsclient: queries to the nameservers over a few reused UDP sockets,
over TCP when an answer is truncated.

dnspython's async resolver opens a datagram endpoint (a socket, a transport and a protocol)
for every query; at thousands of domain checks that plumbing cost more CPU than the
messages themselves. Here each nameserver address has a small pool of connected UDP
sockets, one asyncio datagram endpoint each, and an answer finds its query by message ID.
`dnswire` writes the queries and reads the answers.

An answer is taken only if it comes from the nameserver's address and port (the sockets are
connected, and the source is checked again), carries the ID of a query waiting on that
socket (random, from the operating system's generator) and answers that query's question
(`Response.answers`: QR set, same opcode, ID and question). Anything else is dropped
and counted in IGNORED_ANSWERS, and the query goes on waiting for its answer. A socket is
replaced after QUERIES_PER_SOCKET queries, so that the source ports change too.

Attempts follow dnspython's resolver: the nameservers in order, each attempt bounded by
`attempt_timeout`, all of them by `lifetime`; a nameserver that did not answer in time is
asked again in the next round (after a pause of 0.1 s, doubling up to 2 s); one that answers
with an error rcode (SERVFAIL, REFUSED...), a truncated answer over TCP, or is unreachable is
not asked again for this question.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field
from typing import Sequence

from .dnswire import NOERROR, NXDOMAIN, SERVFAIL, MalformedMessage, Query, Response, parse_response

UDP_SOCKETS_PER_NAMESERVER = 4
QUERIES_PER_SOCKET = 5_000     # then a new socket takes its place, on another source port
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
_ANSWERS = frozenset({NOERROR, NXDOMAIN})


class IgnoredAnswer(enum.StrEnum):
    """Why a datagram that reached one of the sockets was not taken as an answer."""

    UNEXPECTED = "unexpected"   # no query waiting with its ID: late (after a timeout), repeated, or forged
    MISMATCHED = "mismatched"   # the ID of a waiting query but not an answer to its question: forged or broken
    MALFORMED = "malformed"     # not a DNS message
    FOREIGN = "foreign"         # from another address or port than the nameserver's


# Counted for the whole process: mailsec_exporter_dns_ignored_answers_total.
IGNORED_ANSWERS: collections.Counter[IgnoredAnswer] = collections.Counter()

Address = tuple[str, int]


class NoUsableAnswer(Exception):
    """Every nameserver failed for good: error rcodes, unreachable, unusable answers.
    `servfail` says whether one of them answered SERVFAIL."""

    def __init__(self, errors: Sequence[str], servfail: bool):
        self.servfail = servfail
        super().__init__("; ".join(errors))


class _Unusable(Exception):
    """This nameserver cannot answer this question: do not ask it again."""


@dataclass
class _Waiting:
    query: Query
    answer: asyncio.Future[Response]


@dataclass(eq=False)
class _Channel(asyncio.DatagramProtocol):
    """One connected UDP socket to one nameserver, shared by the queries to it."""

    peer: Address
    sock: socket.socket
    waiting: dict[int, _Waiting] = field(default_factory=dict)
    sent: int = 0
    retired: bool = False      # takes no new query; closes when the last one is answered
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if (addr[0], addr[1]) != self.peer:
            IGNORED_ANSWERS[IgnoredAnswer.FOREIGN] += 1
            return
        query_id = int.from_bytes(data[:2], "big")
        waiting = self.waiting.get(query_id) if len(data) >= 12 else None
        if waiting is None:
            IGNORED_ANSWERS[IgnoredAnswer.UNEXPECTED if len(data) >= 12 else IgnoredAnswer.MALFORMED] += 1
            return
        try:
            answer = parse_response(data)
        except MalformedMessage:
            IGNORED_ANSWERS[IgnoredAnswer.MALFORMED] += 1
            return
        if not answer.answers(waiting.query, query_id):
            IGNORED_ANSWERS[IgnoredAnswer.MISMATCHED] += 1
            return
        del self.waiting[query_id]
        if not waiting.answer.done():
            waiting.answer.set_result(answer)
        self._close_if_done()

    def error_received(self, exc: Exception) -> None:
        # On a connected socket: ICMP unreachable for an earlier datagram. Which query it was
        # for is unknown: every query waiting here tries the next nameserver.
        self._fail_all(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(exc or ConnectionResetError("socket closed"))

    def _fail_all(self, exc: Exception) -> None:
        waiting, self.waiting = self.waiting, {}
        for entry in waiting.values():
            if not entry.answer.done():
                entry.answer.set_exception(_Unusable(f"{self.peer[0]}:{self.peer[1]}: {exc}"))

    def new_id(self) -> int:
        while True:
            query_id = secrets.randbits(16)
            if query_id not in self.waiting:
                return query_id

    async def exchange(self, query: Query, timeout: float) -> Response:
        """Send `query` with an ID of its own and wait for its answer."""
        query_id = self.new_id()
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.waiting[query_id] = _Waiting(query, answer)
        self.sent += 1
        # A plain timer rather than asyncio.timeout: the lookups' CPU is mostly such plumbing.
        timer = loop.call_later(timeout, _expire, answer)
        try:
            self.transport.sendto(query.wire(query_id))
            return await answer
        finally:
            timer.cancel()
            if (entry := self.waiting.get(query_id)) is not None and entry.answer is answer:
                del self.waiting[query_id]
            self._close_if_done()

    def retire(self) -> None:
        self.retired = True
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self.retired and not self.waiting and self.transport is not None:
            self.transport.close()

    def abandon(self) -> None:
        """Close now, from outside the loop the socket belongs to (that loop may be closed)."""
        try:
            if self.transport is not None:
                self.transport.close()
        except RuntimeError:   # its loop is closed
            self.sock.close()


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())


class _Pool:
    """The UDP sockets to one nameserver."""

    def __init__(self, peer: Address):
        self.peer = peer
        self.channels: list[_Channel] = []
        self.turn = 0
        self._opening = asyncio.Lock()

    async def channel(self, closing: bool) -> _Channel:
        if closing:   # a lookup of a closed client: a socket for this query alone
            channel = await self._open()
            channel.retired = True
            return channel
        if len(self.channels) < UDP_SOCKETS_PER_NAMESERVER or any(c.retired for c in self.channels):
            async with self._opening:   # the first queries at once open the sockets once
                self.channels = [c for c in self.channels if not c.retired]
                if len(self.channels) < UDP_SOCKETS_PER_NAMESERVER:
                    self.channels.append(await self._open())
        self.turn = (self.turn + 1) % len(self.channels)
        channel = self.channels[self.turn]
        if channel.sent + 1 >= QUERIES_PER_SOCKET:
            channel.retired = True   # closes once its last query is answered
        return channel

    async def _open(self) -> _Channel:
        family = socket.AF_INET6 if ipaddress.ip_address(self.peer[0]).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.peer)
            channel = _Channel(self.peer, sock)
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: channel, sock=sock)
        except BaseException:
            sock.close()
            raise
        return channel

    def close(self) -> None:
        for channel in self.channels:
            channel.retire()
        self.channels = []

    def abandon(self) -> None:
        for channel in self.channels:
            channel.abandon()
        self.channels = []


class DNSTransport:
    """Asks `nameservers` ((address, port), in order) and returns the first usable answer."""

    def __init__(self, nameservers: Sequence[Address], attempt_timeout: float, lifetime: float):
        # As the socket layer writes them, to compare with an answer's source.
        self.nameservers = tuple((str(ipaddress.ip_address(address)), port) for address, port in nameservers)
        self.attempt_timeout = attempt_timeout
        self.lifetime = lifetime
        self._pools: dict[Address, _Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def resolve(self, query: Query) -> Response:
        """The answer (NOERROR or NXDOMAIN) to `query`. Raises TimeoutError when no
        nameserver answered within the lifetime, NoUsableAnswer when none can answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lifetime
        candidates = list(self.nameservers)
        errors: list[str] = []
        servfail = False
        backoff = FIRST_BACKOFF_SECONDS
        while candidates:
            for peer in list(candidates):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                try:
                    answer = await self._ask(peer, query, min(self.attempt_timeout, remaining), deadline)
                except TimeoutError:
                    continue
                except _Unusable as exc:
                    candidates.remove(peer)
                    errors.append(str(exc))
                    continue
                if answer.rcode in _ANSWERS:
                    return answer
                candidates.remove(peer)
                servfail |= answer.rcode == SERVFAIL
                errors.append(f"{peer[0]}:{peer[1]} answered {answer.rcode_text()}")
            if candidates:
                await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        raise NoUsableAnswer(errors, servfail)

    async def _ask(self, peer: Address, query: Query, timeout: float, deadline: float) -> Response:
        """One attempt over UDP, and over TCP (an attempt of its own) if the answer is truncated."""
        answer = await (await self._pool(peer).channel(self._closed)).exchange(query, timeout)
        if not answer.truncated:
            return answer
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError
        return await _exchange_tcp(peer, query, min(self.attempt_timeout, remaining))

    def _pool(self, peer: Address) -> _Pool:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:   # sockets belong to the loop that opened them
            for pool in self._pools.values():
                pool.abandon()
            self._pools = {}
            self._loop = loop
        pool = self._pools.get(peer)
        if pool is None:
            pool = self._pools[peer] = _Pool(peer)
        return pool

    def close(self) -> None:
        """Close the sockets, each once the queries waiting on it are answered (or time out).
        Lookups still made afterwards use a socket of their own, closed after the answer."""
        self._closed = True
        loop_closed = self._loop is not None and self._loop.is_closed()
        for pool in self._pools.values():
            if loop_closed:
                pool.abandon()
            else:
                pool.close()


async def _exchange_tcp(peer: Address, query: Query, timeout: float) -> Response:
    """`query` over a TCP connection of its own (RFC 7766 framing: a 2-octet length)."""
    query_id = secrets.randbits(16)
    wire = query.wire(query_id)
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(*peer)
            writer.write(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
    except TimeoutError:   # an OSError too: not a reason to drop the nameserver
        raise
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise _Unusable(f"{peer[0]}:{peer[1]} over TCP: {exc or type(exc).__name__}") from None
    finally:
        if writer is not None:
            writer.close()
    try:
        answer = parse_response(data)
    except MalformedMessage as exc:
        raise _Unusable(f"{peer[0]}:{peer[1]} over TCP: {exc}") from None
    if not answer.answers(query, query_id) or answer.truncated:
        raise _Unusable(f"{peer[0]}:{peer[1]} over TCP: not an answer to the query")
    return answer
