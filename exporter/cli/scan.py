"""`mailsec-exporter scan HOST[:PORT]`: the deep TLS scan of one endpoint, the way an admin
would run testssl.sh or sslyze, with the exporter's own resolver and STARTTLS dialogues.
Exit status: 0 when the scan completed, 2 when it could not."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ..config import (
    DNSSettings,
    Module,
    MailProtocol,
    StartTLS,
    Target,
    TLSSettings,
    parse_host_port,
    parse_nameserver,
    parse_server_name,
)
from ..dnsclient import DNSClient
from ..tlsscan.report import render_table, to_json
from ..tlsscan.scanner import scan_endpoint

_STARTTLS_PROTOCOLS = {"smtp": MailProtocol.SMTP, "imap": MailProtocol.IMAP, "pop3": MailProtocol.POP3}


def scan_command(args: argparse.Namespace) -> int:
    protocol = _STARTTLS_PROTOCOLS[args.starttls] if args.starttls else MailProtocol.SMTPS
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
    dns.close()
    print(json.dumps(to_json(result), indent=2) if args.json else render_table(result), end="\n" if args.json else "")
    return 0 if result.success else 2
