"""Whole-process times of the one-shot commands, as a user sees them in a terminal, against
the tools people run instead, on the same loopback servers.

    python3 -m benchmarks.cli_commands [--runs 5]

- `--help`: ours, sslyze's, checkdmarc's;
- `scan`: `mailsec-exporter scan` against `sslyze` with the same scan commands as
  benchmarks/tls_scan.py, on the modern Postfix STARTTLS listener of that benchmark;
- `check`: `mailsec-exporter check` against checkdmarc (through
  benchmarks/_checkdmarc_runner.py, which refuses any address outside loopback) on the
  `good.scen` domain of benchmarks/_dnsserver.py, served by Knot on 127.88.0.1. Ours also
  probes the MX hosts' STARTTLS (none listens there: refused at once), checkdmarc does not.

Every figure is the median wall time of `--runs` runs of a fresh process (interpreter start,
imports, work, exit). sslyze and checkdmarc live in venvs of their own (benchmarks/_toolvenv.py).

The exporter's bytecode is compiled first, as `pip install` does for every package (theirs
included): without it, and with PYTHONDONTWRITEBYTECODE set, each run would compile the
exporter's sources again (~100 ms). The floor rows say what no command can go below: the
interpreter's start in each venv (ours has an editable install's import hook), and the
libraries `check` cannot do without.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._dnsserver import KNOT_ADDRESS, KnotServer, build_zones, scenario_domain
from ._toolvenv import tool_python
from .tls_scan import SSLYZE_COMMANDS, SSLYZE_VENV

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).with_name("_checkdmarc_runner.py")
OURS = [sys.executable, "-m", "exporter"]


def median_seconds(command: list[str], runs: int) -> float:
    """The median wall time of `runs` runs of `command`; a failing run is an error."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, cwd=REPO, timeout=600)
        times.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):      # check: 1 means findings, not failure
            raise RuntimeError(f"{command[:4]} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return statistics.median(times)


def row(what: str, ours: float, theirs: float, tool: str) -> str:
    return f"| {what} | {1000 * ours:.0f} ms | {tool} {1000 * theirs:.0f} ms | {theirs / ours:.1f}x |"


FLOOR_IMPORTS = "import asyncio, ssl, dns.asyncresolver, cryptography.x509"


def floor_rows(runs: int, sslyze: Path, checkdmarc: Path) -> list[str]:
    starts = [f"{name} {1000 * median_seconds([str(python), '-c', 'pass'], runs):.0f} ms"
              for name, python in (("ours", Path(sys.executable)), ("sslyze", sslyze), ("checkdmarc", checkdmarc))]
    imports = median_seconds([sys.executable, "-c", FLOOR_IMPORTS], runs)
    return [f"| floor: the interpreter starts | {' / '.join(starts)} | | |",
            f"| floor: `{FLOOR_IMPORTS}` | {1000 * imports:.0f} ms | | |"]


def help_rows(runs: int, sslyze: Path, checkdmarc: Path) -> list[str]:
    ours = median_seconds(OURS + ["--help"], runs)
    return [row("`--help`", ours, median_seconds([str(sslyze), "-m", "sslyze", "--help"], runs), "sslyze"),
            row("`--help`", ours, median_seconds([str(checkdmarc.parent / "checkdmarc"), "--help"], runs),
                "checkdmarc")]


def scan_row(runs: int, sslyze: Path, workdir: Path) -> str:
    from tests.realservers.pki import generate_pki
    from tests.tlsservers.postfix_tls import running_tls_postfix

    (workdir / "pki").mkdir()
    with running_tls_postfix(workdir / "postfix", generate_pki(workdir / "pki").good_rsa) as postfix:
        endpoint = f"{postfix.host['modern']}:{postfix.port['modern']}"
        ours = median_seconds(OURS + ["scan", endpoint, "--starttls", "smtp"], runs)
        theirs = median_seconds([str(sslyze), "-m", "sslyze", "--quiet", "--mozilla_config", "disable",
                                 *(flag for flag, _ in SSLYZE_COMMANDS.values()), "--elliptic_curves",
                                 "--starttls", "smtp", endpoint], runs)
    return row("`scan` (Postfix, STARTTLS, 6 suites)", ours, theirs, "sslyze")


def check_row(runs: int, checkdmarc: Path, workdir: Path) -> str:
    domain = scenario_domain("good")
    knot = KnotServer(workdir / "knot", build_zones(1).zones)
    knot.start()
    try:
        domain_file = workdir / "domains.txt"
        domain_file.write_text(domain + "\n")
        ours = median_seconds(OURS + ["check", domain, "--dns.nameserver", KNOT_ADDRESS], runs)
        theirs = median_seconds([str(checkdmarc), str(RUNNER), KNOT_ADDRESS, str(domain_file), "each"], runs)
    finally:
        knot.stop()
    return row(f"`check {domain}` (Knot on loopback)", ours, theirs, "checkdmarc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sslyze = tool_python(SSLYZE_VENV, "sslyze")
    checkdmarc = tool_python(Path("/tmp/checkdmarc-venv"), "checkdmarc")
    compileall.compile_dir(REPO / "exporter", quiet=1)
    workdir = Path(tempfile.mkdtemp(prefix="mailsec-clibench-"))
    os.chmod(workdir, 0o755)            # Postfix's smtpd (user postfix) reads the key files here
    try:
        rows = [*help_rows(args.runs, sslyze, checkdmarc), scan_row(args.runs, sslyze, workdir),
                check_row(args.runs, checkdmarc, workdir), *floor_rows(args.runs, sslyze, checkdmarc)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Whole processes, median of {args.runs} runs, {os.cpu_count()} cores\n")
    print("| command | ours | theirs | ours faster by |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
