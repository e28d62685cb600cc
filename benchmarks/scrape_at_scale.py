"""/metrics while results change (issue 18): 10,000 realistic domains and 1,000 endpoints.

    python3 -m benchmarks.scrape_at_scale [--domains 10000] [--endpoints 1000] [--seconds 60]
                                          [--phases cycle steady nofreeze] [--trace DIR]

The zones of benchmarks/_realzones.py on Knot behind Unbound, and the TLS endpoints of
benchmarks/_fleet_servers.py, as in benchmarks/domains_at_scale.py. Every second the
benchmark scrapes /metrics once plain and once with `Accept-Encoding: gzip` (urllib, one
after the other, from this process) and records how long each took, whole body read.

Phases:
- cycle: jitter 0, every subject every 180 s. Scrapes during the first cycle (the stores
  filling, the event loop busy with the checks), 15 s with nothing changing, then
  --seconds of the second cycle (the stores full, every domain stored anew, ~150 a second);
- steady: every subject every 300 s with 300 s of jitter, so runs spread evenly: about
  33 domain results (and 3 endpoint results) stored a second, as in a long-running exporter.
  While waiting, a plain and a gzip scrape every 10 s; once every subject has a result,
  --seconds of scrapes. With --trace, the exporter's collections, freezes and event-loop
  callbacks over 20 ms (benchmarks/_looptrace.py) and each scrape's start and duration are
  written there as JSON lines, on the same clock;
- nofreeze: the first cycle again with gc.freeze disabled (cli/serve.py freezes the
  long-lived objects as results grow), to see what the freezing buys.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ._dnsserver import KnotServer
from ._exporter import ExporterUnderTest
from ._fleet_servers import fleet_layout, raise_fd_limit, write_pki
from ._realzones import UnboundServer, build_realistic_zones
from .domains_at_scale import scrape_raw, write_config
from .fleet import FleetServers, progress

CYCLE_INTERVAL_S = 180
STEADY_INTERVAL_S = 300
QUIET_SECONDS = 15
GOAL_MS = 100.0
RUNS = re.compile(rb'^mailsec_exporter_probes_total\{([^}]*)\} (\S+)$', re.MULTILINE)


def runs(body: bytes) -> dict[str, float]:
    """Runs counted so far by kind (mailsec_exporter_probes_total), from a plain body."""
    totals: dict[str, float] = {}
    for labels, value in RUNS.findall(body):
        kind = labels.split(b'kind="', 1)[1].split(b'"', 1)[0].decode()
        totals[kind] = totals.get(kind, 0.0) + float(value)
    return totals


class Scrapes:
    """Plain and gzip scrapes of one exporter, one of each per second."""

    def __init__(self, exporter: ExporterUnderTest, timeline: Path | None = None):
        self.exporter = exporter
        self.last_plain = b""
        self.last_gzip = b""
        self.timeline = timeline   # each scrape's start (CLOCK_MONOTONIC) and duration, as JSON lines

    def window(self, until, label: str) -> dict:
        """Scrape until `until(runs)` is true; the figures of the window."""
        timings: dict[str, list[float]] = {"plain": [], "gzip": []}
        started = time.monotonic()
        first_runs = None
        while True:
            tick = time.monotonic()
            seconds, _, self.last_plain = scrape_raw(self.exporter.port, False)
            timings["plain"].append(seconds)
            gzip_start = time.monotonic()
            seconds, _, self.last_gzip = scrape_raw(self.exporter.port, True)
            timings["gzip"].append(seconds)
            self._record(label, tick, timings["plain"][-1], "plain")
            self._record(label, gzip_start, seconds, "gzip")
            counted = runs(self.last_plain)
            first_runs = first_runs or counted
            if until(counted):
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        elapsed = time.monotonic() - started
        figures = {"seconds": round(elapsed, 1), "scrapes_each": len(timings["plain"]),
                   "plain_mib": round(len(self.last_plain) / 2**20, 1),
                   "gzip_mib": round(len(self.last_gzip) / 2**20, 2)}
        for kind in ("domain", "endpoint"):
            stored = counted.get(kind, 0) - first_runs.get(kind, 0)
            figures[f"{kind}_results_per_s"] = round(stored / elapsed, 1)
        for encoding, values in timings.items():
            figures[encoding] = {"median_ms": round(1000 * statistics.median(values), 1),
                                 "p90_ms": round(1000 * sorted(values)[int(0.9 * (len(values) - 1))], 1),
                                 "max_ms": round(1000 * max(values), 1)}
        assert gzip.decompress(self.last_gzip).count(b"\n# HELP ") > 0
        progress(f"{label}: {figures}")
        return figures

    def _record(self, label: str, start: float, seconds: float, encoding: str) -> None:
        if self.timeline:
            with self.timeline.open("a") as timeline:
                timeline.write(json.dumps({"scrape": encoding, "window": label, "start": round(start, 4),
                                           "ms": round(1000 * seconds, 1)}) + "\n")


def all_in(domains: int, endpoints: int):
    return lambda counted: counted.get("domain", 0) >= domains and counted.get("endpoint", 0) >= endpoints


def for_seconds(seconds: float):
    deadline = time.monotonic() + seconds
    return lambda counted: time.monotonic() >= deadline


def start_exporter(work: Path, name: str, domains: list[str], endpoints, ca_file: Path, *, interval: int,
                   jitter: int, freeze: bool = True, trace: Path | None = None) -> ExporterUnderTest:
    config = work / f"{name}.yml"
    write_config(config, domains, endpoints=endpoints, ca_file=ca_file, interval=f"{interval}s", jitter=f"{jitter}s")
    return ExporterUnderTest(config, work / f"{name}.log", freeze=freeze,
                             trace=trace / f"{name}-exporter.jsonl" if trace else None)


def phase_cycle(work: Path, domains, endpoints, ca_file: Path, unbound: UnboundServer, seconds: float,
                freeze: bool = True) -> dict:
    unbound.flush()
    exporter = start_exporter(work, "cycle" if freeze else "nofreeze", domains, endpoints, ca_file,
                              interval=CYCLE_INTERVAL_S, jitter=0, freeze=freeze)
    figures = {}
    try:
        scrapes = Scrapes(exporter)
        label = "first cycle" + ("" if freeze else " without gc.freeze")
        figures["first_cycle"] = scrapes.window(all_in(len(domains), len(endpoints)), label)
        if freeze:
            figures["quiet"] = scrapes.window(for_seconds(QUIET_SECONDS), "nothing changing")
            time.sleep(max(0.0, exporter.started + CYCLE_INTERVAL_S - time.monotonic()))
            figures["second_cycle"] = scrapes.window(for_seconds(seconds), "second cycle (stores full)")
        figures["peak_rss_mib"] = round(exporter.status_kib("VmHWM") / 1024)
    finally:
        exporter.stop()
    return figures


def phase_steady(work: Path, domains, endpoints, ca_file: Path, unbound: UnboundServer, seconds: float,
                 keep_body: Path | None, trace: Path | None = None) -> dict:
    unbound.flush()
    exporter = start_exporter(work, "steady", domains, endpoints, ca_file,
                              interval=STEADY_INTERVAL_S, jitter=STEADY_INTERVAL_S, trace=trace)
    try:
        done = all_in(len(domains), len(endpoints))
        while not done(runs(scrape_raw(exporter.port, False)[2])):
            scrape_raw(exporter.port, True)   # as Prometheus would: the first gzip scrape compresses everything
            time.sleep(10)
        progress("steady: every subject has a result")
        scrapes = Scrapes(exporter, trace / "steady-scrapes.jsonl" if trace else None)
        figures = {"window": scrapes.window(for_seconds(seconds), "steady state")}
        if keep_body:
            keep_body.write_bytes(scrapes.last_plain)
        figures["peak_rss_mib"] = round(exporter.status_kib("VmHWM") / 1024)
    finally:
        exporter.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--phases", nargs="+", default=["cycle", "steady", "nofreeze"])
    parser.add_argument("--keep-body", type=Path, help="write the last plain body here (for benchmarks/bucket_ratio.py)")
    parser.add_argument("--trace", type=Path, help="steady phase: write the exporter's collections, freezes and slow "
                        "callbacks (benchmarks/_looptrace.py) and the scrapes' times into this directory")
    args = parser.parse_args()
    raise_fd_limit()
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="mailsec-scrape-") as directory:
        work = Path(directory)
        zones = build_realistic_zones(args.domains)
        knot = KnotServer(work / "knot", zones.zones)
        unbound = UnboundServer(work / "unbound")
        ca_file = write_pki(work)
        endpoints = fleet_layout(args.endpoints)
        fleet = FleetServers(args.endpoints, work, work / "fleet.log")
        knot.start()
        unbound.start()
        fleet.start()
        try:
            if "cycle" in args.phases:
                figures["cycle"] = phase_cycle(work, zones.domains, endpoints, ca_file, unbound, args.seconds)
            if "steady" in args.phases:
                figures["steady"] = phase_steady(work, zones.domains, endpoints, ca_file, unbound, args.seconds,
                                                   args.keep_body, args.trace)
            if "nofreeze" in args.phases:
                figures["nofreeze"] = phase_cycle(work, zones.domains, endpoints, ca_file, unbound, args.seconds,
                                                  freeze=False)
        finally:
            fleet.stop()
            unbound.stop()
            knot.stop()
    print(json.dumps(figures, indent=2))
    worst = [window[encoding]["max_ms"] for phase in ("cycle", "steady") for window in figures.get(phase, {}).values()
             if isinstance(window, dict) for encoding in ("plain", "gzip")]
    return 0 if all(ms < GOAL_MS for ms in worst) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
