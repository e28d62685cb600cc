"""Soak benchmark: the real exporter runs short cycles for minutes while its fixtures fail.

    python3 -m benchmarks.soak [--minutes 5] [--endpoints 100] [--domains 200]

The fleet of TLS mail servers and Knot (as in fleet.py) serve the exporter, whose
endpoints run every 5 s and domains every 10 s. After a quiet baseline, four faults
follow, each then given time to recover:

- tls_reset:     every new connection to the fleet is reset (TCP RST) at once;
- fleet_restart: the fleet process is stopped (connections refused), then started anew;
- dns_drop:      Knot is frozen (SIGSTOP): queries go unanswered and time out;
- dns_restart:   Knot is stopped (port closed), then started anew.

Every second it scrapes /metrics (how many endpoints and domain checks fail) and every
`--sample` seconds it reads the exporter's RSS, open file descriptors and threads from
/proc. It checks that each fault shows (something fails), that every result comes back
(every mailsec_probe_success and mailsec_domain_check_success at 1) after each fault,
that the process never dies, and that RSS (at its highest) and open descriptors (at their
floor, between cycles) end within bounds of the baseline's.
Prints the series summary; exits 1 on a failed check.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ._dnsserver import KnotServer, build_zones
from ._exporter import ExporterUnderTest, samples, write_config
from ._fleet_servers import fleet_layout, raise_fd_limit, write_pki
from .fleet import FleetServers, progress

# Phase lengths in seconds at --minutes 5 (they scale with it): (name, seconds).
PHASES = (
    ("baseline", 60), ("tls_reset", 30), ("recover", 30), ("fleet_restart", 20), ("recover", 30),
    ("dns_drop", 30), ("recover", 30), ("dns_restart", 20), ("recover", 60),
)
BASE_MINUTES = sum(seconds for _, seconds in PHASES) / 60
# Growth tolerated between the baseline and the last phase.
RSS_GROWTH_LIMIT = 1.20
FD_GROWTH_LIMIT = 10


@dataclass
class Sample:
    at: float
    phase: str
    rss_mib: float
    fds: int
    threads: int
    failing_endpoints: int
    failing_checks: int


@dataclass
class PhaseRecord:
    name: str
    started: float
    ended: float | None = None
    worst_failing: int = 0                  # endpoints + checks failing at once, at worst
    recovered_after: float | None = None    # seconds after the phase's start (recover phases)


@dataclass
class Soak:
    exporter: ExporterUnderTest
    sample_every: float
    samples: list[Sample] = field(default_factory=list)
    phases: list[PhaseRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def failing(self) -> tuple[int, int]:
        _, body = self.exporter.scrape()
        endpoints = sum(1 for v in samples(body, "mailsec_probe_success").values() if v != 1.0)
        checks = sum(1 for v in samples(body, "mailsec_domain_check_success").values() if v != 1.0)
        return endpoints, checks

    def run_phase(self, name: str, seconds: float, start: Callable[[], None], end: Callable[[], None]) -> None:
        progress(f"{name} for {seconds:.0f} s")
        record = PhaseRecord(name, time.monotonic())
        self.phases.append(record)
        start()
        next_sample = time.monotonic()
        while time.monotonic() - record.started < seconds:
            if not self.exporter.alive():
                self.problems.append(f"the exporter died during {name}")
                return
            failing_endpoints, failing_checks = self.failing()
            record.worst_failing = max(record.worst_failing, failing_endpoints + failing_checks)
            if name == "recover" and record.recovered_after is None and failing_endpoints + failing_checks == 0:
                record.recovered_after = time.monotonic() - record.started
            if time.monotonic() >= next_sample:
                self.samples.append(Sample(
                    time.monotonic(), name, self.exporter.status_kib("VmRSS") / 1024, self.exporter.open_fds(),
                    self.exporter.status_kib("Threads"), failing_endpoints, failing_checks,
                ))
                next_sample += self.sample_every
            time.sleep(1.0)
        end()
        record.ended = time.monotonic()

    def judge(self) -> None:
        for previous, record in zip(self.phases, self.phases[1:]):
            if record.name == "recover" and record.recovered_after is None:
                self.problems.append(f"results did not all recover after {previous.name}")
            if record.name not in ("recover", "baseline") and record.worst_failing == 0:
                self.problems.append(f"the fault {record.name} made nothing fail: it was not exercised")
        # Descriptors come and go with the probes in flight: compare the floors (the idle
        # moments between cycles), and RSS at its highest, of the baseline and the last phase.
        baseline = [s for s in self.samples if s.phase == "baseline"]
        final = [s for s in self.samples if s.at >= self.phases[-1].started]
        if not baseline or not final:
            self.problems.append("no samples")
            return
        base_rss, final_rss = max(s.rss_mib for s in baseline), max(s.rss_mib for s in final)
        if final_rss > base_rss * RSS_GROWTH_LIMIT:
            self.problems.append(f"RSS grew from {base_rss:.0f} to {final_rss:.0f} MiB")
        base_fds, final_fds = min(s.fds for s in baseline), min(s.fds for s in final)
        if final_fds > base_fds + FD_GROWTH_LIMIT:
            self.problems.append(f"the floor of open descriptors grew from {base_fds} to {final_fds}")

    def report(self) -> None:
        print(f"\n{'phase':<14} {'secs':>5} {'worst failing':>13} {'recovered after':>16}  "
              f"{'RSS MiB min/max':>15} {'fds min/max':>11} {'threads max':>11}")
        for record in self.phases:
            during = [s for s in self.samples if record.started <= s.at <= (record.ended or s.at)]
            rss = f"{min(s.rss_mib for s in during):.0f}/{max(s.rss_mib for s in during):.0f}" if during else "-"
            fds = f"{min(s.fds for s in during)}/{max(s.fds for s in during)}" if during else "-"
            threads = str(max(s.threads for s in during)) if during else "-"
            recovered = f"{record.recovered_after:.0f} s" if record.recovered_after is not None else "-"
            length = (record.ended or time.monotonic()) - record.started
            print(f"{record.name:<14} {length:>5.0f} {record.worst_failing:>13} {recovered:>16}  "
                  f"{rss:>15} {fds:>11} {threads:>11}")
        if self.samples:
            first, last = self.samples[0], self.samples[-1]
            print(f"\nRSS {first.rss_mib:.0f} -> {last.rss_mib:.0f} MiB (peak {max(s.rss_mib for s in self.samples):.0f}), "
                  f"fds {first.fds} -> {last.fds}, threads {first.threads} -> {last.threads}, "
                  f"{len(self.samples)} samples, exporter CPU {self.exporter.cpu_seconds():.0f} s")
        print("result: " + ("OK" if not self.problems else "FAILED: " + "; ".join(self.problems)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=BASE_MINUTES)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--domains", type=int, default=200)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between two /proc samples")
    args = parser.parse_args()
    scale = args.minutes / BASE_MINUTES
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="mailsec-soak-") as directory:
        work = Path(directory)
        ca_file = write_pki(work)
        zones = build_zones(args.domains)
        fleet = FleetServers(args.endpoints, work, work / "fleet.log")
        knot = KnotServer(work / "knot", zones.zones)
        exporter = None
        try:
            fleet.start()
            knot.start()
            config = work / "soak.yml"
            # Refused endpoints back off; a short bound lets them come back within a recover phase.
            write_config(config, endpoints=fleet_layout(args.endpoints), domains=zones.domains, ca_file=ca_file,
                         interval="5s", domain_interval="10s", timeout="4s", concurrency=50, dns_timeout="2s",
                         backoff_max="10s")
            exporter = ExporterUnderTest(config, work / "exporter.log")
            soak = Soak(exporter, args.sample)
            nothing = lambda: None   # noqa: E731 - a phase without a fault to start or end
            faults = {
                "baseline": (nothing, nothing),
                "recover": (nothing, nothing),
                "tls_reset": (lambda: fleet.signal(signal.SIGUSR1), lambda: fleet.signal(signal.SIGUSR2)),
                "fleet_restart": (fleet.stop, fleet.start),
                "dns_drop": (knot.pause, knot.resume),
                "dns_restart": (knot.stop, knot.start),
            }
            for name, seconds in PHASES:
                soak.run_phase(name, seconds * scale, *faults[name])
                if soak.problems:
                    break
            soak.judge()
            soak.report()
        finally:
            if exporter is not None:
                exporter.stop()
            fleet.stop()
            knot.stop()
    return 0 if not soak.problems else 1


if __name__ == "__main__":
    sys.exit(main())
