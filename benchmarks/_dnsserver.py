"""Generated mail-domain zones, and a Knot authoritative server serving them on loopback.

The benchmarks ask Knot directly (no recursive resolver in between): every lookup of the
exporter reaches the server, nothing is cached, and DNSSEC is out of the picture (the
zones are unsigned, so every status is `insecure`). Knot listens on 127.88.0.1:53, apart
from the test suite's DNS lab (127.77.0.0/24), so both can run at once.

Zones:
- `bench.`: the generated domains `d00000.bench` … (MX host with an address and a PTR,
  SPF with two levels of includes, DMARC with external reports authorized, a DKIM key,
  TLS-RPT), the shared SPF provider and the report-receiving domain `reports.bench`;
- one zone per scenario of SCENARIOS (`<label>.scen.`), each a domain deliberately broken
  in one way, for the findings comparison of dns_checks.py, and their empty parent `scen.`;
- `20.127.in-addr.arpa.` and `21.127.in-addr.arpa.`: the PTR records of the MX addresses.

No zone publishes an MTA-STS TXT record or a BIMI logo URL: checkdmarc would then fetch
`https://mta-sts.<domain>/` or the logo, through the system resolver, off this machine.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.realservers import stop_process

KNOT_ADDRESS = "127.88.0.1"
KNOT_PORT = 53        # checkdmarc can only name a nameserver by address: port 53
KNOTD = "/usr/sbin/knotd"
BENCH_ZONE = "bench."
SOA_NS = ["@ 3600 SOA ns.bench. hostmaster.bench. 1 3600 600 86400 300", "@ 3600 NS ns.bench."]


def bench_domain(index: int) -> str:
    return f"d{index:05d}.bench"


def _txt(text: str) -> str:
    """A TXT rdata in zone-file syntax, split into 255-octet character-strings."""
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + chunk.replace('"', '\\"') + '"' for chunk in chunks)


def _reverse_name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + ".in-addr.arpa."


def _dkim_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@dataclass
class MailDomain:
    """The records of one mail domain, by group; a scenario replaces some groups.
    Names are relative to the zone origin `domain.`; `@` is the domain itself."""

    domain: str
    mx_address: str
    dkim_key: str
    groups: dict[str, list[str]] = field(default_factory=dict)

    def default_groups(self) -> dict[str, list[str]]:
        d = self.domain
        return {
            "mx": ["@ 300 MX 10 mx", f"mx 300 A {self.mx_address}"],
            "spf": [f"@ 300 TXT {_txt('v=spf1 mx include:_spf.provider.bench -all')}"],
            "dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject; rua=mailto:dmarc@reports.bench')}"],
            "dkim": [f"sel1._domainkey 300 TXT {_txt('v=DKIM1; k=rsa; p=' + self.dkim_key)}"],
            "tlsrpt": [f"_smtp._tls 300 TXT {_txt('v=TLSRPTv1; rua=mailto:tlsrpt@reports.bench')}"],
            # in bench.: reports.bench agrees to receive this domain's DMARC reports (RFC 7489 §7.1)
            "report_auth": [f"{d}._report._dmarc.reports.bench. 300 TXT {_txt('v=DMARC1')}"],
        }

    def records(self) -> tuple[list[str], list[str]]:
        """(records at or under the domain, records for the `bench.` zone)."""
        groups = {**self.default_groups(), **self.groups}
        own = [line for name, lines in groups.items() if name != "report_auth" for line in lines]
        return own, groups["report_auth"]


# Each scenario: (what is wrong, the groups it replaces). Relative names as in MailDomain.
SPF_INCLUDES_OVER_LIMIT = " ".join(f"include:s{n}.spf-over-limit.scen" for n in range(1, 12))
SCENARIOS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "good": ("everything in order", {}),
    "spf-over-limit": ("SPF needs 11 DNS lookups (limit 10)", {"spf": [
        f"@ 300 TXT {_txt('v=spf1 ' + SPF_INCLUDES_OVER_LIMIT + ' -all')}",
        *(f"s{n} 300 TXT {_txt(f'v=spf1 ip4:127.21.9.{n} -all')}" for n in range(1, 12)),
    ]}),
    "spf-two": ("two SPF records", {"spf": [
        f"@ 300 TXT {_txt('v=spf1 mx -all')}", f"@ 300 TXT {_txt('v=spf1 ip4:127.21.9.1 -all')}",
    ]}),
    "spf-plusall": ("SPF ends in +all", {"spf": [f"@ 300 TXT {_txt('v=spf1 mx +all')}"]}),
    "spf-neutral": ("SPF ends in ?all", {"spf": [f"@ 300 TXT {_txt('v=spf1 mx ?all')}"]}),
    "spf-noall": ("SPF without all", {"spf": [f"@ 300 TXT {_txt('v=spf1 mx')}"]}),
    "spf-ptr": ("SPF uses the deprecated ptr", {"spf": [f"@ 300 TXT {_txt('v=spf1 ptr -all')}"]}),
    "spf-syntax": ("SPF syntax error (ip4:300.1.1.1)", {"spf": [f"@ 300 TXT {_txt('v=spf1 ip4:300.1.1.1 -all')}"]}),
    "spf-unknown-mechanism": ("SPF with an unknown mechanism", {"spf": [f"@ 300 TXT {_txt('v=spf1 mx foo:bar -all')}"]}),
    "spf-void": ("SPF with 3 void lookups (limit 2)", {"spf": [
        f"@ 300 TXT {_txt('v=spf1 a:none1.spf-void.scen a:none2.spf-void.scen a:none3.spf-void.scen -all')}",
    ]}),
    "spf-include-missing": ("SPF includes a name without SPF", {"spf": [
        f"@ 300 TXT {_txt('v=spf1 include:nothing.spf-include-missing.scen -all')}",
    ]}),
    "spf-redirect-missing": ("SPF redirect= to a name without SPF", {"spf": [
        f"@ 300 TXT {_txt('v=spf1 redirect=nothing.spf-redirect-missing.scen')}",
    ]}),
    "spf-missing": ("no SPF record", {"spf": []}),
    "dmarc-none": ("DMARC p=none", {"dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=none; rua=mailto:dmarc@reports.bench')}"]}),
    "dmarc-pct": ("DMARC pct=50", {"dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject; pct=50; rua=mailto:dmarc@reports.bench')}"]}),
    "dmarc-sp-none": ("DMARC sp=none under p=reject", {"dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject; sp=none; rua=mailto:dmarc@reports.bench')}"]}),
    "dmarc-missing": ("no DMARC record", {"dmarc": []}),
    "dmarc-syntax": ("DMARC p=bogus", {"dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=bogus')}"]}),
    "dmarc-not-first": ("DMARC tag p not right after v", {"dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; rua=mailto:dmarc@reports.bench; p=reject')}"]}),
    "dmarc-two": ("two DMARC records", {"dmarc": [
        f"_dmarc 300 TXT {_txt('v=DMARC1; p=none')}", f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject')}",
    ]}),
    "dmarc-no-rua": ("DMARC without rua", {"dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject')}"]}),
    "dmarc-ext-unauth": ("DMARC rua to another domain that did not authorize it", {"report_auth": []}),
    "dmarc-rua-no-mx": ("DMARC rua to a domain without MX (authorized)", {
        "dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject; rua=mailto:dmarc@nomx.bench')}"],
        "report_auth": [f"dmarc-rua-no-mx.scen._report._dmarc.nomx.bench. 300 TXT {_txt('v=DMARC1')}"],
    }),
    "dmarc-ruf-unauth": ("DMARC ruf to another domain that did not authorize it", {
        "dmarc": [f"_dmarc 300 TXT {_txt('v=DMARC1; p=reject; rua=mailto:dmarc@reports.bench; ruf=mailto:ruf@other.bench')}"],
    }),
    "mx-missing": ("no MX record", {"mx": []}),
    "mx-noaddr": ("MX host without address", {"mx": ["@ 300 MX 10 mx"]}),
    "mx-cname": ("MX host is a CNAME", {"mx": ["@ 300 MX 10 alias", "alias 300 CNAME mx", "mx 300 A 127.21.9.99"]}),
    "nullmx": ("null MX (accepts no mail), SPF -all", {"mx": ["@ 300 MX 0 ."], "spf": [f"@ 300 TXT {_txt('v=spf1 -all')}"]}),
    "tlsrpt-invalid": ("invalid TLS-RPT record", {"tlsrpt": [f"_smtp._tls 300 TXT {_txt('v=TLSRPTv1; rua=ftp://reports.bench')}"]}),
    "tlsrpt-missing": ("no TLS-RPT record", {"tlsrpt": []}),
}


def scenario_domain(label: str) -> str:
    return f"{label}.scen"


@dataclass(frozen=True)
class ZoneSet:
    zones: dict[str, str]          # origin -> zone file text
    domains: list[str]             # the generated domains, in order


def build_zones(domain_count: int) -> ZoneSet:
    """`bench.` with `domain_count` generated domains, the scenario zones, the reverse zones."""
    dkim_key = _dkim_key()
    bench = SOA_NS + [
        f"ns 3600 A {KNOT_ADDRESS}",
        f"_spf.provider 300 TXT {_txt('v=spf1 ip4:127.20.0.0/16 include:_spf2.provider.bench ~all')}",
        f"_spf2.provider 300 TXT {_txt('v=spf1 a:relay.provider.bench ~all')}",
        "relay.provider 300 A 127.20.255.1",
        # reports.bench receives the reports: it has an MX, as a mail domain should.
        "reports 300 MX 10 mx.reports",
        "mx.reports 300 A 127.20.255.2",
        f"reports 300 TXT {_txt('v=spf1 -all')}",
        f"nomx 300 TXT {_txt('v=spf1 -all')}",
    ]
    reverse: dict[str, list[str]] = {"20.127.in-addr.arpa.": list(SOA_NS), "21.127.in-addr.arpa.": list(SOA_NS)}
    zones: dict[str, str] = {}
    domains = []
    for index in range(domain_count):
        domain = bench_domain(index)
        mail = MailDomain(domain, f"127.20.{index // 250}.{index % 250 + 1}", dkim_key)
        own, in_bench = mail.records()
        bench += [_qualify(line, domain) for line in own] + in_bench
        reverse["20.127.in-addr.arpa."].append(f"{_reverse_name(mail.mx_address)} 300 PTR mx.{domain}.")
        domains.append(domain)
    for number, (label, (_, groups)) in enumerate(SCENARIOS.items(), start=1):
        domain = scenario_domain(label)
        mail = MailDomain(domain, f"127.21.0.{number}", dkim_key, groups)
        own, in_bench = mail.records()
        zones[f"{domain}."] = _zone_text(SOA_NS + own)
        bench += in_bench
        reverse["21.127.in-addr.arpa."].append(f"{_reverse_name(mail.mx_address)} 300 PTR mx.{domain}.")
    zones[BENCH_ZONE] = _zone_text(bench)
    zones["scen."] = _zone_text(SOA_NS)   # the scenarios' parent: NXDOMAIN, not REFUSED, above them
    zones.update((origin, _zone_text(lines)) for origin, lines in reverse.items())
    return ZoneSet(zones, domains)


def _qualify(line: str, domain: str) -> str:
    """A record relative to `domain` made absolute, for the `bench.` zone file. A relative
    MX or CNAME target is relative to the domain too."""
    name, rest = line.split(" ", 1)
    if name.endswith("."):
        return line
    owner = f"{domain}." if name == "@" else f"{name}.{domain}."
    parts = rest.split()
    if parts[1] in ("MX", "CNAME") and not parts[-1].endswith("."):
        rest = " ".join(parts[:-1] + [f"{parts[-1]}.{domain}."])
    return f"{owner} {rest}"


def _zone_text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


class KnotServer:
    """knotd serving `zones` on KNOT_ADDRESS:KNOT_PORT; files under `directory`."""

    STARTUP_SECONDS = 60.0

    def __init__(self, directory: Path, zones: dict[str, str]):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        entries = []
        for origin, text in zones.items():
            zone_file = directory / f"{origin.rstrip('.')}.zone"
            zone_file.write_text(text)
            entries.append(f'  - domain: "{origin}"\n    file: "{zone_file}"\n')
        self.config = directory / "knot.conf"
        self.config.write_text(
            f"server:\n  rundir: {directory}\n  listen: {KNOT_ADDRESS}@{KNOT_PORT}\n"
            f"database:\n  storage: {directory}\n"
            "log:\n  - target: stderr\n    any: warning\n"
            f"template:\n  - id: default\n    storage: {directory}\n    journal-content: none\n"
            "    zonefile-sync: -1\n    zonefile-load: whole\n"
            "zone:\n" + "".join(entries)
        )

    def start(self) -> None:
        with open(self.directory / "knotd.log", "ab") as log:
            self.process = subprocess.Popen([KNOTD, "-c", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("knotd exited:\n" + (self.directory / "knotd.log").read_text())
            if self.answers():
                return
            time.sleep(0.1)
        raise RuntimeError("knotd did not answer:\n" + (self.directory / "knotd.log").read_text())

    def answers(self) -> bool:
        query = dns.message.make_query(BENCH_ZONE, "SOA")
        try:
            return bool(dns.query.udp(query, KNOT_ADDRESS, timeout=0.3, port=KNOT_PORT).answer)
        except (OSError, dns.exception.Timeout):
            return False

    def pause(self) -> None:
        """Stop answering, without closing the socket: queries time out (dropped answers)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)   # a frozen server must be able to exit
            stop_process(self.process, timeout=10)
