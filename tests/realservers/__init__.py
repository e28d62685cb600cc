"""Real Postfix and Dovecot instances on loopback addresses, for integration tests.

Each instance lives entirely in a temporary directory (its own config, queue, state
and log files) and listens only on 127.0.0.x addresses with ports picked at start,
so it never touches /etc/postfix, the system Dovecot, or another test run.
An `Endpoint` says what one listener serves, so that tests can compare the probe's
findings with the certificates the server was actually given.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from exporter.config import MailProtocol

from .pki import ServerCredential


@dataclass(frozen=True)
class Endpoint:
    """One listener of a real server, set up for one test scenario."""

    scenario: str
    protocol: MailProtocol
    host: str                                # an IPv4 literal in 127.0.0.0/8
    port: int
    server_name: str                         # the name the certificate is checked against
    ca_file: str                             # the test root CA
    credential: ServerCredential | None      # None when the listener offers no TLS at all

    @property
    def leaf(self) -> x509.Certificate:
        assert self.credential is not None, f"{self.scenario} serves no certificate"
        return self.credential.leaf.cert

    @property
    def intermediate(self) -> x509.Certificate | None:
        assert self.credential is not None, f"{self.scenario} serves no certificate"
        return self.credential.intermediate

    @property
    def presented_chain(self) -> tuple[x509.Certificate, ...]:
        assert self.credential is not None, f"{self.scenario} serves no certificate"
        return self.credential.presented_chain


def free_port(host: str) -> int:
    """A TCP port nobody listens on at `host` right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_until_listening(host: str, port: int, deadline: float) -> None:
    """Block until a TCP connection to host:port succeeds; TimeoutError after `deadline`."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}: {exc}") from None
            time.sleep(0.05)


def process_group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid`. Zombies count as dead: in a container
    nobody may be quick to reap the orphans of a stopped daemon."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_file.read_text()
        except OSError:   # gone meanwhile
            continue
        # After the command name in parentheses (which may hold spaces): state, ppid, pgrp...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if state != "Z" and int(pgrp) == pgid:
            members.append(int(stat_file.parent.name))
    return members


def end_process_group(pgid: int, grace: float) -> None:
    """Give the group `grace` seconds to exit by itself, then SIGKILL whatever is left."""
    deadline = time.monotonic() + grace
    while process_group_members(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + grace
        time.sleep(0.05)


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM `process` and reap it; SIGKILL it if it is still there after `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def startup_failure(server: str, cause: object, output: str, log_file: Path) -> RuntimeError:
    """The error for a server that did not start, with what it wrote to `output` and its log."""
    log = log_file.read_text() if log_file.exists() else ""
    return RuntimeError(f"{server} did not start: {cause}\n{output}{log}")
