"""The real exporter as a child process, seen from outside: its /metrics, and what /proc
says about it (CPU time, peak and current RSS, open file descriptors, threads).

Also writes the configuration files the benchmarks run it with.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import yaml

from ._dnsserver import KNOT_ADDRESS, KNOT_PORT
from ._fleet_servers import PROTOCOL_PORTS, SERVER_NAME, FleetEndpoint, raise_fd_limit
from tests.realservers import stop_process

REPOSITORY = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_config(
    path: Path, *, endpoints: list[FleetEndpoint], domains: list[str], ca_file: Path,
    interval: str, domain_interval: str, timeout: str, concurrency: int, dns_timeout: str, probe_mx: bool = False,
    backoff_max: str | None = None,
) -> None:
    """An exporter configuration probing `endpoints` (every module verifies against the
    fleet's CA and name) and checking `domains` (DKIM selector `sel1`) through Knot.
    The domains' MX hosts are probed only with `probe_mx`: the generated MX addresses
    (127.20.0.0/16) have no server, so those probes measure refused connections.
    `backoff_max` bounds how long a refusing endpoint's runs are pushed back."""
    tls = {"ca_file": str(ca_file), "server_name": SERVER_NAME}
    config = {
        "global": {"interval": domain_interval, "timeout": timeout, "concurrency": concurrency,
                   "per_host_concurrency": 1, "jitter": "0",
                   **({"backoff_max": backoff_max} if backoff_max else {})},
        "domain_checks": {"probe_mx": probe_mx},
        "dns": {"nameservers": [f"{KNOT_ADDRESS}:{KNOT_PORT}"], "timeout": dns_timeout, "retries": 1},
        "modules": {module: {"protocol": module, "interval": interval, "timeout": timeout, "tls": tls}
                    for module, _ in PROTOCOL_PORTS},
        "targets": [{"host": e.address, "port": e.port, "module": e.module} for e in endpoints],
        "domains": [{"name": name, "dkim_selectors": ["sel1"]} for name in domains],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# `python -m exporter` with gc.freeze a no-op: what the collector costs without it.
WITHOUT_FREEZE = ("-c", "import gc, runpy; gc.freeze = lambda: None; "
                        "runpy.run_module('exporter', run_name='__main__', alter_sys=True)")


class ExporterUnderTest:
    def __init__(self, config: Path, log: Path, startup_timeout: float = 300.0, freeze: bool = True,
                 trace: Path | None = None):
        """`trace`: the stalls of its event loop written there (benchmarks/_looptrace.py)."""
        self.port = _free_port()
        self.started = time.monotonic()
        command = ("-m", "exporter") if freeze else WITHOUT_FREEZE
        if trace:
            assert freeze, "tracing runs the exporter as it is"
            command = ("-c", f"import benchmarks._looptrace as t; t.run_exporter({str(trace)!r})")
        with open(log, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, *command, "--config.file", str(config),
                 "--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "warn"],
                cwd=REPOSITORY, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=raise_fd_limit,
            )
        self.pid = self.process.pid
        deadline = self.started + startup_timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"exporter did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - self.started

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def scrape(self, timeout: float = 60.0) -> tuple[float, str]:
        """(seconds the scrape took, body)."""
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout) as response:
            body = response.read().decode()
        return time.perf_counter() - started, body

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS   # utime + stime

    def status_kib(self, key: str) -> int:
        """A value of /proc/PID/status: VmHWM (peak RSS), VmRSS, Threads."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process(self.process, timeout=20)


# --- reading the exposition text ------------------------------------------------------

def samples(body: str, name: str) -> dict[str, float]:
    """{label text: value} of the samples named `name` in an exposition body."""
    prefix = name + "{"
    found = {}
    for line in body.splitlines():
        if line.startswith(prefix):
            series, _, value = line.rpartition(" ")
            found[series[len(prefix):]] = float(value)
    return found


def runs_by_kind(body: str) -> dict[str, float]:
    """mailsec_exporter_probes_total summed by `kind` (endpoint, domain, deep_scan)."""
    totals: dict[str, float] = defaultdict(float)
    for labels, value in samples(body, "mailsec_exporter_probes_total").items():
        totals[_label(labels, "kind")] += value
    return dict(totals)


def _label(labels: str, name: str) -> str:
    return labels.split(f'{name}="', 1)[1].split('"', 1)[0]


def cycle_seconds(body: str, start_metric: str, duration_metric: str) -> float | None:
    """From the first start to the last end among the subjects' last runs."""
    starts = samples(body, start_metric)
    durations = samples(body, duration_metric)
    if not starts:
        return None
    ends = [start + durations.get(labels, 0.0) for labels, start in starts.items()]
    return max(ends) - min(starts.values())
