"""A hostile DNS server, in process, on 127.77.0.9:53 over UDP and TCP.

A name under `<behaviour>.hostile.test` gets that behaviour (see `BEHAVIOURS`); any other
name is NXDOMAIN. The server runs its own event loop in a thread, so the tests' loops see
it as a real remote server; `with HostileDNS() as server:` starts and stops it, and
`server.queries` lists every (name, type) asked.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HOSTILE_ADDRESS = "127.77.0.9"
PORT = 53
ZONE = "hostile.test"
SPF_CHAIN_DEPTH = 100
HUGE_TXT_OCTETS = 64000   # one TXT record, close to the 65535-octet message limit
SLOW_SECONDS = 0.3        # how long the slow-list behaviour takes to answer

BEHAVIOURS = {
    "truncated": "UDP answers have TC set and no records; TCP connections are accepted, never answered",
    "huge": "a 64 KB SPF TXT record: too big for UDP (TC), sent whole over TCP",
    "cname-loop": "every name is a CNAME chain that comes back to itself",
    "spf-loop": "the SPF record includes a name whose SPF includes it back",
    "spf-deep": f"an SPF include chain {SPF_CHAIN_DEPTH} records deep",
    "garbage": "answers are bytes that are not a DNS message (after the query's ID)",
    "silent": "no answer at all",
    "slow-list": f"a DNS blocklist answering after {SLOW_SECONDS}s: 127.0.0.2 for its test entry "
                 "(2.0.0.127.slow-list.hostile.test), NXDOMAIN for every other name",
}


def huge_spf_record() -> str:
    terms, length = ["v=spf1"], len("v=spf1")
    n = 0
    while length < HUGE_TXT_OCTETS - 300:
        term = f"ip4:10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        terms.append(term)
        length += len(term) + 1
        n += 1
    return " ".join(terms + ["-all"])


def _behaviour(qname: str) -> str | None:
    name = qname.rstrip(".").lower()
    if not name.endswith("." + ZONE):
        return None
    return name[: -len(ZONE) - 1].rsplit(".", 1)[-1]


def _txt_rrset(name: str, text: str) -> dns.rrset.RRset:
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)]
    rdata = " ".join('"' + chunk + '"' for chunk in chunks)
    return dns.rrset.from_text(name, 300, "IN", "TXT", rdata)


def _spf_answer(response: dns.message.Message, name: str, behaviour: str) -> None:
    """spf-loop: <base> includes back.<base>, which includes <base>.
    spf-deep: <base> includes d1.<base>, which includes d2.<base> ... down to d100.<base>."""
    base = f"{behaviour}.{ZONE}"
    first = name.split(".", 1)[0]
    if behaviour == "spf-loop" and name in (base, f"back.{base}"):
        target = f"back.{base}" if name == base else base
    elif behaviour == "spf-deep" and (name == base or re.fullmatch(r"d[0-9]+", first)):
        depth = 0 if name == base else int(first[1:])
        target = f"d{depth + 1}.{base}" if depth < SPF_CHAIN_DEPTH else None
    else:
        return   # another name (e.g. _dmarc.<base>): no records
    text = f"v=spf1 include:{target} -all" if target else "v=spf1 -all"
    response.answer.append(_txt_rrset(name + ".", text))


def build_reply(query: dns.message.Message, over_tcp: bool) -> bytes | None:
    """The wire reply to `query`; None to say nothing."""
    question = query.question[0]
    name = question.name.to_text().rstrip(".").lower()
    rdtype = question.rdtype
    behaviour = _behaviour(name)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if behaviour == "silent" or (behaviour == "truncated" and over_tcp):
        return None
    if behaviour == "garbage":
        return query.to_wire()[:2] + b"\x81\x80\xff\xff" + bytes(range(200, 256)) * 3
    if behaviour == "truncated" or (behaviour == "huge" and not over_tcp and rdtype == dns.rdatatype.TXT):
        response.flags |= dns.flags.TC
    elif behaviour == "huge" and rdtype == dns.rdatatype.TXT and name == f"huge.{ZONE}":
        response.answer.append(_txt_rrset(name + ".", huge_spf_record()))
    elif behaviour == "cname-loop":
        first, second = f"a.cname-loop.{ZONE}.", f"b.cname-loop.{ZONE}."
        response.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "CNAME", first))
        response.answer.append(dns.rrset.from_text(first, 300, "IN", "CNAME", second))
        response.answer.append(dns.rrset.from_text(second, 300, "IN", "CNAME", first))
    elif behaviour in ("spf-loop", "spf-deep") and rdtype == dns.rdatatype.TXT:
        _spf_answer(response, name, behaviour)
    elif behaviour == "slow-list":
        if name == f"2.0.0.127.slow-list.{ZONE}" and rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "A", "127.0.0.2"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
    elif behaviour is None or behaviour not in BEHAVIOURS:
        response.set_rcode(dns.rcode.NXDOMAIN)
    # Anything else: NOERROR without records (NODATA).
    return response.to_wire(max_size=65535)


def reply_delay(query: dns.message.Message) -> float:
    """Seconds to wait before sending the reply to `query`."""
    return SLOW_SECONDS if _behaviour(query.question[0].name.to_text()) == "slow-list" else 0.0


class HostileDNS:
    def __init__(self):
        self.queries: list[tuple[str, str]] = []
        self.arrivals: list[tuple[float, str]] = []    # (time.monotonic(), name) of each query
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._connections: set[asyncio.Task] = set()

    def __enter__(self) -> HostileDNS:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _parse(self, wire: bytes) -> dns.message.Message:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        self.queries.append((question.name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(question.rdtype)))
        self.arrivals.append((time.monotonic(), self.queries[-1][0]))
        return query

    async def _start(self) -> None:
        server = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                query = server._parse(data)
                reply = build_reply(query, over_tcp=False)
                if reply is not None:
                    server._loop.call_later(reply_delay(query), self.transport.sendto, reply, addr)

        self._udp, _ = await self._loop.create_datagram_endpoint(UDP, local_addr=(HOSTILE_ADDRESS, PORT))
        self._tcp = await asyncio.start_server(self._serve_tcp, HOSTILE_ADDRESS, PORT, reuse_address=True)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                query = self._parse(await reader.readexactly(size))
                reply = build_reply(query, over_tcp=True)
                await asyncio.sleep(reply_delay(query))
                if reply is None:
                    await reader.read()   # hang: hold the connection until the client leaves
                    return
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _close(self) -> None:
        self._udp.close()
        self._tcp.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
