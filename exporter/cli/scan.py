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
    GlobalSettings,
    Module,
    MailProtocol,
    StartTLS,
    Target,
    TLSSettings,
    parse_host_port,
    parse_nameserver,
    parse_server_name,
)
from ..dnsclient import DNSClient, PinnedResolver
from ..revocation.report import check_json, check_line
from ..revocation.results import CertificateCheck
from ..tlsscan.report import render_table, to_json
from ..tlsscan.results import TLSScanResult
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
    target = Target(host, port, module.name)

    async def run() -> tuple[TLSScanResult, tuple[CertificateCheck, ...] | None]:
        result = await scan_endpoint(target, module, dns, min_delay=args.min_delay, budget=args.budget)
        if not (args.revocation and result.address):
            return result, None
        return result, await _revocation_checks(target, module, dns, result.address)

    result, checks = asyncio.run(run())
    dns.close()
    if args.json:
        document = to_json(result) | ({"revocation": [check_json(c) for c in checks]} if checks is not None else {})
        print(json.dumps(document, indent=2))
    else:
        print(render_table(result) + (_revocation_text(checks) if checks is not None else ""), end="")
    return 0 if result.success else 2


async def _revocation_checks(target: Target, module: Module, dns: DNSClient,
                             address: str) -> tuple[CertificateCheck, ...]:
    """One ordinary handshake with the scanned address for the chain it presents, then the
    OCSP and CRL checks of its certificates (the CAs' servers are asked: only on request)."""
    from ..revocation.check import check_presented
    from ..service.limits import ConcurrencyLimits
    from ..service.runs import Probes, probe_host

    probed = await probe_host(Probes().endpoint, target, module, PinnedResolver(target.host, [address], dns),
                              ConcurrencyLimits(GlobalSettings()).slot)
    return await check_presented(probed, module.tls.ca_file, dns)


def _revocation_text(checks: tuple[CertificateCheck, ...]) -> str:
    lines = [f"  {check_line(check)}" for check in checks] or [
        "  no presented certificate names an OCSP responder or a CRL"]
    return "\nRevocation (OCSP, CRL):\n" + "\n".join(lines) + "\n"
