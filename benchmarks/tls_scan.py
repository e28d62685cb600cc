"""Benchmark: our deep TLS scan against sslyze and testssl.sh, on the same loopback servers.

    python3 benchmarks/tls_scan.py [--runs N] [--tools ours,sslyze,testssl] [--raw-dir DIR]

Not a test: it starts a private Postfix (weak and modern SMTP STARTTLS listeners, from
tests/tlsservers/postfix_tls.py) and a private Dovecot (IMAPS, implicit TLS, from
tests/realservers/dovecot.py) on 127.0.0.x, scans each with every tool through a TCP relay
that counts the connections, and prints one table per server: wall time, connections,
and the findings (accepted suites per version, versions, groups) compared with ours.

Tools:
- ours: exporter.tlsscan.scanner.scan_endpoint, in this process;
- sslyze: its CLI, from a separate venv (SSLYZE_VENV, created with `pip install sslyze` when
  missing), with --starttls smtp where it applies, every cipher-suite command and
  --elliptic_curves, nothing else;
- testssl.sh (Debian: `apt-get install -y testssl.sh`, command `testssl`): -p (protocols),
  -E (cipher suites per protocol), -P (server preference), JSON output.
A tool that is not there is reported as missing, with how to install it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.config import DNSSettings, Module, MailProtocol, StartTLS, Target  # noqa: E402
from exporter.dnsclient import DNSClient  # noqa: E402
from benchmarks._toolvenv import tool_python  # noqa: E402
from exporter.tlsscan.scanner import scan_endpoint  # noqa: E402
from exporter.tlswire import ProtocolVersion  # noqa: E402
from exporter.tlswire.ciphers import CIPHER_SUITES, SSL2_CIPHER_KINDS  # noqa: E402
from tests.realservers.dovecot import running_dovecot  # noqa: E402
from tests.realservers.pki import generate_pki  # noqa: E402
from tests.tlsservers import CountingRelay  # noqa: E402
from tests.tlsservers.postfix_tls import running_tls_postfix  # noqa: E402

SSLYZE_VENV = Path(os.environ.get("SSLYZE_VENV", "/tmp/sslyze-venv"))
TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
TOOL_TIMEOUT_SECONDS = 900
VERSIONS = (ProtocolVersion.SSL2, ProtocolVersion.SSL3, ProtocolVersion.TLS1_0, ProtocolVersion.TLS1_1,
            ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3)


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int
    protocol: MailProtocol
    starttls: str | None        # "smtp" for SMTP STARTTLS, None for implicit TLS


@dataclass
class Findings:
    """What one tool found, in one vocabulary: IANA suite names per version label, group names."""

    suites: dict[str, set[str]] = field(default_factory=lambda: {v.label: set() for v in VERSIONS})
    groups: set[str] | None = None          # None: the tool was not asked for groups
    # The scan time the tool reports itself, without its start-up (sslyze: its JSON dates).
    own_seconds: float | None = None

    @property
    def versions(self) -> set[str]:
        return {version for version, names in self.suites.items() if names}

    @property
    def suite_count(self) -> int:
        return sum(len(names) for names in self.suites.values())


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    connections: int
    findings: Findings | None       # None: the tool failed; `note` says why
    note: str = ""


# --- the tools ---------------------------------------------------------------------------------

async def run_ours(server: Server, port: int, raw_dir: Path) -> Findings:
    module = Module(name="bench", protocol=server.protocol, port=port,
                    starttls=StartTLS.REQUIRED if server.starttls else StartTLS.NONE,
                    timeout=10.0, interval=300.0)
    result = await scan_endpoint(Target(host="127.0.0.1", port=port, module="bench"), module,
                                 DNSClient(DNSSettings()))
    if not result.success:
        raise RuntimeError(f"scan failed: {result.failure} {result.failure_detail}")
    (raw_dir / f"ours-{server.name}.txt").write_text(repr(result))
    findings = Findings(groups={group.name.lower() for group in result.groups}, own_seconds=result.duration_seconds)
    for cipher in result.ciphers:
        findings.suites[cipher.version.label].add(cipher.name)
    return findings


SSLYZE_COMMANDS = {ProtocolVersion.SSL2: ("--sslv2", "ssl_2_0_cipher_suites"),
                   ProtocolVersion.SSL3: ("--sslv3", "ssl_3_0_cipher_suites"),
                   ProtocolVersion.TLS1_0: ("--tlsv1", "tls_1_0_cipher_suites"),
                   ProtocolVersion.TLS1_1: ("--tlsv1_1", "tls_1_1_cipher_suites"),
                   ProtocolVersion.TLS1_2: ("--tlsv1_2", "tls_1_2_cipher_suites"),
                   ProtocolVersion.TLS1_3: ("--tlsv1_3", "tls_1_3_cipher_suites")}


async def run_sslyze(server: Server, port: int, raw_dir: Path) -> Findings:
    output = raw_dir / f"sslyze-{server.name}.json"
    command = [str(tool_python(SSLYZE_VENV, "sslyze")), "-m", "sslyze", "--quiet", "--mozilla_config", "disable",
               *(flag for flag, _ in SSLYZE_COMMANDS.values()), "--elliptic_curves",
               "--json_out", str(output)]
    if server.starttls:
        command += ["--starttls", server.starttls]
    await run_command(command + [f"127.0.0.1:{port}"], raw_dir / f"sslyze-{server.name}.log")
    report = json.loads(output.read_text())
    scan = report["server_scan_results"][0]
    if scan["scan_status"] != "COMPLETED":
        raise RuntimeError(f"sslyze: {scan['connectivity_status']} {scan.get('connectivity_error_trace')}")
    results = scan["scan_result"]
    started, completed = (datetime.datetime.fromisoformat(report[key].replace("Z", "+00:00"))
                          for key in ("date_scans_started", "date_scans_completed"))
    findings = Findings(own_seconds=(completed - started).total_seconds())
    for version, (_, key) in SSLYZE_COMMANDS.items():
        attempt = results[key]
        if attempt["status"] != "COMPLETED":
            raise RuntimeError(f"sslyze {key}: {attempt['error_reason']}")
        findings.suites[version.label] = {accepted["cipher_suite"]["name"]
                                          for accepted in attempt["result"]["accepted_cipher_suites"]}
    curves = results["elliptic_curves"]
    if curves["status"] == "COMPLETED":
        findings.groups = {curve["name"].lower() for curve in curves["result"]["supported_curves"] or ()}
    return findings


TESTSSL_VERSION_IDS = {"SSLv2": ProtocolVersion.SSL2, "SSLv3": ProtocolVersion.SSL3,
                       "TLS1": ProtocolVersion.TLS1_0, "TLS1_1": ProtocolVersion.TLS1_1,
                       "TLS1_2": ProtocolVersion.TLS1_2, "TLS1_3": ProtocolVersion.TLS1_3}
TESTSSL_CIPHER_PREFIXES = {"cipher-ssl2_": ProtocolVersion.SSL2, "cipher-ssl3_": ProtocolVersion.SSL3,
                           "cipher-tls1_": ProtocolVersion.TLS1_0, "cipher-tls1_1_": ProtocolVersion.TLS1_1,
                           "cipher-tls1_2_": ProtocolVersion.TLS1_2, "cipher-tls1_3_": ProtocolVersion.TLS1_3}


def testssl_suite_name(version: ProtocolVersion, hex_code: str) -> str:
    """testssl.sh names a suite by its code ("xc02f", SSLv2 "x010080"); ours by IANA name."""
    code = int(hex_code.lstrip("x"), 16)
    table = SSL2_CIPHER_KINDS if version is ProtocolVersion.SSL2 else CIPHER_SUITES
    return table[code].name if code in table else f"unknown {hex_code}"


async def run_testssl(server: Server, port: int, raw_dir: Path) -> Findings:
    if TESTSSL is None:
        raise FileNotFoundError("testssl.sh is not installed (apt-get install -y testssl.sh)")
    output = raw_dir / f"testssl-{server.name}.json"
    output.unlink(missing_ok=True)             # testssl.sh refuses to overwrite
    # --nodns none: testssl.sh otherwise asks the system resolver (off loopback) for rDNS and MX.
    command = [TESTSSL, "-p", "-E", "-P", "--warnings", "off", "--quiet", "--color", "0", "--nodns", "none",
               "--jsonfile", str(output)]
    if server.starttls:
        command += ["--starttls", server.starttls]
    await run_command(command + [f"127.0.0.1:{port}"], raw_dir / f"testssl-{server.name}.log")
    findings = Findings()
    for entry in json.loads(output.read_text()):
        identifier = entry["id"]
        if identifier == "scanTime":                 # whole seconds
            findings.own_seconds = float(entry["finding"])
        # The longest matching prefix: "cipher-tls1_2_" before "cipher-tls1_".
        prefixes = [p for p in TESTSSL_CIPHER_PREFIXES if identifier.startswith(p)]
        if prefixes:
            prefix = max(prefixes, key=len)
            version = TESTSSL_CIPHER_PREFIXES[prefix]
            findings.suites[version.label].add(testssl_suite_name(version, identifier[len(prefix):]))
    return findings


async def run_command(command: list[str], log_file: Path) -> None:
    with open(log_file, "wb") as log:
        process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.DEVNULL, stdout=log,
                                                       stderr=subprocess.STDOUT, start_new_session=True)
        try:
            async with asyncio.timeout(TOOL_TIMEOUT_SECONDS):
                await process.wait()
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


Tool = Callable[[Server, int, Path], Awaitable[Findings]]
TOOLS: dict[str, Tool] = {"ours": run_ours, "sslyze": run_sslyze, "testssl": run_testssl}


async def measure(tool: str, server: Server, raw_dir: Path) -> Run:
    """One run of `tool` against `server` through a fresh counting relay."""
    async with CountingRelay(server.host, server.port) as relay:
        started = time.monotonic()
        try:
            findings: Findings | None = await TOOLS[tool](server, relay.port, raw_dir)
            note = ""
        except Exception as exc:        # a tool that breaks is reported in the table, not fatal
            findings, note = None, f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
    return Run(tool, seconds, relay.connections, findings, note)


# --- the report --------------------------------------------------------------------------------

def diff_against(ours: Findings, theirs: Findings) -> list[str]:
    """Each difference, from our point of view: '-' only they found it, '+' only we did."""
    lines = []
    for version in VERSIONS:
        label = version.label
        for name in sorted(theirs.suites[label] - ours.suites[label]):
            lines.append(f"- {label} {name} (only they found it)")
        for name in sorted(ours.suites[label] - theirs.suites[label]):
            lines.append(f"+ {label} {name} (only we found it)")
    if theirs.groups is not None and ours.groups is not None and theirs.groups != ours.groups:
        lines.append(f"groups: only they: {sorted(theirs.groups - ours.groups)}, "
                     f"only we: {sorted(ours.groups - theirs.groups)}")
    return lines


def render(server: Server, runs: dict[str, list[Run]]) -> str:
    ours = runs["ours"][0].findings if "ours" in runs else None
    base = statistics.median(r.seconds for r in runs["ours"]) if "ours" in runs else None
    lines = [f"### {server.name} ({'STARTTLS ' + server.starttls if server.starttls else 'implicit TLS'})", "",
             "| tool | wall time (median) | vs ours | own scan time (median) | TCP connections | versions | suites "
             "| same findings as ours |",
             "|---|---|---|---|---|---|---|---|"]
    details = []
    for tool, tool_runs in runs.items():
        median = statistics.median(r.seconds for r in tool_runs)
        last = tool_runs[-1]
        if last.findings is None:
            lines.append(f"| {tool} | {median:.2f} s | | | {last.connections} | failed: {last.note} | | |")
            continue
        ratio = f"{median / base:.1f}x" if base else ""
        versions = ", ".join(v.label for v in VERSIONS if v.label in last.findings.versions)
        differences = diff_against(ours, last.findings) if ours is not None and tool != "ours" else []
        same = "" if tool == "ours" else "yes" if not differences else f"no ({len(differences)} differences)"
        owns = [r.findings.own_seconds for r in tool_runs if r.findings and r.findings.own_seconds is not None]
        own = f"{statistics.median(owns):.2f} s" if owns else ""
        lines.append(f"| {tool} | {median:.2f} s | {ratio} | {own} | {last.connections} | {versions} | "
                     f"{last.findings.suite_count} | {same} |")
        details += [f"  {tool}: {line}" for line in differences]
    if details:
        lines += ["", "Differences (relative to ours):", *details]
    return "\n".join(lines)


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(),
                "openssl": subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()}
    python = SSLYZE_VENV / "bin" / "python"
    if python.exists():
        versions["sslyze"] = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('sslyze'))"],
                                            capture_output=True, text=True).stdout.strip() or "?"
    if TESTSSL:
        banner = subprocess.run([TESTSSL, "--version"], capture_output=True, text=True).stdout
        versions["testssl.sh"] = next((line.split()[1] for line in banner.splitlines() if "testssl" in line
                                       and "from" in line), "?")
    return versions


@contextlib.contextmanager
def loopback_servers(workdir: Path) -> Iterator[list[Server]]:
    (workdir / "pki").mkdir()
    pki = generate_pki(workdir / "pki")
    with running_tls_postfix(workdir / "postfix", pki.good_rsa) as postfix, \
            running_dovecot(workdir / "dovecot", pki) as dovecot:
        imaps = dovecot.endpoints["imaps-good"]
        yield [Server("postfix-weak", postfix.host["weak"], postfix.port["weak"], MailProtocol.SMTP, "smtp"),
               Server("postfix-modern", postfix.host["modern"], postfix.port["modern"], MailProtocol.SMTP, "smtp"),
               Server("dovecot-imaps", imaps.host, imaps.port, MailProtocol.IMAPS, None)]


async def benchmark(servers: list[Server], tools: list[str], runs: int, raw_dir: Path) -> None:
    print(f"# TLS scan benchmark, {datetime.date.today()}, {os.cpu_count()} cores, "
          + ", ".join(f"{name} {version}" for name, version in tool_versions().items()))
    for server in servers:
        results: dict[str, list[Run]] = {}
        for tool in tools:
            # The slow tools run once; ours, cheap, `runs` times for a steadier median.
            results[tool] = [await measure(tool, server, raw_dir) for _ in range(runs if tool == "ours" else 1)]
        print()
        print(render(server, results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", default="ours,sslyze,testssl")
    parser.add_argument("--runs", type=int, default=3, help="runs of our scanner per server (median reported)")
    parser.add_argument("--raw-dir", type=Path, help="keep every tool's raw output here")
    args = parser.parse_args()
    tools = args.tools.split(",")
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if "ours" not in tools:
        tools.insert(0, "ours")         # the reference every other tool is compared with
    workdir = Path(tempfile.mkdtemp(prefix="mailsec-tlsbench-"))
    os.chmod(workdir, 0o755)            # Postfix's smtpd (user postfix) reads the key and DH files here
    raw_dir = args.raw_dir or workdir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    try:
        with loopback_servers(workdir) as servers:
            asyncio.run(benchmark(servers, tools, args.runs, raw_dir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.raw_dir is not None:
        print(f"\nraw outputs kept in {raw_dir}")


if __name__ == "__main__":
    main()
