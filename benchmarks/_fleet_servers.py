"""A simulated fleet of mail servers: one process serving SMTP, submission, SMTPS, IMAP,
IMAPS, POP3 and POP3S with real TLS on many loopback addresses (127.10.0.0/16).

Run as `python -m benchmarks._fleet_servers --count N --pki DIR` from the repository root
(the scripted servers come from tests/hostile.py). It prints `ready` once every listener
is bound. Faults, for the soak benchmark: SIGUSR1 makes every new connection end with a
TCP reset at once, SIGUSR2 ends that.

`fleet_layout` is shared with the benchmarks, which generate the exporter's targets from it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.hostile import Script, imap_server, issue, pop3_server, reset, smtp_server, write_pem

# The module names are the exporter's built-in modules: each speaks its protocol on its
# standard port, and each endpoint has an address of its own, as in a real fleet.
PROTOCOL_PORTS = (
    ("smtp", 25), ("submission", 587), ("smtps", 465),
    ("imap", 143), ("imaps", 993), ("pop3", 110), ("pop3s", 995),
)
IMPLICIT_TLS = {"smtps", "imaps", "pop3s"}
SERVER_NAME = "mail.fleet.bench"   # the name in the fleet's certificate


@dataclass(frozen=True)
class FleetEndpoint:
    address: str
    port: int
    module: str


def fleet_layout(count: int) -> list[FleetEndpoint]:
    """`count` endpoints, one per address of 127.10.0.0/16, the protocols taken in turn."""
    endpoints = []
    for index in range(count):
        module, port = PROTOCOL_PORTS[index % len(PROTOCOL_PORTS)]
        address = f"127.10.{index // 250}.{index % 250 + 1}"
        endpoints.append(FleetEndpoint(address, port, module))
    return endpoints


def write_pki(directory: Path) -> Path:
    """A CA and a leaf for SERVER_NAME signed by it, as PEM files in `directory`.
    Returns the CA file, which the exporter's modules verify against."""
    ca = issue("Fleet Bench CA", is_ca=True)
    leaf = issue(SERVER_NAME, issuer=ca, dns_names=(SERVER_NAME,))
    write_pem(str(directory), "chain.pem", leaf, ca)
    (directory / "key.pem").write_bytes(leaf.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return Path(write_pem(str(directory), "ca.pem", ca))


def raise_fd_limit() -> None:
    """Each listener and each connection is a file descriptor: use the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_HANDLERS = {"smtp": smtp_server, "submission": smtp_server, "smtps": smtp_server,
             "imap": imap_server, "imaps": imap_server, "pop3": pop3_server, "pop3s": pop3_server}


class Fleet:
    def __init__(self, context: ssl.SSLContext):
        self.context = context
        self.resetting = False     # fault mode: reset every new connection

    def handler(self, module: str):
        scripted = _HANDLERS[module](Script(tls_context=self.context, plaintext_auth=False))

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if self.resetting:
                    reset(writer)
                    return
                await scripted(reader, writer)
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass   # the probe went away: normal
            finally:
                writer.close()

        return serve

    async def serve(self, endpoints: list[FleetEndpoint]) -> None:
        servers = []
        for endpoint in endpoints:
            tls = self.context if endpoint.module in IMPLICIT_TLS else None
            servers.append(await asyncio.start_server(
                self.handler(endpoint.module), endpoint.address, endpoint.port, ssl=tls, backlog=64,
            ))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(self, "resetting", True))
        loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(self, "resetting", False))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        for server in servers:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--pki", type=Path, required=True, help="directory with chain.pem and key.pem")
    args = parser.parse_args()
    raise_fd_limit()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.pki / "chain.pem", args.pki / "key.pem")
    asyncio.run(Fleet(context).serve(fleet_layout(args.count)))


if __name__ == "__main__":
    sys.exit(main())
