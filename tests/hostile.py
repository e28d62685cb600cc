"""In-process fake mail servers and a throw-away PKI, for tests.

`FakeServer` listens on 127.0.0.1 (a free port) and runs a handler coroutine per
connection. The handlers below script well-behaved SMTP/IMAP/POP3 servers with real
STARTTLS, configurable enough to misbehave (wrong greeting, bytes injected after the
STARTTLS answer, ...), plus outright hostile ones (silence, endless lines).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import socket
import ssl
import struct
import tempfile
from dataclasses import dataclass
from typing import Awaitable, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeServer:
    """`async with FakeServer(handler) as server:` then connect to 127.0.0.1:server.port.

    With `tls_context`, TLS starts at once (implicit TLS, like ports 465/993/995). `host`
    and `port` choose another address (a fixed port under 1024 needs root).
    """

    def __init__(self, handler: Handler, tls_context: ssl.SSLContext | None = None, *,
                 host: str = "127.0.0.1", port: int = 0):
        self.handler = handler
        self.tls_context = tls_context
        self.host = host
        self.port = port
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.tls_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass   # the client went away or broke the TLS handshake: normal for these tests
        except asyncio.CancelledError:
            pass   # the server is shutting down; ending quietly keeps asyncio from logging it
        finally:
            writer.close()   # not abort(): a TLS alert still waiting in the buffer must go out


def closed_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def read_line(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    return line.decode().rstrip("\r\n")


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --- hostile handlers --------------------------------------------------------------

async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


def sends(data: bytes, then_hang: bool = True) -> Handler:
    """Send `data`, then keep the connection open and quiet (or close it)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if then_hang:
            await asyncio.sleep(3600)

    return handler


def floods(total_bytes: int, chunk: bytes = b"x" * 65536) -> Handler:
    """Send up to `total_bytes` as fast as the client takes them, never a line end."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        while sent < total_bytes:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
        await asyncio.sleep(3600)

    return handler


def drips(data: bytes, every: float = 0.05) -> Handler:
    """Send `data` one byte at a time, forever: a line that never ends."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)

    return handler


# --- scripted mail servers ---------------------------------------------------------

@dataclass(frozen=True)
class Script:
    """How a scripted server behaves; the defaults are a well-behaved server."""

    tls_context: ssl.SSLContext | None = None       # None: STARTTLS is not offered
    greeting: str | None = None                      # None: the protocol's usual greeting
    starttls_reply: str | None = None                # None: the protocol's usual yes
    after_starttls_reply: bytes = b""                # sent right after the reply (injection)
    garbage_instead_of_tls: bytes = b""              # sent instead of doing the handshake
    reset_during_handshake: bool = False
    close_after_starttls_reply: bool = False         # a clean close (FIN) instead of the handshake
    plaintext_auth: bool = True                      # offer password logins before TLS


def smtp_server(script: Script) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_tls = isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
        writer.write((script.greeting or "220-fake.test ESMTP\r\n220 ready").encode() + b"\r\n")
        while True:
            command = (await read_line(reader)).upper()
            if command.startswith("EHLO"):
                lines = ["fake.test", "PIPELINING", "SIZE 10240000"]
                if script.tls_context and not in_tls:
                    lines.append("STARTTLS")
                if in_tls or script.plaintext_auth:
                    lines.append("AUTH PLAIN LOGIN")
                lines.append("8BITMIME")
                reply = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
                writer.write(reply.encode())
            elif command == "STARTTLS" and script.tls_context and not in_tls:
                writer.write((script.starttls_reply or "220 2.0.0 Ready to start TLS").encode() + b"\r\n")
                writer.write(script.after_starttls_reply)
                if script.starttls_reply:
                    continue
                in_tls = await _start_tls(reader, writer, script)
            elif command == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")

    return handler


def imap_server(script: Script) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_tls = isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
        writer.write((script.greeting or "* OK fake IMAP ready").encode() + b"\r\n")
        while True:
            tag, _, command = (await read_line(reader)).partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                capabilities = ["IMAP4rev1", "SASL-IR", "ID"]
                if script.tls_context and not in_tls:
                    capabilities.append("STARTTLS")
                if in_tls or script.plaintext_auth:
                    capabilities.append("AUTH=PLAIN")
                else:
                    capabilities.append("LOGINDISABLED")
                writer.write(f"* CAPABILITY {' '.join(capabilities)}\r\n{tag} OK done\r\n".encode())
            elif command == "STARTTLS" and script.tls_context and not in_tls:
                reply = script.starttls_reply or "OK Begin TLS negotiation now"
                writer.write(f"{tag} {reply}\r\n".encode() + script.after_starttls_reply)
                if script.starttls_reply:
                    continue
                in_tls = await _start_tls(reader, writer, script)
            elif command == "LOGOUT":
                writer.write(f"* BYE logging out\r\n{tag} OK done\r\n".encode())
                await writer.drain()
                return
            else:
                writer.write(f"{tag} BAD unknown command\r\n".encode())

    return handler


def pop3_server(script: Script) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_tls = isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
        writer.write((script.greeting or "+OK fake POP3 ready").encode() + b"\r\n")
        while True:
            command = (await read_line(reader)).upper()
            if command == "CAPA":
                capabilities = ["TOP", "UIDL", "RESP-CODES"]
                if script.tls_context and not in_tls:
                    capabilities.append("STLS")
                if in_tls or script.plaintext_auth:
                    capabilities += ["USER", "SASL PLAIN"]
                writer.write(("+OK\r\n" + "".join(f"{c}\r\n" for c in capabilities) + ".\r\n").encode())
            elif command == "STLS" and script.tls_context and not in_tls:
                writer.write((script.starttls_reply or "+OK Begin TLS").encode() + b"\r\n")
                writer.write(script.after_starttls_reply)
                if script.starttls_reply:
                    continue
                in_tls = await _start_tls(reader, writer, script)
            elif command == "QUIT":
                writer.write(b"+OK bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"-ERR unknown command\r\n")

    return handler


async def _start_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, script: Script) -> bool:
    await writer.drain()
    if script.garbage_instead_of_tls:
        await reader.read(1)   # the ClientHello has begun: answer it with garbage
        writer.write(script.garbage_instead_of_tls)
        await writer.drain()
        await asyncio.sleep(3600)
    if script.reset_during_handshake:
        await reader.read(1)   # the first byte of the ClientHello
        reset(writer)
        await asyncio.sleep(3600)
    if script.close_after_starttls_reply:
        writer.close()
        await asyncio.sleep(3600)
    await writer.start_tls(script.tls_context)
    return True


# --- a throw-away PKI --------------------------------------------------------------

@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    is_ca: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    key=None,
) -> Issued:
    """A certificate for `common_name`, self-signed unless `issuer` is given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if dns_names or ip_addresses:
        sans = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if is_ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    elif extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    signer = issuer.key if issuer else key
    algorithm = None if isinstance(signer, _UNHASHED_KEYS) else hashes.SHA256()
    return Issued(builder.sign(signer, algorithm), key)


_UNHASHED_KEYS = (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)   # they sign without a separate hash


def write_pem(directory: str, name: str, *certs: Issued) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as file:
        file.write(b"".join(cert.pem for cert in certs))
    return path


def server_tls_context(leaf: Issued, *intermediates: Issued) -> ssl.SSLContext:
    """A server context presenting leaf + intermediates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        key_path = os.path.join(directory, "key.pem")
        with open(key_path, "wb") as file:
            file.write(
                leaf.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        context.load_cert_chain(write_pem(directory, "chain.pem", leaf, *intermediates), key_path)
    return context
