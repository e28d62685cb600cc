"""The DNS transport (exporter/dnstransport.py) through DNSClient, against an in-process
hostile nameserver on an ephemeral loopback port: answers with the wrong ID, for another
question, from another port, garbage, truncated, never; error rcodes; many queries at once.

The real-server behaviour (Knot, Unbound: DNSSEC, TCP fallback, CNAMEs) is in
tests/test_dnsclient.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from exporter.config import DNSSettings, Nameserver
from exporter.dnsclient import DNSClient, DNSError, DNSErrorKind
from exporter.dnstransport import IGNORED_ANSWERS, QUERIES_PER_SOCKET, UDP_SOCKETS_PER_NAMESERVER, IgnoredAnswer

REAL_ADDRESS = "127.0.0.5"      # what every honest answer says
FORGED_ADDRESS = "10.6.6.6"     # what a forged answer says
HONEST_DELAY = 0.05             # the honest answer comes after the hostile one


def _answer(query: dns.message.Message, address: str, name: str | None = None) -> dns.message.Message:
    response = dns.message.make_response(query)
    qname = name or query.question[0].name.to_text()
    if query.question[0].rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(qname, 300, "IN", "A", address))
    return response


class HostileNameserver:
    """UDP and TCP on 127.0.0.1:<ephemeral>, on the test's own loop. The first label of
    the name asked picks the behaviour (see `_udp_replies`); `queries` lists (name, source
    port, ID) of each UDP query."""

    def __init__(self):
        self.queries: list[tuple[str, int, int]] = []
        self.tcp_queries: list[str] = []
        self.port = 0

    async def __aenter__(self) -> HostileNameserver:
        loop = asyncio.get_running_loop()
        server = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                server.udp = transport

            def datagram_received(self, data, addr):
                server._on_udp(data, addr)

        for _ in range(20):   # a port free for both UDP and TCP
            self.tcp = await asyncio.start_server(self._on_tcp, "127.0.0.1", 0)
            self.port = self.tcp.sockets[0].getsockname()[1]
            try:
                self.udp, _ = await loop.create_datagram_endpoint(UDP, local_addr=("127.0.0.1", self.port))
                break
            except OSError:
                self.tcp.close()
        # Answers "from another port": sent from a socket of their own.
        self.other, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.udp.close()
        self.other.close()
        self.tcp.close()
        await self.tcp.wait_closed()

    def settings(self, timeout: float = 1.0, retries: int = 0) -> DNSSettings:
        return DNSSettings(nameservers=(Nameserver("127.0.0.1", self.port),), timeout=timeout, retries=retries)

    def _on_udp(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text().rstrip(".")
        self.queries.append((name, addr[1], query.id))
        loop = asyncio.get_running_loop()
        for delay, sender, wire in self._udp_replies(query, name.split(".", 1)[0]):
            loop.call_later(delay, sender.sendto, wire, addr)

    def _udp_replies(self, query: dns.message.Message, behaviour: str) -> list[tuple[float, object, bytes]]:
        honest = _answer(query, REAL_ADDRESS).to_wire()
        if behaviour == "silent":
            return []
        if behaviour == "wrong-id":
            forged = _answer(query, FORGED_ADDRESS)
            forged.id = (query.id + 1) % 65536
            return [(0, self.udp, forged.to_wire()), (HONEST_DELAY, self.udp, honest)]
        if behaviour == "wrong-question":
            forged = _answer(query, FORGED_ADDRESS, name="elsewhere.test.")
            forged.question[0] = dns.rrset.RRset(dns.name.from_text("elsewhere.test."), dns.rdataclass.IN,
                                                 dns.rdatatype.A)
            return [(0, self.udp, forged.to_wire()), (HONEST_DELAY, self.udp, honest)]
        if behaviour == "other-port":
            forged = _answer(query, FORGED_ADDRESS).to_wire()
            return [(0, self.other, forged), (HONEST_DELAY, self.udp, honest)]
        if behaviour == "only-other-port":
            return [(0, self.other, _answer(query, FORGED_ADDRESS).to_wire())]
        if behaviour == "garbage":
            return [(0, self.udp, data_with_id(query.id, b"\x81\x80\xff\xff" + bytes(range(200, 256)) * 3)),
                    (HONEST_DELAY, self.udp, honest)]
        if behaviour == "short":
            return [(0, self.udp, b"\x00\x01\x02"), (HONEST_DELAY, self.udp, honest)]
        if behaviour == "truncated":
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return [(0, self.udp, response.to_wire())]
        if behaviour in ("servfail", "refused"):
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL if behaviour == "servfail" else dns.rcode.REFUSED)
            return [(0, self.udp, response.to_wire())]
        return [(0, self.udp, honest)]

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = int.from_bytes(await reader.readexactly(2), "big")
            query = dns.message.from_wire(await reader.readexactly(size))
            self.tcp_queries.append(query.question[0].name.to_text().rstrip("."))
            wire = _answer(query, REAL_ADDRESS).to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
        finally:
            writer.close()


def data_with_id(query_id: int, rest: bytes) -> bytes:
    return query_id.to_bytes(2, "big") + rest


def addresses(answer) -> list[str]:
    return [rdata.address for rdata in answer.records]


@pytest.mark.parametrize("behaviour, ignored", [
    ("wrong-id", IgnoredAnswer.UNEXPECTED),
    ("wrong-question", IgnoredAnswer.MISMATCHED),
    ("garbage", IgnoredAnswer.MALFORMED),
    ("short", IgnoredAnswer.MALFORMED),
])
async def test_a_forged_or_broken_answer_is_ignored_and_counted_the_real_one_taken(behaviour, ignored):
    async with HostileNameserver() as server:
        client = DNSClient(server.settings())
        before = IGNORED_ANSWERS[ignored]
        answer = await client.lookup(f"{behaviour}.example.test", "A")
        client.close()
    assert addresses(answer) == [REAL_ADDRESS]
    assert IGNORED_ANSWERS[ignored] == before + 1


async def test_an_answer_from_another_port_never_counts():
    async with HostileNameserver() as server:
        client = DNSClient(server.settings(timeout=0.3))
        assert addresses(await client.lookup("other-port.example.test", "A")) == [REAL_ADDRESS]
        with pytest.raises(DNSError) as caught:
            await client.lookup("only-other-port.example.test", "A")
        client.close()
    assert caught.value.kind is DNSErrorKind.TIMEOUT


async def test_a_nameserver_that_never_answers_is_asked_again_until_the_timeout():
    async with HostileNameserver() as server:
        client = DNSClient(server.settings(timeout=0.6, retries=2))   # 0.2 s per attempt
        started = time.monotonic()
        with pytest.raises(DNSError) as caught:
            await client.lookup("silent.example.test", "A")
        elapsed = time.monotonic() - started
        client.close()
    assert caught.value.kind is DNSErrorKind.TIMEOUT and caught.value.detail == "0.6s"
    assert 0.55 < elapsed < 0.9
    attempts = [query for query in server.queries if query[0] == "silent.example.test"]
    assert len(attempts) == 2                                  # 0.2 s, pause 0.1 s, 0.2 s, pause 0.2 s: over
    assert len({query_id for _, _, query_id in attempts}) == 2   # each attempt a new ID


async def test_a_truncated_answer_is_asked_again_over_tcp():
    async with HostileNameserver() as server:
        client = DNSClient(server.settings())
        answer = await client.lookup("truncated.example.test", "A")
        client.close()
    assert addresses(answer) == [REAL_ADDRESS]
    assert server.tcp_queries == ["truncated.example.test"]


@pytest.mark.parametrize("behaviour, kind", [("servfail", DNSErrorKind.SERVFAIL), ("refused", DNSErrorKind.ERROR)])
async def test_error_rcodes_move_on_to_the_next_nameserver(behaviour, kind):
    async with HostileNameserver() as first, HostileNameserver() as second:
        both = DNSSettings(nameservers=(Nameserver("127.0.0.1", first.port), Nameserver("127.0.0.1", second.port)),
                           timeout=1.0, retries=1)
        client = DNSClient(both)
        with pytest.raises(DNSError) as caught:
            await client.lookup(f"{behaviour}.example.test", "A")
        client.close()
    assert caught.value.kind is kind
    # Each asked once: an error rcode is not asked again (unlike a timeout).
    assert [q[0] for q in first.queries + second.queries] == [f"{behaviour}.example.test"] * 2


async def test_an_unreachable_nameserver_fails_at_once():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = DNSClient(DNSSettings(nameservers=(Nameserver("127.0.0.1", port),), timeout=3.0, retries=1))
    started = time.monotonic()
    with pytest.raises(DNSError) as caught:
        await client.lookup("anything.example.test", "A")
    client.close()
    assert caught.value.kind is DNSErrorKind.ERROR and time.monotonic() - started < 1.0


async def test_many_queries_share_a_few_sockets_with_random_ids():
    async with HostileNameserver() as server:
        client = DNSClient(server.settings())
        answers = await asyncio.gather(*(client.lookup(f"n{n}.example.test", "A") for n in range(300)))
        client.close()
    assert all(addresses(answer) == [REAL_ADDRESS] for answer in answers)
    ports = {port for _, port, _ in server.queries}
    ids = [query_id for _, _, query_id in server.queries]
    assert len(server.queries) == 300 and len(ports) == UDP_SOCKETS_PER_NAMESERVER
    assert len(set(ids)) > 290 and max(ids) > 60000 > 5000 > min(ids)   # not a counter


async def test_a_socket_is_replaced_after_its_share_of_queries(monkeypatch):
    monkeypatch.setattr("exporter.dnstransport.QUERIES_PER_SOCKET", 10)
    async with HostileNameserver() as server:
        client = DNSClient(server.settings())
        for n in range(60):
            await client.lookup(f"n{n}.example.test", "A")
        client.close()
    ports = {port for _, port, _ in server.queries}
    assert len(ports) > UDP_SOCKETS_PER_NAMESERVER and QUERIES_PER_SOCKET > 10


async def test_close_lets_waiting_queries_finish_then_closes_the_sockets():
    async with HostileNameserver() as server:
        client = DNSClient(server.settings())
        waiting = asyncio.ensure_future(client.lookup("wrong-id.example.test", "A"))   # answered after 50 ms
        await asyncio.sleep(0.01)
        (pool,) = client._transport._pools.values()
        sockets = list(pool.channels)
        client.close()
        assert addresses(await waiting) == [REAL_ADDRESS]
        assert all(channel.transport.is_closing() for channel in sockets)
        # A lookup after close (a check of the previous configuration still running) works.
        assert addresses(await client.lookup("late.example.test", "A")) == [REAL_ADDRESS]
        await asyncio.sleep(0)
    assert not pool.channels


@contextlib.contextmanager
def hostile_in_thread() -> Iterator[HostileNameserver]:
    """The server on an event loop of its own, in a thread: it outlives the tests' loops."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = HostileNameserver()
    asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_client_used_from_two_event_loops_opens_sockets_on_each():
    with hostile_in_thread() as server:
        client = DNSClient(server.settings())
        first = asyncio.run(client.lookup("loop1.example.test", "A"))
        second = asyncio.run(client.lookup("loop2.example.test", "A"))
        client.close()
    assert addresses(first) == addresses(second) == [REAL_ADDRESS]
    assert server.queries[0][1] != server.queries[1][1]
