"""One-shot commands: probe something once, print a report, exit.

`mailsec-exporter scan HOST[:PORT]` runs the deep TLS scan of one endpoint, the way an
admin would run testssl.sh or sslyze, with the exporter's own resolver and STARTTLS
dialogues. Exit status: 0 when the scan completed, 2 when it could not.

`mailsec-exporter check DOMAIN...` runs every domain check and the STARTTLS probe of each
MX host (whose chain DANE is matched against), the way checkdmarc or an online checker
would. Exit status: 0 clean, 1 findings, 2 a check could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from .checkreport import DomainReport, exit_status, render_text
from .checkreport import to_json as check_report_json
from .config import (
    Config,
    ConfigError,
    DNSSettings,
    Domain,
    Module,
    Protocol,
    StartTLS,
    Target,
    TLSSettings,
    parse_host,
    parse_host_port,
    parse_nameserver,
    parse_server_name,
    load_config,
)
from .dnsclient import DNSClient, LookupCache
from .domains.check import check_domain
from .domains.mx import check_mx
from .probes.endpoint import probe_endpoint
from .tlsscan.report import render_table, to_json
from .tlsscan.scanner import scan_endpoint

# --starttls names the dialogue; without it TLS starts at once (SMTPS, IMAPS, POP3S alike
# for the scan, which only sends hellos).
_STARTTLS_PROTOCOLS = {"smtp": Protocol.SMTP, "imap": Protocol.IMAP, "pop3": Protocol.POP3}


def add_scan_parser(commands: argparse._SubParsersAction) -> None:
    scan = commands.add_parser(
        "scan",
        help="deep TLS scan of one endpoint: versions, cipher suites, groups, graded",
        description="Deep TLS scan of one mail endpoint, printed as a table (or JSON).",
    )
    scan.add_argument("endpoint", help="HOST:PORT ([IPv6]:PORT); the port defaults to the protocol's")
    scan.add_argument("--starttls", choices=sorted(_STARTTLS_PROTOCOLS),
                      help="speak this protocol and STARTTLS first; without it, TLS starts at once (465, 993, 995)")
    scan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    scan.add_argument("--timeout", type=float, default=10.0, help="seconds per connection (default: %(default)s)")
    scan.add_argument("--budget", type=float, default=300.0, help="seconds for the whole scan (default: %(default)s)")
    scan.add_argument("--min-delay", type=float, default=0.0,
                      help="seconds between two connections, for servers that rate-limit (default: %(default)s)")
    scan.add_argument("--tls.server-name", dest="server_name", help="SNI to send (default: the host name)")
    scan.add_argument("--ehlo", default=Module.ehlo, help="EHLO name for SMTP (default: %(default)s)")
    scan.add_argument("--dns.nameserver", dest="nameservers", action="append", default=[],
                      help="ADDR[:PORT] of the resolver to use, repeatable (default: the system's)")


def scan_command(args: argparse.Namespace) -> int:
    protocol = _STARTTLS_PROTOCOLS[args.starttls] if args.starttls else Protocol.SMTPS
    try:
        host, port = parse_host_port(args.endpoint, protocol.default_port)
        server_name = parse_server_name(args.server_name) if args.server_name else None
        nameservers = tuple(parse_nameserver(text) for text in args.nameservers)
    except ValueError as exc:
        print(f"mailsec-exporter scan: {exc}", file=sys.stderr)
        return 2
    module = Module(
        name="scan",
        protocol=protocol,
        port=port,
        starttls=StartTLS.REQUIRED if args.starttls else StartTLS.NONE,
        timeout=args.timeout,
        interval=args.budget,
        tls=TLSSettings(server_name=server_name),
        ehlo=args.ehlo,
    )
    dns = DNSClient(DNSSettings(nameservers=nameservers))
    result = asyncio.run(
        scan_endpoint(Target(host, port, module.name), module, dns, min_delay=args.min_delay, budget=args.budget)
    )
    print(json.dumps(to_json(result), indent=2) if args.json else render_table(result), end="\n" if args.json else "")
    return 0 if result.success else 2


def add_check_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check mail domains: MX, SPF, DMARC, DKIM, MTA-STS, TLS-RPT, BIMI, DNSSEC, DANE and each MX's TLS",
        description="Check mail domains once and print the findings, grouped by check, each with a fix. "
                    "Exit 0 when clean, 1 with findings, 2 when a check could not run.",
    )
    check.add_argument("domains", nargs="+", metavar="DOMAIN")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.add_argument("--config.file", dest="check_config_file",
                       help="take the resolver, the MX module, the MTA-STS CA and the DKIM selectors of listed "
                            "domains from this configuration")
    check.add_argument("--dns.nameserver", dest="nameservers", action="append", default=[],
                       help="ADDR[:PORT] of the resolver, repeatable (default: the system's); "
                            "a validating resolver gives DNSSEC status")
    check.add_argument("--tls.ca-file", dest="ca_file",
                       help="CA bundle for the MX certificates and the MTA-STS policy hosts (default: system store)")
    check.add_argument("--dkim-selector", dest="selectors", action="append", default=[],
                       help="DKIM selector to look up, repeatable")


def _check_settings(args: argparse.Namespace) -> tuple[Config, Module, str | None]:
    """The configuration, the MX module and the MTA-STS CA file the check runs with."""
    if args.check_config_file:
        config = load_config(args.check_config_file)
        return config, config.modules[config.domain_checks.mx_module], config.domain_checks.mta_sts_ca_file
    config = Config(dns=DNSSettings(nameservers=tuple(parse_nameserver(text) for text in args.nameservers)))
    module = Module("smtp", Protocol.SMTP, Protocol.SMTP.default_port, StartTLS.REQUIRED, timeout=10.0,
                    interval=300.0, tls=TLSSettings(ca_file=args.ca_file))
    return config, module, args.ca_file


async def _check_one(domain: Domain, config: Config, module: Module, https_ca_file: str | None) -> DomainReport:
    dns = DNSClient(config.dns)
    mx = await check_mx(domain.name, LookupCache(dns))
    targets = [Target(host.name, module.port, module.name) for host in mx.hosts if not host.is_ip_literal]
    results = await asyncio.gather(*(probe_endpoint(target, module, dns) for target in targets))
    chains = {target.host: tuple(cert.der for cert in result.tls.chain)
              for target, result in zip(targets, results) if result.tls is not None}
    result = await check_domain(domain, dns, chain_for=chains.get, https_ca_file=https_ca_file,
                                https_timeout=config.domain_checks.https_timeout)
    return DomainReport(result, tuple(zip(targets, results)))


def check_command(args: argparse.Namespace) -> int:
    try:
        config, module, https_ca_file = _check_settings(args)
        names = [parse_host(name) for name in args.domains]
    except (ConfigError, ValueError) as exc:
        print(f"mailsec-exporter check: {exc}", file=sys.stderr)
        return 2
    listed = {domain.name: domain for domain in config.domains}
    domains = [
        Domain(name, tuple(dict.fromkeys((*listed[name].dkim_selectors, *args.selectors))) if name in listed
               else tuple(args.selectors))
        for name in names
    ]

    async def run_all() -> list[DomainReport]:
        return list(await asyncio.gather(*(_check_one(d, config, module, https_ca_file) for d in domains)))

    reports = asyncio.run(run_all())
    now = time.time()
    print(json.dumps(check_report_json(reports, now), indent=2) if args.json else render_text(reports, now))
    return exit_status(reports, now)
