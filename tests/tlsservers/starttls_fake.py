"""An in-process mail server with STARTTLS (SMTP, IMAP or POP3) over Python's ssl, for the STARTTLS
command injection check: `vulnerable` keeps the plaintext bytes that came after the STARTTLS
command and executes them once TLS is up (CVE-2011-0411); otherwise it drops them, as fixed
servers do."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GREETINGS = {"smtp": b"220 fake.test ESMTP\r\n", "imap": b"* OK [CAPABILITY IMAP4rev1 STARTTLS] fake\r\n",
             "pop3": b"+OK fake\r\n"}


def server_context(directory: Path) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed P-256 certificate written to `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (directory / "fake.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "fake.pem")
    return context


class FakeStartTLSServer:
    def __init__(self, family: str, context: ssl.SSLContext, *, vulnerable: bool):
        self.family = family
        self.context = context
        self.vulnerable = vulnerable
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "FakeStartTLSServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        pending = b""
        writer.write(GREETINGS[self.family])
        try:
            while True:
                while b"\n" not in pending:
                    data = await reader.read(4096)
                    if not data:
                        return
                    pending += data
                line, _, pending = pending.partition(b"\n")
                answer, start_tls, close = self._answer(line.decode().strip())
                writer.write(answer)
                await writer.drain()
                if close:
                    return
                if start_tls:
                    if not self.vulnerable:
                        pending = b""       # the fix: nothing sent before TLS survives it
                    await writer.start_tls(self.context)
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    def _answer(self, line: str) -> tuple[bytes, bool, bool]:
        """(the reply, TLS starts after it, the server closes after it)."""
        tag, _, command = line.partition(" ") if self.family == "imap" else ("", "", line)
        verb = command.split(" ")[0].upper()
        if self.family == "smtp":
            replies = {"EHLO": b"250-fake.test\r\n250 STARTTLS\r\n", "STARTTLS": b"220 go ahead\r\n",
                       "NOOP": b"250 2.0.0 ok\r\n", "QUIT": b"221 bye\r\n"}
            return replies.get(verb, b"502 no\r\n"), verb == "STARTTLS", verb == "QUIT"
        if self.family == "imap":
            replies = {"STARTTLS": f"{tag} OK begin TLS\r\n", "NOOP": f"{tag} OK noop\r\n",
                       "LOGOUT": f"* BYE\r\n{tag} OK logout\r\n", "CAPABILITY": f"* CAPABILITY IMAP4rev1 STARTTLS\r\n{tag} OK\r\n"}
            return replies.get(verb, f"{tag} BAD no\r\n").encode(), verb == "STARTTLS", verb == "LOGOUT"
        replies = {"CAPA": b"+OK\r\nSTLS\r\n.\r\n", "STLS": b"+OK begin TLS\r\n", "NOOP": b"-ERR not in this state\r\n",
                   "QUIT": b"+OK bye\r\n"}
        return replies.get(verb, b"-ERR no\r\n"), verb == "STLS", verb == "QUIT"
