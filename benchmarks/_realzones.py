"""A realistic set of hosted mail domains, and a non-validating Unbound in front of Knot.

The domains `d00000.bench` … look like a hosting provider's customers (issue 18):
- MX: two of 50 shared MX hosts `mxNN.mailhost.bench` (127.20.255.1-50, with PTR records);
- SPF: `include:` of one of 5 shared providers (each one more include deep), and `mx`;
- DKIM: a 2048-bit key at `sel1._domainkey`;
- DMARC `p=reject` reporting to one of 3 external report domains `rN.reports.bench`,
  each authorizing every domain (`<domain>._report._dmarc.rN.reports.bench`);
- TLS-RPT to the same report domain;
- MTA-STS on 20% of them: half with a policy host `mta-sts.<domain>` on 127.30.0.0/16 where
  nothing listens (the HTTPS fetch is refused), half with no policy host at all.

Knot (127.88.0.1:53) serves `.` (empty), `bench.` and the reverse zone; Unbound
(127.88.0.3:53, iterator only: no DNSSEC validation, as most resolvers in front of an
exporter) asks Knot for everything, so nothing leaves 127.0.0.0/8. Its remote control on
127.88.0.3:8953 gives the query counts (`UnboundServer.queries`).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from ._dnsserver import KNOT_ADDRESS, KNOT_PORT, SOA_NS, ZoneSet, _dkim_key, _reverse_name, _txt, _zone_text, bench_domain
from tests.realservers import stop_process

UNBOUND = "/usr/sbin/unbound"
UNBOUND_CONTROL = "/usr/sbin/unbound-control"
UNBOUND_ADDRESS = "127.88.0.3"
UNBOUND_CONTROL_PORT = 8953
MX_HOSTS = 50
SPF_PROVIDERS = 5
REPORT_DOMAINS = 3


def mx_host(index: int) -> str:
    return f"mx{index:02d}.mailhost.bench"


def _shared_records() -> tuple[list[str], list[str]]:
    """(records in `bench.`, PTR records in 20.127.in-addr.arpa.) of the shared hosts."""
    bench, reverse = [], []
    for index in range(MX_HOSTS):
        address = f"127.20.255.{index + 1}"
        bench.append(f"{mx_host(index)}. 300 A {address}")
        reverse.append(f"{_reverse_name(address)} 300 PTR {mx_host(index)}.")
    for provider in range(SPF_PROVIDERS):
        bench += [
            f"_spf.p{provider}.bench. 300 TXT {_txt(f'v=spf1 ip4:127.20.{provider}.0/24 include:_spf2.p{provider}.bench ~all')}",
            f"_spf2.p{provider}.bench. 300 TXT {_txt(f'v=spf1 ip4:127.21.{provider}.0/24 ~all')}",
        ]
    for number in range(REPORT_DOMAINS):
        bench += [f"r{number}.reports.bench. 300 MX 10 {mx_host(number)}.",
                  f"r{number}.reports.bench. 300 TXT {_txt('v=spf1 -all')}"]
    return bench, reverse


def _domain_records(index: int, dkim_key: str) -> list[str]:
    domain = bench_domain(index)
    reports = f"r{index % REPORT_DOMAINS}.reports.bench"
    records = [
        f"{domain}. 300 MX 10 {mx_host(index % MX_HOSTS)}.",
        f"{domain}. 300 MX 20 {mx_host((index + 1) % MX_HOSTS)}.",
        f"{domain}. 300 TXT {_txt(f'v=spf1 mx include:_spf.p{index % SPF_PROVIDERS}.bench -all')}",
        f"_dmarc.{domain}. 300 TXT {_txt(f'v=DMARC1; p=reject; rua=mailto:dmarc@{reports}')}",
        f"{domain}._report._dmarc.{reports}. 300 TXT {_txt('v=DMARC1')}",
        f"sel1._domainkey.{domain}. 300 TXT {_txt('v=DKIM1; k=rsa; p=' + dkim_key)}",
        f"_smtp._tls.{domain}. 300 TXT {_txt(f'v=TLSRPTv1; rua=mailto:tlsrpt@{reports}')}",
    ]
    if index % 10 in (0, 1):   # 20% publish MTA-STS ...
        records.append(f"_mta-sts.{domain}. 300 TXT {_txt(f'v=STSv1; id=2026{index:05d}')}")
    if index % 10 == 0:        # ... half of them with a policy host that refuses HTTPS
        records.append(f"mta-sts.{domain}. 300 A 127.30.{index // 250 % 256}.{index % 250 + 1}")
    return records


def build_realistic_zones(count: int) -> ZoneSet:
    """`.`, `bench.` with `count` domains, and 20.127.in-addr.arpa."""
    dkim_key = _dkim_key()
    bench, reverse = _shared_records()
    bench = [*SOA_NS, f"ns 3600 A {KNOT_ADDRESS}", *bench]
    domains = []
    for index in range(count):
        bench += _domain_records(index, dkim_key)
        domains.append(bench_domain(index))
    root = ["@ 3600 SOA ns.bench. hostmaster.bench. 1 3600 600 86400 300", "@ 3600 NS ns.bench."]
    zones = {".": _zone_text(root), "bench.": _zone_text(bench),
             "20.127.in-addr.arpa.": _zone_text([*SOA_NS, *reverse])}
    return ZoneSet(zones, domains)


class UnboundServer:
    """A non-validating Unbound on UNBOUND_ADDRESS:53 asking Knot for every zone."""

    def __init__(self, directory: Path, log_queries: bool = False):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "unbound.conf"
        self.config.write_text(
            "server:\n"
            f"  interface: {UNBOUND_ADDRESS}\n  port: 53\n"
            "  do-not-query-localhost: no\n  do-ip6: no\n"
            f'  chroot: ""\n  username: ""\n  directory: "{directory}"\n  pidfile: "{directory}/unbound.pid"\n'
            f'  use-syslog: no\n  logfile: "{directory}/unbound.log"\n  verbosity: 0\n  num-threads: 1\n'
            f"  log-queries: {'yes' if log_queries else 'no'}\n"
            "  access-control: 127.0.0.0/8 allow\n"
            '  module-config: "iterator"\n  qname-minimisation: no\n'
            "  msg-cache-size: 128m\n  rrset-cache-size: 256m\n  num-queries-per-thread: 4096\n"
            '  local-zone: "127.in-addr.arpa." nodefault\n'
            "remote-control:\n  control-enable: yes\n"
            f"  control-interface: {UNBOUND_ADDRESS}\n  control-port: {UNBOUND_CONTROL_PORT}\n"
            "  control-use-cert: no\n"
            + "".join(f'stub-zone:\n  name: "{zone}"\n  stub-addr: {KNOT_ADDRESS}@{KNOT_PORT}\n'
                      for zone in (".", "bench.", "20.127.in-addr.arpa."))
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.directory / "stderr.log", "ab") as log:
            self.process = subprocess.Popen([UNBOUND, "-d", "-c", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("unbound exited:\n" + (self.directory / "stderr.log").read_text())
            try:
                query = dns.message.make_query("bench.", "SOA")
                if dns.query.udp(query, UNBOUND_ADDRESS, timeout=0.3).answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.1)
        raise RuntimeError("unbound did not answer")

    def stats(self) -> dict[str, float]:
        """unbound-control stats_noreset, as {name: value}."""
        done = subprocess.run([UNBOUND_CONTROL, "-c", str(self.config), "stats_noreset"],
                              capture_output=True, text=True, check=True, timeout=30)
        return {name: float(value) for name, _, value in
                (line.partition("=") for line in done.stdout.splitlines()) if value}

    def queries(self) -> float:
        return self.stats()["total.num.queries"]

    def flush(self) -> None:
        """Empty the cache (the next run starts cold again)."""
        subprocess.run([UNBOUND_CONTROL, "-c", str(self.config), "reload"], capture_output=True, check=True, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process, timeout=10)
