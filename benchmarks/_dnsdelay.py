"""A DNS forwarder on loopback that holds every answer back a fixed time: the round trip
to a resolver a few milliseconds away, without slowing the loopback interface for every
other process (as netem on `lo` would).

    python3 -m benchmarks._dnsdelay --listen 127.88.0.2 --upstream 127.88.0.1 --delay-ms 5

Listens on UDP and TCP port 53 (checkdmarc names a nameserver by address only, and asks
over TCP for its DNSSEC check) and forwards each query as it came, over the same
transport, to the upstream server; the answer is sent back `--delay-ms` after it arrived.
Queries are forwarded concurrently: the delay is per answer, not a queue. Both addresses
must be in 127.0.0.0/8: nothing leaves the machine. A query the upstream does not answer
in UPSTREAM_TIMEOUT gets no answer (the client times out, as it would).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
from tests.realservers import stop_process

PORT = 53
UPSTREAM_TIMEOUT = 5.0
REPOSITORY = Path(__file__).resolve().parent.parent


def loopback(address: str) -> str:
    if not ipaddress.ip_address(address).is_loopback:
        raise argparse.ArgumentTypeError(f"{address} is outside 127.0.0.0/8")
    return address


class _UDPForwarder(asyncio.DatagramProtocol):
    def __init__(self, upstream: tuple[str, int], delay: float):
        self.upstream = upstream
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, query: bytes, client) -> None:
        asyncio.ensure_future(self._forward(query, client))

    async def _forward(self, query: bytes, client) -> None:
        loop = asyncio.get_running_loop()
        # A socket per query: its own source port, so answers cannot be mixed up.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(self.upstream)
            try:
                async with asyncio.timeout(UPSTREAM_TIMEOUT):
                    await loop.sock_sendall(sock, query)
                    answer = await loop.sock_recv(sock, 65535)
            except (TimeoutError, OSError):
                return
        loop.call_later(self.delay, self.transport.sendto, answer, client)


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    (length,) = struct.unpack("!H", await reader.readexactly(2))
    return await reader.readexactly(length)


def _tcp_handler(upstream: tuple[str, int], delay: float):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Each query of the connection, in turn, over one upstream connection."""
        try:
            async with asyncio.timeout(UPSTREAM_TIMEOUT):
                up_reader, up_writer = await asyncio.open_connection(*upstream)
        except (TimeoutError, OSError):
            writer.close()
            return
        try:
            while True:
                query = await _read_message(reader)
                up_writer.write(struct.pack("!H", len(query)) + query)
                async with asyncio.timeout(UPSTREAM_TIMEOUT):
                    answer = await _read_message(up_reader)
                await asyncio.sleep(delay)
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass   # the client or the upstream closed the connection, or went silent
        finally:
            up_writer.close()
            writer.close()

    return handle


async def serve(listen: str, upstream: str, delay: float) -> None:
    loop = asyncio.get_running_loop()
    target = (upstream, PORT)
    await loop.create_datagram_endpoint(lambda: _UDPForwarder(target, delay), local_addr=(listen, PORT))
    server = await asyncio.start_server(_tcp_handler(target, delay), listen, PORT)
    async with server:
        await server.serve_forever()


class DelayProxy:
    """This module as a child process, forwarding `listen`:53 to `upstream`:53."""

    STARTUP_SECONDS = 10.0

    def __init__(self, listen: str, upstream: str, delay_ms: float):
        self.listen = loopback(listen)
        self.command = [sys.executable, "-m", "benchmarks._dnsdelay", "--listen", listen,
                        "--upstream", loopback(upstream), "--delay-ms", f"{delay_ms:g}"]
        self.process: subprocess.Popen | None = None

    def start(self, probe_name: str) -> None:
        """Start, and wait until a query for `probe_name` SOA is answered through it."""
        self.process = subprocess.Popen(self.command, cwd=REPOSITORY, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the delaying proxy exited with {self.process.returncode}")
            try:
                dns.query.udp(dns.message.make_query(probe_name, "SOA"), self.listen, timeout=0.5, port=PORT)
                return
            except (OSError, dns.exception.Timeout):
                time.sleep(0.1)
        raise RuntimeError("the delaying proxy did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=loopback, required=True)
    parser.add_argument("--upstream", type=loopback, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.upstream, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
