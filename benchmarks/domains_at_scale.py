"""Domain checks at scale (issue 18): 10,000 realistic domains through a resolver.

    python3 -m benchmarks.domains_at_scale [--domains 10000] [--phases cycle mx scrape checkdmarc floor]

The zones of benchmarks/_realzones.py (shared MX hosts and SPF includes, DKIM, DMARC with
external reports, 20% MTA-STS of which half refuse HTTPS and half have no policy host) on
Knot, behind a non-validating Unbound (127.88.0.3); the exporter asks Unbound, at its
default concurrency, jitter 0, interval 1 h. Unbound's cache is emptied before each phase.

Phases:
- cycle: time until every domain has a result (from the exporter being ready, and from
  its first domain run's start to the last one's end), CPU per domain and per query (the
  queries Unbound received);
- mx: with `probe_mx: true`, time until the first MX probe result;
- scrape: the domains plus 1,000 TLS endpoints (benchmarks/_fleet_servers.py); once every
  result is in, /metrics scraped plain and with gzip: median and max;
- checkdmarc: 1,000 of the domains, the exporter process against checkdmarc's process
  (benchmarks/_checkdmarc_runner.py, batch mode): wall time and CPU of each whole process;
- floor: the queries of the cycle (Unbound's query log) asked again by a minimal dnspython
  client, by a client sending pre-built wire, by our DNSClient, and by dnsperf if installed.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from ._dnsserver import KnotServer
from ._exporter import ExporterUnderTest, cycle_seconds, runs_by_kind
from ._fleet_servers import PROTOCOL_PORTS, SERVER_NAME, fleet_layout, raise_fd_limit, write_pki
from ._realzones import UNBOUND_ADDRESS, UnboundServer, build_realistic_zones
from ._toolvenv import tool_python
from .fleet import FleetServers, progress, wait_for_runs

RUNNER = Path(__file__).with_name("_checkdmarc_runner.py")
TARGET_CYCLE_SECONDS = 60.0
TARGET_CHECKDMARC_CPU_RATIO = 3.0


def write_config(path: Path, domains: list[str], *, probe_mx: bool = False, endpoints=(), ca_file: Path | None = None,
                 log_queries: bool = False, interval: str = "1h", jitter: str = "0") -> None:
    """The exporter's defaults except: jitter 0, interval 1 h (of domains and endpoints),
    Unbound as resolver."""
    config: dict = {
        "global": {"interval": interval, "jitter": jitter},
        "domain_checks": {"probe_mx": probe_mx},
        "dns": {"nameservers": [f"{UNBOUND_ADDRESS}:53"]},
        "domains": [{"name": name, "dkim_selectors": ["sel1"]} for name in domains],
    }
    if endpoints:
        tls = {"ca_file": str(ca_file), "server_name": SERVER_NAME}
        config["modules"] = {module: {"protocol": module, "interval": interval, "timeout": "10s", "tls": tls}
                             for module, _ in PROTOCOL_PORTS}
        config["targets"] = [{"host": e.address, "port": e.port, "module": e.module} for e in endpoints]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def servers_cpu(unbound: UnboundServer, knot: KnotServer) -> float:
    """CPU seconds Unbound and Knot have used (the other core's work in a cycle)."""
    return process_cpu(unbound.process.pid) + process_cpu(knot.process.pid)


def phase_cycle(work: Path, domains: list[str], unbound: UnboundServer, knot: KnotServer, figures: dict) -> None:
    config = work / "cycle.yml"
    write_config(config, domains)
    unbound.flush()
    queries_before = unbound.queries()
    exporter = ExporterUnderTest(config, work / "cycle.log")
    ready_at = time.monotonic()
    try:
        cpu_start, servers_start = exporter.cpu_seconds(), servers_cpu(unbound, knot)
        body, cpu_end = wait_for_runs(exporter, 0, len(domains), limit=900)
        done_after = time.monotonic() - ready_at
        cpu = cpu_end - cpu_start
        servers = servers_cpu(unbound, knot) - servers_start
        queries = unbound.queries() - queries_before
        cycle = cycle_seconds(body, "mailsec_domain_check_last_run_timestamp_seconds",
                              "mailsec_domain_check_duration_seconds")
        failed = runs_by_kind_result(body, "failure")
    finally:
        exporter.stop()
    figures["cycle"] = {
        "domains": len(domains), "first_start_to_last_end_s": round(cycle, 1),
        "ready_to_all_results_s (polled)": round(done_after, 1), "cpu_s": round(cpu, 1),
        "cpu_ms_per_domain": round(1000 * cpu / len(domains), 2), "queries": int(queries),
        "queries_per_domain": round(queries / len(domains), 1),
        "cpu_ms_per_query": round(1000 * cpu / queries, 3), "runs_counted_failed": failed,
        "unbound_and_knot_cpu_s": round(servers, 1),
        "startup_s": round(exporter.startup_seconds, 1),
    }
    progress(f"cycle: {figures['cycle']}")


def runs_by_kind_result(body: str, result: str) -> float:
    return sum(float(line.rpartition(" ")[2]) for line in body.splitlines()
               if line.startswith("mailsec_exporter_probes_total{") and f'result="{result}"' in line
               and 'kind="domain"' in line)


def phase_mx(work: Path, domains: list[str], unbound: UnboundServer, figures: dict) -> None:
    config = work / "mx.yml"
    write_config(config, domains, probe_mx=True)
    unbound.flush()
    exporter = ExporterUnderTest(config, work / "mx.log")
    ready_at = time.monotonic()
    try:
        while time.monotonic() - ready_at < 300:
            _, body = exporter.scrape()
            runs = runs_by_kind(body)
            if runs.get("endpoint", 0) > 0:
                figures["mx"] = {"first_mx_probe_result_after_ready_s": round(time.monotonic() - ready_at, 2),
                                 "domain_runs_by_then": runs.get("domain", 0)}
                break
            time.sleep(0.2)
    finally:
        exporter.stop()
    progress(f"mx: {figures.get('mx')}")


def scrape_raw(port: int, gzip_ok: bool) -> tuple[float, int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept-Encoding": "gzip" if gzip_ok else "identity"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, len(body), body


def phase_scrape(work: Path, domains: list[str], unbound: UnboundServer, endpoint_count: int, scrapes: int,
                 figures: dict) -> None:
    ca_file = write_pki(work)
    endpoints = fleet_layout(endpoint_count)
    fleet = FleetServers(endpoint_count, work, work / "fleet.log")
    fleet.start()
    config = work / "scrape.yml"
    write_config(config, domains, endpoints=endpoints, ca_file=ca_file)
    unbound.flush()
    exporter = ExporterUnderTest(config, work / "scrape.log")
    try:
        wait_for_runs(exporter, len(endpoints), len(domains), limit=900)
        time.sleep(2)
        result = {}
        for gzip_ok in (False, True):
            timings, size, body = [], 0, b""
            for _ in range(scrapes):
                seconds, size, body = scrape_raw(exporter.port, gzip_ok)
                timings.append(seconds)
            key = "gzip" if gzip_ok else "plain"
            result[key] = {"median_ms": round(1000 * statistics.median(timings), 1),
                           "max_ms": round(1000 * max(timings), 1), "first_ms": round(1000 * timings[0], 1),
                           "bytes": size}
            if gzip_ok:
                plain_text = gzip.decompress(body)
                result["lines"] = plain_text.count(b"\n")
                result["plain_bytes"] = len(plain_text)
        result["peak_rss_mib"] = round(exporter.status_kib("VmHWM") / 1024)
    finally:
        exporter.stop()
        fleet.stop()
    figures["scrape"] = result
    progress(f"scrape: {result}")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def phase_checkdmarc(work: Path, domains: list[str], unbound: UnboundServer, venv: Path, figures: dict) -> None:
    python = tool_python(venv, "checkdmarc")
    domain_file = work / "checkdmarc-domains.txt"
    domain_file.write_text("\n".join(domains) + "\n")
    unbound.flush()
    queries_before = unbound.queries()
    cpu_before, started = children_cpu(), time.monotonic()
    subprocess.run([str(python), str(RUNNER), UNBOUND_ADDRESS, str(domain_file), "batch"],
                   check=True, capture_output=True, text=True)
    theirs = {"wall_s": round(time.monotonic() - started, 1), "cpu_s": round(children_cpu() - cpu_before, 2),
              "queries": int(unbound.queries() - queries_before)}
    config = work / "ours1000.yml"
    write_config(config, domains)
    unbound.flush()
    queries_before = unbound.queries()
    started = time.monotonic()
    exporter = ExporterUnderTest(config, work / "ours1000.log")
    try:
        wait_for_runs(exporter, 0, len(domains), limit=600)
        wall = time.monotonic() - started
        cpu = exporter.cpu_seconds()    # the whole process: start, config, checks, the polling scrapes
    finally:
        exporter.stop()
    ours = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 2), "queries": int(unbound.queries() - queries_before)}
    figures["checkdmarc"] = {"domains": len(domains), "checkdmarc": theirs, "ours": ours,
                             "cpu_ratio": round(theirs["cpu_s"] / ours["cpu_s"], 2),
                             "wall_ratio": round(theirs["wall_s"] / ours["wall_s"], 2)}
    progress(f"checkdmarc: {figures['checkdmarc']}")


def logged_queries(unbound: UnboundServer) -> list[tuple[str, str]]:
    """(name, type) of each query in Unbound's log (log-queries)."""
    asked = []
    for line in (unbound.directory / "unbound.log").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[-1] == "IN" and "info:" in line:
            asked.append((parts[-3].rstrip("."), parts[-2]))
    return asked


def phase_floor(work: Path, domains: list[str], figures: dict) -> None:
    """The cycle's queries (captured once with log-queries), asked again by other clients."""
    unbound = UnboundServer(work / "unbound-log", log_queries=True)
    # A second Unbound would need the same address: the caller stopped the first one.
    unbound.start()
    try:
        config = work / "floor.yml"
        write_config(config, domains)
        exporter = ExporterUnderTest(config, work / "floor.log")
        try:
            wait_for_runs(exporter, 0, len(domains), limit=900)
        finally:
            exporter.stop()
        queries = logged_queries(unbound)
        unique = list(dict.fromkeys(queries))
        result = {"logged_queries": len(queries), "distinct": len(unique)}
        result["minimal_dnspython_ms_per_query"] = minimal_client(unique, prebuilt=False)
        result["prebuilt_wire_ms_per_query"] = minimal_client(unique, prebuilt=True)
        result["our_dnsclient_ms_per_query"] = asyncio.run(our_client(unique))
        result.update(dnsperf(work, unique))
    finally:
        unbound.stop()
    figures["floor"] = result
    progress(f"floor: {result}")


def minimal_client(questions: list[tuple[str, str]], prebuilt: bool, window: int = 100) -> float:
    """CPU ms per query of a blocking client: `window` queries out, then their answers read
    (parsed by dnspython, or only counted with `prebuilt`, whose queries are built beforehand)."""
    import dns.flags
    import dns.message

    def build(name: str, rdtype: str) -> bytes:
        return dns.message.make_query(name + ".", rdtype, use_edns=0, want_dnssec=True, payload=1232,
                                      flags=dns.flags.RD | dns.flags.AD).to_wire()

    wires = [build(*question) for question in questions] if prebuilt else None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((UNBOUND_ADDRESS, 53))
        sock.settimeout(5)
        cpu = time.process_time()
        for start in range(0, len(questions), window):
            batch = questions[start:start + window]
            for offset, question in enumerate(batch):
                sock.send(wires[start + offset] if prebuilt else build(*question))
            for _ in batch:
                data = sock.recv(65535)
                if not prebuilt:
                    dns.message.from_wire(data)
        return round(1000 * (time.process_time() - cpu) / len(questions), 4)


async def our_client(questions: list[tuple[str, str]], concurrent: int = 100) -> float:
    from exporter.config import DNSSettings, Nameserver
    from exporter.dnsclient import DNSClient, DNSError

    client = DNSClient(DNSSettings(nameservers=(Nameserver(UNBOUND_ADDRESS, 53),)))
    limit = asyncio.Semaphore(concurrent)

    async def ask(name: str, rdtype: str) -> None:
        async with limit:
            try:
                await client.lookup(name, rdtype)
            except DNSError:
                pass

    cpu = time.process_time()
    await asyncio.gather(*(ask(*question) for question in questions))
    elapsed = time.process_time() - cpu
    client.close()
    return round(1000 * elapsed / len(questions), 4)


def dnsperf(work: Path, questions: list[tuple[str, str]]) -> dict:
    if shutil.which("dnsperf") is None:
        return {"dnsperf": "not installed"}
    query_file = work / "dnsperf.txt"
    query_file.write_text("".join(f"{name} {rdtype}\n" for name, rdtype in questions))
    cpu_before = children_cpu()
    done = subprocess.run(["dnsperf", "-s", UNBOUND_ADDRESS, "-d", str(query_file), "-n", "1", "-c", "1",
                           "-e", "-D"], capture_output=True, text=True, timeout=300)
    cpu = children_cpu() - cpu_before
    rate = next((line.split(":")[1].strip() for line in done.stdout.splitlines() if "Queries per second" in line), "?")
    return {"dnsperf_queries_per_second": rate, "dnsperf_cpu_ms_per_query": round(1000 * cpu / len(questions), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--checkdmarc-domains", type=int, default=1000)
    parser.add_argument("--phases", nargs="+", default=["cycle", "mx", "scrape", "checkdmarc", "floor"])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/checkdmarc-venv"))
    args = parser.parse_args()
    raise_fd_limit()
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="mailsec-scale-") as directory:
        work = Path(directory)
        zones = build_realistic_zones(args.domains)
        knot = KnotServer(work / "knot", zones.zones)
        unbound = UnboundServer(work / "unbound")
        knot.start()
        unbound.start()
        try:
            if "cycle" in args.phases:
                phase_cycle(work, zones.domains, unbound, knot, figures)
            if "mx" in args.phases:
                phase_mx(work, zones.domains, unbound, figures)
            if "scrape" in args.phases:
                phase_scrape(work, zones.domains, unbound, args.endpoints, args.scrapes, figures)
            if "checkdmarc" in args.phases:
                phase_checkdmarc(work, zones.domains[:args.checkdmarc_domains], unbound, args.venv, figures)
            unbound.stop()
            if "floor" in args.phases:
                phase_floor(work, zones.domains, figures)
        finally:
            unbound.stop()
            knot.stop()
    print(json.dumps(figures, indent=2))
    cycle = figures.get("cycle", {}).get("first_start_to_last_end_s")
    ratio = figures.get("checkdmarc", {}).get("cpu_ratio")
    return 0 if (cycle is None or cycle < TARGET_CYCLE_SECONDS) and (ratio is None or ratio >= TARGET_CHECKDMARC_CPU_RATIO) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
