"""One-shot commands: probe something once, print a report, exit.

`mailsec-exporter scan HOST[:PORT]` runs the deep TLS scan of one endpoint, the way an
admin would run testssl.sh or sslyze, with the exporter's own resolver and STARTTLS
dialogues. Exit status: 0 when the scan completed, 2 when it could not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .config import (
    DNSSettings,
    Module,
    Protocol,
    StartTLS,
    Target,
    TLSSettings,
    parse_host_port,
    parse_nameserver,
    parse_server_name,
)
from .dnsclient import DNSClient
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
