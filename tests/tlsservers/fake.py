"""An in-process fake TLS server: it reads one ClientHello per connection and answers with
whatever bytes the test crafts, to show the scanner what OpenSSL 3 can no longer serve
(SSLv3, RC4, EXPORT, NULL suites, SSL 2.0) and what hostile servers send."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Callable

from exporter.tlswire import ProtocolVersion
from exporter.tlswire.parse import HELLO_RETRY_REQUEST_RANDOM


@dataclass(frozen=True)
class OfferedHello:
    """What the client offered, read back from its hello."""

    sslv2: bool
    version: int                  # client_version (TLS 1.3: the highest supported_versions entry)
    cipher_codes: tuple[int, ...]  # 2-byte suites, or 3-byte kinds for SSLv2
    compression_methods: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()              # supported_groups, in order
    key_share_groups: tuple[int, ...] = ()    # the groups of the key_share entries


def parse_client_hello(data: bytes) -> OfferedHello:
    if data[0] & 0x80:                                    # SSL 2.0 CLIENT-HELLO
        body = data[2:]
        version, specs_length = struct.unpack("!HH", body[1:5])
        specs = body[9:9 + specs_length]
        return OfferedHello(True, version, tuple(int.from_bytes(specs[i:i + 3], "big")
                                                 for i in range(0, len(specs), 3)))
    body = data[9:]                                       # record header (5) + handshake header (4)
    version = struct.unpack("!H", body[:2])[0]
    offset = 34
    offset += 1 + body[offset]                            # session id
    suites_length = struct.unpack("!H", body[offset:offset + 2])[0]
    suites = body[offset + 2:offset + 2 + suites_length]
    offset += 2 + suites_length
    compression = tuple(body[offset + 1:offset + 1 + body[offset]])
    offset += 1 + body[offset]
    groups: tuple[int, ...] = ()
    key_shares: list[int] = []
    if offset < len(body):
        extensions = body[offset + 2:]
        while extensions:
            ext_type, length = struct.unpack("!HH", extensions[:4])
            data_ = extensions[4:4 + length]
            if ext_type == 43:                            # supported_versions
                version = max(_u16s(data_[1:]))
            elif ext_type == 10:                          # supported_groups
                groups = _u16s(data_[2:])
            elif ext_type == 51:                          # key_share: (group, length, key) entries
                shares = data_[2:]
                while shares:
                    group, key_length = struct.unpack("!HH", shares[:4])
                    key_shares.append(group)
                    shares = shares[4 + key_length:]
            extensions = extensions[4 + length:]
    return OfferedHello(False, version, _u16s(suites), compression, groups, tuple(key_shares))


def _u16s(data: bytes) -> tuple[int, ...]:
    return tuple(struct.unpack("!H", data[i:i + 2])[0] for i in range(0, len(data), 2))


def server_hello(version: int, cipher_code: int, *, extensions: bytes = b"", compression: int = 0,
                 random: bytes = bytes(32)) -> bytes:
    """A ServerHello record (TLS <= 1.2 layout) followed by nothing else."""
    body = struct.pack("!H", version) + random + b"\x00" + struct.pack("!HB", cipher_code, compression)
    if extensions:
        body += struct.pack("!H", len(extensions)) + extensions
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    record_version = ProtocolVersion.SSL3 if version == ProtocolVersion.SSL3 else ProtocolVersion.TLS1_2
    return struct.pack("!BHH", 22, record_version, len(message)) + message


def tls13_server_hello(cipher_code: int, group: int, *, retry: bool) -> bytes:
    """A TLS 1.3 ServerHello with a key share for `group` (a dummy key), or with `retry` a
    HelloRetryRequest asking for `group`."""
    key_share = struct.pack("!H", group) if retry else struct.pack("!HH", group, 32) + bytes(32)
    extensions = (struct.pack("!HHH", 43, 2, ProtocolVersion.TLS1_3)
                  + struct.pack("!HH", 51, len(key_share)) + key_share)
    return server_hello(ProtocolVersion.TLS1_2, cipher_code, extensions=extensions,
                        random=HELLO_RETRY_REQUEST_RANDOM if retry else bytes(range(32)))


SERVER_HELLO_DONE = struct.pack("!BHH", 22, 0x0300, 4) + b"\x0e\x00\x00\x00"


def alert(description: int) -> bytes:
    return struct.pack("!BHHBB", 21, 0x0303, 2, 2, description)


def sslv2_server_hello(kinds: tuple[int, ...], certificate: bytes) -> bytes:
    specs = b"".join(kind.to_bytes(3, "big") for kind in kinds)
    connection_id = bytes(16)
    message = struct.pack("!BBBHHHH", 4, 0, 1, 0x0002, len(certificate), len(specs), len(connection_id))
    message += certificate + specs + connection_id
    return struct.pack("!H", 0x8000 | len(message)) + message


Responder = Callable[[OfferedHello], bytes]


class FakeTLSServer:
    """Listens on 127.0.0.1; per connection: read one hello, send `respond(hello)`, close (or hold)."""

    def __init__(self, respond: Responder, *, hold_open: bool = False):
        self.respond = respond
        self.hold_open = hold_open          # after answering, wait for the client to close
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def __aenter__(self) -> "FakeTLSServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            first = await reader.readexactly(2)
            if first[0] & 0x80:
                length = ((first[0] & 0x7F) << 8) | first[1]
                data = first + await reader.readexactly(length)
            else:
                header = first + await reader.readexactly(3)
                data = header + await reader.readexactly(struct.unpack("!H", header[3:5])[0])
            writer.write(self.respond(parse_client_hello(data)))
            await writer.drain()
            if self.hold_open:
                await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(handler)
