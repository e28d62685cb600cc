"""Real TLS servers on loopback for the deep-scan tests, and the tools to judge the scan by.

- `openssl_server` / `gnutls_server`: `openssl s_server` / `gnutls-serv` on 127.0.0.x (implicit TLS);
- postfix_tls.py: a private Postfix with weak and modern smtpd listeners (SMTP STARTTLS);
- `CountingRelay`: a TCP relay that counts the connections passing through it;
- `openssl_accepts`: the ground truth, asked of `openssl s_client` one version / suite at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

from tests.realservers import free_port, wait_until_listening

SERVER_START_SECONDS = 10.0


@contextlib.contextmanager
def _server_process(command: list[str], host: str, port: int) -> Iterator[None]:
    """Run `command` (a server listening on host:port) in its own process group; kill it on exit."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        try:
            wait_until_listening(host, port, time.monotonic() + SERVER_START_SECONDS)
        except TimeoutError:
            process.kill()
            raise RuntimeError(f"{command[0]} did not start: {process.communicate()[1].decode()}") from None
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def openssl_server(host: str, cert_file: Path, key_file: Path, *options: str) -> Iterator[int]:
    """`openssl s_server` on host:<free port> with `options` (e.g. "-cipher", "..."); yields the port.

    It serves any number of connections, one after another, and never reads stdin.
    """
    port = free_port(host)
    command = ["openssl", "s_server", "-accept", f"{host}:{port}", "-cert", str(cert_file),
               "-key", str(key_file), "-quiet", "-naccept", "100000", *options]
    with _server_process(command, host, port):
        yield port


@contextlib.contextmanager
def gnutls_server(host: str, cert_file: Path, key_file: Path, priority: str, *options: str) -> Iterator[int]:
    """`gnutls-serv` on host:<free port> with a GnuTLS priority string and `options` (e.g.
    "--dhparams", FILE); yields the port."""
    port = free_port(host)
    command = ["gnutls-serv", "--port", str(port), "--x509certfile", str(cert_file),
               "--x509keyfile", str(key_file), "--priority", priority, "--echo", *options]
    # gnutls-serv listens on every address; wait on the loopback one the tests use.
    with _server_process(command, host, port):
        yield port


def openssl_accepts(host: str, port: int, version_flag: str, *, cipher: str | None = None,
                    ciphersuites: str | None = None, starttls: str | None = None,
                    groups: str | None = None) -> bool:
    """Whether `openssl s_client` completes a handshake with exactly this version (and suite).

    `version_flag` is s_client's ("-tls1", "-tls1_1", "-tls1_2", "-tls1_3"); `cipher` an
    OpenSSL name for TLS <= 1.2, `ciphersuites` one for TLS 1.3.
    """
    command = ["openssl", "s_client", "-connect", f"{host}:{port}", version_flag, "-brief"]
    if cipher is not None:
        command += ["-cipher", f"{cipher}:@SECLEVEL=0"]
    else:
        command += ["-cipher", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"]
    if ciphersuites is not None:
        command += ["-ciphersuites", ciphersuites]
    if starttls is not None:
        command += ["-starttls", starttls]
    if groups is not None:
        command += ["-groups", groups]
    completed = subprocess.run(command, input=b"", capture_output=True, timeout=20)
    return b"CONNECTION ESTABLISHED" in completed.stderr


# What an ordinary client offers (exporter.tlswire.hello.NORMAL_CLIENT_GROUPS), in OpenSSL's names.
OPENSSL_NORMAL_CLIENT_GROUPS = "X25519:P-256:X448:P-521:P-384"


def openssl_temp_key_group(host: str, port: int, version_flag: str, *, starttls: str | None = None,
                           groups: str = OPENSSL_NORMAL_CLIENT_GROUPS) -> str | None:
    """The registry name ("x25519", "secp256r1") of the group `openssl s_client` offering `groups`
    gets for its key exchange ("Server Temp Key"), or None without an EC/X key exchange."""
    command = ["openssl", "s_client", "-connect", f"{host}:{port}", version_flag, "-brief", "-groups", groups]
    if starttls is not None:
        command += ["-starttls", starttls]
    completed = subprocess.run(command, input="", capture_output=True, timeout=20, text=True)
    for line in completed.stderr.splitlines():
        if line.startswith("Server Temp Key: "):
            parts = [part.strip() for part in line.removeprefix("Server Temp Key: ").split(",")]
            name = parts[1] if parts[0] == "ECDH" else parts[0]
            return {"prime256v1": "secp256r1"}.get(name, name.lower()) if parts[0] != "DH" else None
    return None


def openssl_cipher_names(version_flag: str, cipher_string: str) -> dict[str, str]:
    """IANA name -> OpenSSL name of every suite `cipher_string` enables for a version: the
    candidates a test then checks one by one with `openssl_accepts`."""
    completed = subprocess.run(["openssl", "ciphers", "-s", "-stdname", version_flag, cipher_string],
                               capture_output=True, text=True, check=True)
    names = {}
    for line in completed.stdout.splitlines():
        iana, _, openssl_name = line.split()[:3]
        names[iana] = openssl_name
    return names


class CountingRelay:
    """A TCP relay on 127.0.0.1:<port> to an upstream, counting the connections it accepted."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "CountingRelay":
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        except asyncio.CancelledError:
            # The relay is shutting down. Ending normally keeps Python 3.11's stream callback
            # from logging the cancellation as an error (fixed in 3.12).
            pass
        finally:
            upstream_writer.close()
            client_writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, asyncio.IncompleteReadError):
        writer.close()
