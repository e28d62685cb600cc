"""Fleet benchmark: the real exporter against 1,000 TLS mail endpoints and 10,000 mail
domains, all on loopback.

    python3 -m benchmarks.fleet [--endpoints 1000] [--domains 1000 10000] [--scrapes 100]

Starts a fleet of SMTP/submission/SMTPS/IMAP/IMAPS/POP3/POP3S servers with real TLS, one
per address of 127.10.0.0/16 (benchmarks/_fleet_servers.py), and Knot serving the
generated domains on 127.88.0.1 (benchmarks/_dnsserver.py; the exporter asks Knot
directly, no resolver cache). Then runs the exporter process three ways, each a fresh
process whose every subject starts at once (jitter 0) and runs once (interval 1h):

1. the endpoints alone: one certificate-probe cycle, CPU seconds per probe;
2. each smaller domain count alone: one DNS cycle, CPU seconds per domain;
3. the largest domain count and the endpoints together: both cycles, then /metrics
   scrape latency with every result loaded, and the peak RSS.

A cycle is measured from the exporter's own results: from the first run's start to the
last run's end (mailsec_*_last_run_timestamp_seconds + the run's duration).
Prints a table; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ._dnsserver import KnotServer, build_zones
from ._exporter import ExporterUnderTest, cycle_seconds, runs_by_kind, samples, write_config
from ._fleet_servers import FleetEndpoint, fleet_layout, raise_fd_limit, write_pki
from tests.realservers import stop_process

TARGET_ENDPOINT_CYCLE_SECONDS = 30.0      # 1,000 endpoints
TARGET_DOMAIN_CYCLE_SECONDS = 120.0       # 10,000 domains
TARGET_SCRAPE_P99_SECONDS = 0.100
TARGET_PEAK_RSS_MIB = 300.0
IDLE_CPU_SECONDS_PER_SECOND = 0.05


@dataclass
class Figure:
    what: str
    value: str
    target: str = ""
    met: bool | None = None


class FleetServers:
    """The fleet process (benchmarks/_fleet_servers.py)."""

    def __init__(self, count: int, pki: Path, log: Path):
        self.count, self.pki, self.log = count, pki, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks._fleet_servers", "--count", str(self.count), "--pki", str(self.pki)],
                cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=log, text=True,
            )
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("fleet servers did not start:\n" + self.log.read_text()[-3000:])

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout=10)


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def wait_for_runs(exporter: ExporterUnderTest, endpoints: int, domains: int, limit: float) -> tuple[str, float]:
    """Wait until the scheduler counted `endpoints` endpoint probes and `domains` domain
    runs; return the last /metrics body and the exporter's CPU seconds at that point.

    A scrape of 10,000 domains costs the exporter seconds of CPU, so scraping in a loop
    would slow the very cycle being measured: it scrapes only when the exporter has gone
    idle (the cycle is probably over), or every 30 s."""
    deadline = time.monotonic() + limit
    last_scrape = time.monotonic()
    cpu = exporter.cpu_seconds()
    while True:
        time.sleep(1.0)
        now = exporter.cpu_seconds()
        busy, cpu = now - cpu, now
        if busy > IDLE_CPU_SECONDS_PER_SECOND and time.monotonic() - last_scrape < 30:
            continue
        _, body = exporter.scrape()
        last_scrape = time.monotonic()
        runs = runs_by_kind(body)
        endpoint_runs, domain_runs = runs.get("endpoint", 0), runs.get("domain", 0)
        if endpoint_runs >= endpoints and domain_runs >= domains:
            return body, cpu
        if time.monotonic() > deadline or not exporter.alive():
            raise RuntimeError(f"runs not done after {limit:g}s: {endpoint_runs:g} probes, {domain_runs:g} domains")
        cpu = exporter.cpu_seconds()   # the scrape's own CPU is not the cycle's


def successes(body: str, metric: str) -> tuple[int, int]:
    """(series with value 1, all series) of a 0/1 metric."""
    values = samples(body, metric).values()
    return sum(1 for v in values if v == 1.0), len(values)


def run_phase(work: Path, name: str, endpoints: list[FleetEndpoint], domains: list[str], ca_file: Path,
              concurrency: int, figures: list[Figure], scrapes: int) -> None:
    config = work / f"{name}.yml"
    write_config(config, endpoints=endpoints, domains=domains, ca_file=ca_file, interval="1h",
                 domain_interval="1h", timeout="10s", concurrency=concurrency, dns_timeout="5s")
    progress(f"phase {name}: {len(endpoints)} endpoints, {len(domains)} domains")
    exporter = ExporterUnderTest(config, work / f"{name}.log")
    progress(f"exporter ready after {exporter.startup_seconds:.1f} s")
    try:
        cpu_at_start = exporter.cpu_seconds()
        body, cpu_at_end = wait_for_runs(exporter, len(endpoints), len(domains), limit=900)
        cpu = cpu_at_end - cpu_at_start
        label = f"{len(endpoints)} endpoints + {len(domains)} domains" if endpoints and domains else (
            f"{len(endpoints)} endpoints" if endpoints else f"{len(domains)} domains")
        figures.append(Figure(f"[{label}] startup (config load until ready)", f"{exporter.startup_seconds:.1f} s"))
        if endpoints:
            cycle = cycle_seconds(body, "mailsec_probe_last_run_timestamp_seconds", "mailsec_probe_duration_seconds")
            ok, total = successes(body, "mailsec_probe_success")
            target = TARGET_ENDPOINT_CYCLE_SECONDS * len(endpoints) / 1000
            figures.append(Figure(f"[{label}] endpoint cycle ({ok}/{total} succeeded)", f"{cycle:.1f} s",
                                  f"< {target:g} s", cycle < target))
        if domains:
            cycle = cycle_seconds(body, "mailsec_domain_check_last_run_timestamp_seconds",
                                  "mailsec_domain_check_duration_seconds")
            ok, total = successes(body, "mailsec_domain_check_success")
            target = TARGET_DOMAIN_CYCLE_SECONDS * len(domains) / 10000
            figures.append(Figure(f"[{label}] domain cycle ({ok}/{total} checks ran)", f"{cycle:.1f} s",
                                  f"< {target:g} s", cycle < target))
        runs = len(endpoints) + len(domains)
        kind = "probe" if not domains else ("domain" if not endpoints else "run (probe or domain)")
        figures.append(Figure(f"[{label}] CPU per {kind}", f"{1000 * cpu / runs:.1f} ms ({cpu:.1f} s total)"))
        if scrapes:
            measure_scrapes(exporter, label, scrapes, figures)
        peak = exporter.status_kib("VmHWM") / 1024
        figures.append(Figure(f"[{label}] peak RSS (VmHWM)", f"{peak:.0f} MiB", f"< {TARGET_PEAK_RSS_MIB:g} MiB",
                              peak < TARGET_PEAK_RSS_MIB))
    finally:
        exporter.stop()


def measure_scrapes(exporter: ExporterUnderTest, label: str, count: int, figures: list[Figure]) -> None:
    timings, size = [], 0
    for _ in range(count):
        seconds, body = exporter.scrape()
        timings.append(seconds)
        size = len(body)
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(0.99 * len(timings)) - 1)]
    figures.append(Figure(f"[{label}] /metrics size", f"{size / 2**20:.1f} MiB, {body.count(chr(10))} lines"))
    figures.append(Figure(f"[{label}] /metrics scrape median", f"{1000 * statistics.median(timings):.0f} ms"))
    figures.append(Figure(f"[{label}] /metrics scrape p99 ({count} scrapes)", f"{1000 * p99:.0f} ms",
                          f"< {1000 * TARGET_SCRAPE_P99_SECONDS:g} ms", p99 < TARGET_SCRAPE_P99_SECONDS))


def print_table(figures: list[Figure]) -> None:
    width = max(len(f.what) for f in figures)
    print(f"\n{'measure':<{width}}  {'value':<28} {'target':<12} met")
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        print(f"{f.what:<{width}}  {f.value:<28} {f.target:<12} {met}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--domains", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=100, help="scrapes for the latency figures")
    args = parser.parse_args()
    raise_fd_limit()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mailsec-fleet-") as directory:
        work = Path(directory)
        ca_file = write_pki(work)
        endpoints = fleet_layout(args.endpoints)
        zones = build_zones(max(args.domains))
        fleet = FleetServers(args.endpoints, work, work / "fleet.log")
        knot = KnotServer(work / "knot", zones.zones)
        try:
            fleet.start()
            knot.start()
            progress(f"fleet of {args.endpoints} endpoints and Knot with {max(args.domains)} domains up")
            run_phase(work, "endpoints", endpoints, [], ca_file, args.concurrency, figures, scrapes=0)
            for count in sorted(args.domains)[:-1]:
                run_phase(work, f"domains{count}", [], zones.domains[:count], ca_file, args.concurrency, figures, 0)
            run_phase(work, "all", endpoints, zones.domains, ca_file, args.concurrency, figures, args.scrapes)
        finally:
            fleet.stop()
            knot.stop()
    print_table(figures)
    return 0 if all(f.met is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
