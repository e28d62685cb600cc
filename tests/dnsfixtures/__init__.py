"""Real DNS servers for the domain-check tests: Knot (authoritative) and Unbound (validating).

Knot serves the pre-signed zones of `zones.py` on 127.77.0.1:53; Unbound listens on
127.77.0.2:53, sends every query to Knot (a stub zone for the root, so nothing ever
leaves the machine) and validates with the key of `test.` as its only trust anchor.

`running_dns_lab()` starts both once per process and stops them when the process exits,
tests failing or not; the children also get SIGKILL if the test process dies first.
"""

from __future__ import annotations

import atexit
import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.exception
import dns.query
import dns.reversename

from exporter.config import DNSSettings, Nameserver

from .zones import AUTH_ADDRESS, MX1_GOOD_V6, PORT, RESOLVER_ADDRESS, build_tree

KNOTD = "/usr/sbin/knotd"
UNBOUND = "/usr/sbin/unbound"
STARTUP_SECONDS = 10.0


@dataclass(frozen=True)
class DNSLab:
    directory: Path
    resolver: DNSSettings          # the validating resolver, as the exporter's config would name it
    authoritative: DNSSettings     # Knot directly: no validation, never sets AD


_lab: DNSLab | None = None
_processes: list[subprocess.Popen] = []


def running_dns_lab() -> DNSLab:
    global _lab
    if _lab is None:
        directory = Path(tempfile.mkdtemp(prefix="mailsec-dnslab-"))
        atexit.register(_stop, directory)
        tree = build_tree()
        _start_knot(directory, tree.zones)
        _start_unbound(directory, tree.trust_anchor, list(tree.zones))
        _lab = DNSLab(
            directory=directory,
            resolver=DNSSettings(nameservers=(Nameserver(RESOLVER_ADDRESS, PORT),), timeout=3.0, retries=1),
            authoritative=DNSSettings(nameservers=(Nameserver(AUTH_ADDRESS, PORT),), timeout=3.0, retries=1),
        )
    return _lab


def _start_knot(directory: Path, zones: dict[str, str]) -> None:
    zone_dir = directory / "knot"
    zone_dir.mkdir()
    zone_entries = []
    for origin, text in zones.items():
        zone_file = zone_dir / f"{origin.rstrip('.') or 'root'}.zone"
        zone_file.write_text(text)
        zone_entries.append(f'  - domain: "{origin}"\n    file: "{zone_file}"\n')
    config = zone_dir / "knot.conf"
    config.write_text(
        f"server:\n  rundir: {zone_dir}\n  listen: {AUTH_ADDRESS}@{PORT}\n"
        f"database:\n  storage: {zone_dir}\n"
        "log:\n  - target: stderr\n    any: warning\n"
        f"template:\n  - id: default\n    storage: {zone_dir}\n    journal-content: none\n"
        "    zonefile-sync: -1\n    zonefile-load: whole\n"
        "zone:\n" + "".join(zone_entries)
    )
    _spawn([KNOTD, "-c", str(config)], zone_dir / "knotd.log")
    _wait_until_answering(AUTH_ADDRESS, "test.", zone_dir / "knotd.log")


def _start_unbound(directory: Path, trust_anchor: str, zones: list[str]) -> None:
    work = directory / "unbound"
    work.mkdir()
    config = work / "unbound.conf"
    config.write_text(
        "server:\n"
        f"  interface: {RESOLVER_ADDRESS}\n  port: {PORT}\n"
        "  do-not-query-localhost: no\n  do-ip6: no\n"
        f'  chroot: ""\n  username: ""\n  directory: "{work}"\n  pidfile: "{work}/unbound.pid"\n'
        '  use-syslog: no\n  logfile: ""\n  verbosity: 1\n  num-threads: 1\n'
        "  access-control: 127.0.0.0/8 allow\n"
        "  module-config: \"validator iterator\"\n"
        "  qname-minimisation: no\n"
        f'  trust-anchor: "{trust_anchor}"\n'
        # Unbound answers these itself by default (RFC 6761 names, localhost reverse).
        + "".join(f'  local-zone: "{zone}" nodefault\n' for zone in zones if zone != ".")
        + f'  local-zone: "{dns.reversename.from_address(MX1_GOOD_V6)}" nodefault\n'
        # The private root on Knot replaces the real one: no query leaves the machine.
        + "stub-zone:\n  name: \".\"\n"
        f"  stub-addr: {AUTH_ADDRESS}@{PORT}\n"
    )
    _spawn([UNBOUND, "-d", "-c", str(config)], work / "unbound.log")
    _wait_until_answering(RESOLVER_ADDRESS, "test.", work / "unbound.log")


def _spawn(command: list[str], log: Path) -> None:
    with open(log, "wb") as log_file:
        _processes.append(subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        ))


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the test process dies (Linux)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_until_answering(address: str, name: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in _processes):
            raise RuntimeError(f"a DNS server exited at start:\n{log.read_text()}")
        try:
            response = dns.query.udp(dns.message.make_query(name, "SOA"), address, timeout=0.3, port=PORT)
            if response.answer:
                return
        except (OSError, dns.exception.Timeout):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{address}:{PORT} did not answer within {STARTUP_SECONDS}s:\n{log.read_text()}")


def _stop(directory: Path) -> None:
    for process in _processes:
        process.terminate()
    for process in _processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _processes.clear()
    shutil.rmtree(directory, ignore_errors=True)
