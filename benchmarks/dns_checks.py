"""Our domain checks against checkdmarc, on the same zones served by Knot on loopback.

    python3 -m benchmarks.dns_checks [--batch 1000] [--delay-ms 0] [--venv /tmp/checkdmarc-venv]

checkdmarc runs in a virtual environment of its own (created, with `pip install
checkdmarc`, when missing), through benchmarks/_checkdmarc_runner.py, which keeps every
connection on 127.0.0.0/8. Both ask Knot directly (127.88.0.1:53, see _dnsserver.py), or,
with `--delay-ms MS`, through the delaying proxy of _dnsdelay.py on 127.88.0.2:53, which
holds each answer back MS milliseconds: a resolver that far away.

Prints:
1. the findings table: for each deliberately broken domain (_dnsserver.SCENARIOS), what
   our check_domain reports (finding codes, check failures) and every error and warning
   checkdmarc raises;
2. wall times: one domain (median of the scenario domains), and a batch of `--batch`
   generated domains: checkdmarc (sequential, its only mode), ours one at a time, ours
   concurrently (at most 32 domains at once, the exporter's default global.concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from exporter.config import DNSSettings, Domain, Nameserver
from exporter.dnsclient import DNSClient
from exporter.domains.check import DomainResult, check_domain

from ._dnsdelay import DelayProxy
from ._toolvenv import tool_python
from ._dnsserver import BENCH_ZONE, KNOT_ADDRESS, KNOT_PORT, SCENARIOS, KnotServer, build_zones, scenario_domain

RUNNER = Path(__file__).with_name("_checkdmarc_runner.py")
CONCURRENT_DOMAINS = 32   # the exporter's default global.concurrency
TARGET_SPEEDUP = 2.0
PROXY_ADDRESS = "127.88.0.2"   # the delaying proxy, port 53 like Knot


def run_checkdmarc(python: Path, nameserver: str, domains: list[str], mode: str, work: Path) -> dict:
    domain_file = work / f"domains-{mode}.txt"
    domain_file.write_text("\n".join(domains) + "\n")
    output = subprocess.run([str(python), str(RUNNER), nameserver, str(domain_file), mode],
                            check=True, capture_output=True, text=True)
    return json.loads(output.stdout)


def our_client(nameserver: str) -> DNSClient:
    return DNSClient(DNSSettings(nameservers=(Nameserver(nameserver, KNOT_PORT),), timeout=5.0, retries=1))


def our_findings(result: DomainResult) -> list[str]:
    found = [f"{f.severity.value}:{f.code}" for f in result.findings]
    found += [f"check_failed:{check}:{failure.reason.value}"
              for check, failure in result.check_failures().items() if failure is not None]
    return found


async def time_ours(nameserver: str, domains: list[str], concurrent: int) -> tuple[float, list[DomainResult]]:
    client = our_client(nameserver)
    limit = asyncio.Semaphore(concurrent)

    async def one(name: str) -> DomainResult:
        async with limit:
            return await check_domain(Domain(name, dkim_selectors=("sel1",)), client)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(name) for name in domains))
    return time.perf_counter() - started, results


async def each_of_ours(nameserver: str, domains: list[str]) -> dict[str, tuple[float, DomainResult]]:
    client = our_client(nameserver)
    timed = {}
    for name in domains:
        started = time.perf_counter()
        result = await check_domain(Domain(name, dkim_selectors=("sel1",)), client)
        timed[name] = (time.perf_counter() - started, result)
    return timed


def print_findings(ours: dict[str, tuple[float, DomainResult]], theirs: dict) -> None:
    print("\n== Findings per scenario ==")
    for label, (what, _) in SCENARIOS.items():
        domain = scenario_domain(label)
        print(f"\n{domain}: {what}")
        print("  ours:       " + (", ".join(our_findings(ours[domain][1])) or "(none)"))
        their_findings = theirs[domain]["findings"]
        if not their_findings:
            print("  checkdmarc: (none)")
        for severity, section, message in their_findings:
            line = f"{severity} [{section}] {message}"
            print(textwrap.fill(line, width=150, initial_indent="  checkdmarc: ", subsequent_indent=" " * 14))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="ask through a proxy that delays each answer this long (0: ask Knot directly)")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/checkdmarc-venv"))
    args = parser.parse_args()
    python = tool_python(args.venv, "checkdmarc")
    nameserver = PROXY_ADDRESS if args.delay_ms > 0 else KNOT_ADDRESS
    with tempfile.TemporaryDirectory(prefix="mailsec-dnsbench-") as directory:
        work = Path(directory)
        zones = build_zones(args.batch)
        knot = KnotServer(work / "knot", zones.zones)
        proxy = DelayProxy(PROXY_ADDRESS, KNOT_ADDRESS, args.delay_ms) if args.delay_ms > 0 else None
        knot.start()
        try:
            if proxy:
                proxy.start(BENCH_ZONE)
            scenario_domains = [scenario_domain(label) for label in SCENARIOS]
            ours = asyncio.run(each_of_ours(nameserver, scenario_domains))
            theirs = run_checkdmarc(python, nameserver, scenario_domains, "each", work)
            print_findings(ours, theirs)
            their_batch = run_checkdmarc(python, nameserver, zones.domains, "batch", work)["seconds"]
            our_sequential, _ = asyncio.run(time_ours(nameserver, zones.domains, 1))
            our_concurrent, results = asyncio.run(time_ours(nameserver, zones.domains, CONCURRENT_DOMAINS))
        finally:
            if proxy:
                proxy.stop()
            knot.stop()
    failed = sum(1 for result in results if not result.success)
    our_one = statistics.median(seconds for seconds, _ in ours.values())
    their_one = statistics.median(entry["seconds"] for entry in theirs.values())
    speedup = their_batch / our_concurrent
    where = f"through the proxy, +{args.delay_ms:g} ms per answer" if proxy else "Knot asked directly"
    print(f"\n== Wall time ({where}; {len(scenario_domains)} scenario domains for one domain; "
          f"{args.batch} generated domains for the batch) ==")
    print(f"one domain, median:           ours {1000 * our_one:.1f} ms, checkdmarc {1000 * their_one:.1f} ms")
    print(f"batch, checkdmarc:            {their_batch:.1f} s (sequential)")
    print(f"batch, ours one at a time:    {our_sequential:.1f} s ({their_batch / our_sequential:.1f}x)")
    print(f"batch, ours {CONCURRENT_DOMAINS} at once:       {our_concurrent:.1f} s "
          f"({failed} domains with a failed check)")
    print(f"speed-up on the batch:        {speedup:.1f}x (target >= {TARGET_SPEEDUP:g}x): "
          + ("met" if speedup >= TARGET_SPEEDUP else "MISSED"))
    return 0 if speedup >= TARGET_SPEEDUP and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
