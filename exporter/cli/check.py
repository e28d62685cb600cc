"""`mailsec-exporter check DOMAIN...`: every domain check and the STARTTLS probe of each
MX host (whose chain DANE is matched against), the way checkdmarc or an online checker
would, and the blocklists of --config.file (if any) about the domain's addresses and names.
Exit status: 0 clean, 1 findings, 2 a check could not run."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from ..config import (
    Config,
    ConfigError,
    DNSSettings,
    Domain,
    DomainCheckSettings,
    Module,
    MailProtocol,
    StartTLS,
    Target,
    TLSSettings,
    parse_host,
    parse_nameserver,
)
from ..dnsclient import DNSClient, LookupCache
from ..domains.common import Finding, Severity
from ..domains.mx import check_mx
from ..domains.report import DomainReport, exit_status, render_text
from ..domains.report import to_json as report_json
from ..results import HostResult
from ..revocation.check import check_presented
from ..revocation.report import check_line
from ..revocation.results import RevocationStatus
from ..service.limits import ConcurrencyLimits
from ..service.runs import Probes, probe_host, run_domain_check


def _check_settings(args: argparse.Namespace) -> tuple[Config, Module]:
    """The configuration (resolver, domain-check settings, listed domains) and the MX module
    the check runs with: from --config.file, else from the command line."""
    if args.check_config_file:
        from ..config.loader import load_config   # PyYAML and the node walker: only for a file

        config = load_config(args.check_config_file)
        return config, config.modules[config.domain_checks.mx_module]
    config = Config(dns=DNSSettings(nameservers=tuple(parse_nameserver(text) for text in args.nameservers)),
                    domain_checks=DomainCheckSettings(mta_sts_ca_file=args.ca_file))
    module = Module("smtp", MailProtocol.SMTP, MailProtocol.SMTP.default_port, StartTLS.REQUIRED, timeout=10.0,
                    interval=300.0, tls=TLSSettings(ca_file=args.ca_file))
    return config, module


async def _check_one(domain: Domain, config: Config, module: Module) -> DomainReport:
    """The report of `domain`, with a DNS client whose sockets are closed at the end."""
    dns = DNSClient(config.dns)
    try:
        return await _check_with(domain, config, module, dns)
    finally:
        dns.close()


async def _check_with(domain: Domain, config: Config, module: Module, dns: DNSClient) -> DomainReport:
    """Probe every address of each MX host first, so that DANE is matched against the
    chain each presents."""
    probes = Probes()
    limits = ConcurrencyLimits(config.global_)
    mx = await check_mx(domain.name, LookupCache(dns))
    targets = [Target(host.name, module.port, module.name) for host in mx.hosts if not host.is_ip_literal]
    results = await asyncio.gather(*(probe_host(probes.endpoint, target, module, dns, limits.slot,
                                                every_key_type=True) for target in targets))
    chains = {target.host: result.chains() for target, result in zip(targets, results)}
    result = await run_domain_check(probes.domain, domain, dns, config.domain_checks, chains.get)
    probed = tuple(zip(targets, results))
    more: dict[str, tuple[Finding, ...]] = {}
    if config.global_.revocation_checks:
        revocation = await _revocation_findings(probed, module, dns)
        more.update({"revocation": revocation} if revocation else {})
    # Only the lists the configuration names: querying a list has terms of use.
    if not config.blocklists.lists:
        return DomainReport(result, probed, more)
    from ..reputation import report as blocklist_report   # imported only when lists are configured
    from ..reputation.blocklists import check_domain_now as check_blocklists

    listed = await check_blocklists(domain, result, config.blocklists, dns)
    more.update({"blocklists": blocklist_report.findings(listed)} if listed else {})
    return DomainReport(result, probed, more, blocklist_report.failures(listed))


async def _revocation_findings(probed: tuple[tuple[Target, HostResult], ...], module: Module,
                               dns: DNSClient) -> tuple[Finding, ...]:
    """The revocation checks of the MX hosts' certificates: an error for a revoked one, a
    note for one whose status could not be had (the CA's fault, not the domain's)."""
    checked = await asyncio.gather(*(check_presented(result, module.tls.ca_file, dns) for _, result in probed))
    found = []
    for (target, _), checks in zip(probed, checked):
        for check in checks:
            if check.verdict.status is RevocationStatus.REVOKED:
                found.append(Finding(Severity.ERROR, "certificate_revoked", f"MX {target.host}: {check_line(check)}",
                                     "install a newly issued certificate (a new key if it was compromised)"))
            elif check.verdict.failure is not None:
                found.append(Finding(Severity.INFO, "certificate_revocation_unknown",
                                     f"MX {target.host}: {check_line(check)}",
                                     "nothing to do on the mail server if its CA's OCSP or CRL server is unreachable"))
    return tuple(found)


def check_command(args: argparse.Namespace) -> int:
    try:
        config, module = _check_settings(args)
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
        return list(await asyncio.gather(*(_check_one(d, config, module) for d in domains)))

    reports = asyncio.run(run_all())
    now = time.time()
    print(json.dumps(report_json(reports, now), indent=2) if args.json else render_text(reports, now))
    return exit_status(reports, now)
