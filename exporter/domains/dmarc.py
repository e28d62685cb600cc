"""DMARC (RFC 7489): the policy record at _dmarc.<domain>, or, when there is none, at
_dmarc.<organizational domain> (§6.6.3), found with the Public Suffix List.

More than one DMARC record means none applies (§6.6.3). Reports sent to another
organization's addresses are only delivered when that organization agrees with a record
at <domain>._report._dmarc.<destination> (§7.1): each external rua/ruf is checked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..dnsclient import DNSError, Resolver, mx_records, txt_records
from ..records.dmarc import DMARCRecord, parse_dmarc, select_dmarc_records
from ..records.psl import organizational_domain
from .common import CheckFailure, Finding, Severity, SingleRecord, failure_from, lookup_single_record


@dataclass(frozen=True)
class ReportDestination:
    uri: str
    domain: str
    external: bool                 # another organizational domain
    authorized: bool               # same organization, or it published the §7.1 record
    has_mx: bool                   # the destination domain publishes MX records (not a null MX)


@dataclass(frozen=True)
class DMARCResult:
    failure: CheckFailure | None
    lookup: SingleRecord[DMARCRecord] | None = None   # where the applying record was looked for last
    inherited: bool = False                           # found at the organizational domain
    destinations: tuple[ReportDestination, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def record(self) -> DMARCRecord | None:
        return self.lookup.record if self.lookup else None

    @property
    def rua_configured(self) -> bool:
        return bool(self.record and self.record.aggregate_report_uris)

    @property
    def rua_authorized(self) -> bool:
        """Every aggregate-report destination will get the reports."""
        rua = {uri.uri for uri in self.record.aggregate_report_uris} if self.record else set()
        return all(d.authorized for d in self.destinations if d.uri in rua)


async def check_dmarc(domain: str, dns: Resolver) -> DMARCResult:
    try:
        lookup = await lookup_single_record(dns, f"_dmarc.{domain}", select_dmarc_records, parse_dmarc)
        inherited = False
        org = organizational_domain(domain)
        if lookup.count == 0 and org != domain:
            lookup = await lookup_single_record(dns, f"_dmarc.{org}", select_dmarc_records, parse_dmarc)
            inherited = True
        policy_domain = org if inherited else domain
        destinations = await _destinations(dns, policy_domain, lookup.record) if lookup.record else ()
    except DNSError as exc:
        return DMARCResult(failure=failure_from(exc))
    return DMARCResult(
        failure=None, lookup=lookup, inherited=inherited, destinations=destinations,
        findings=tuple(_findings(domain, policy_domain, lookup, destinations)),
    )


async def _destinations(dns: Resolver, policy_domain: str, record: DMARCRecord) -> tuple[ReportDestination, ...]:
    uris = {uri.uri: uri.domain for uri in record.aggregate_report_uris + record.failure_report_uris if uri.domain}
    own = organizational_domain(policy_domain)

    async def destination(uri: str, target: str) -> ReportDestination:
        exchanges = [mx.exchange for mx in await mx_records(dns, target)]
        has_mx = bool(exchanges) and exchanges != [""]
        if organizational_domain(target) == own:
            return ReportDestination(uri, target, external=False, authorized=True, has_mx=has_mx)
        texts = await txt_records(dns, f"{policy_domain}._report._dmarc.{target}")
        return ReportDestination(uri, target, external=True, authorized=bool(select_dmarc_records(texts)),
                                 has_mx=has_mx)

    return tuple(await asyncio.gather(*(destination(uri, target) for uri, target in uris.items())))


_WARNING_FIX = {"p_not_second": "write the record as v=DMARC1; p=...; followed by the other tags"}


def _findings(domain: str, policy_domain: str, lookup: SingleRecord[DMARCRecord], destinations) -> list[Finding]:
    if lookup.count == 0:
        return [Finding(Severity.ERROR, "dmarc_missing", f"no DMARC record applies to {domain}",
                        f"publish 'v=DMARC1; p=none; rua=mailto:...' at _dmarc.{domain}, then tighten p")]
    if lookup.record is None:
        return [Finding(Severity.ERROR, "dmarc_invalid", f"the DMARC record at {lookup.name} is unusable: {lookup.error}",
                        "publish exactly one valid record; receivers ignore it otherwise")]
    record = lookup.record
    found = [Finding(Severity.WARNING, f"dmarc_{w.code}", f"{lookup.name}: {w.message}",
                     _WARNING_FIX.get(w.code, "correct or remove the tag named"))
             for w in record.warnings]
    if record.policy.value == "none":
        found.append(Finding(Severity.WARNING, "dmarc_policy_none", f"{lookup.name}: p=none only monitors",
                             "move to p=quarantine, then p=reject, once reports show legitimate mail aligns"))
    elif record.subdomain_policy.value == "none":
        found.append(Finding(Severity.WARNING, "dmarc_subdomain_policy_none",
                             f"{lookup.name}: sp=none leaves subdomains unprotected under p={record.policy.value}",
                             "remove sp (it then follows p) or set sp=quarantine or reject"))
    if record.percent < 100:
        found.append(Finding(Severity.INFO, "dmarc_partial_pct",
                             f"{lookup.name}: the policy applies to {record.percent}% of mail "
                             "(DMARCbis drops pct: newer receivers apply it to all)",
                             "raise pct to 100, or use t=y while testing"))
    if not record.aggregate_report_uris:
        found.append(Finding(Severity.WARNING, "dmarc_no_rua", f"{lookup.name}: no aggregate reports (rua) requested",
                             "add rua=mailto:... to learn who sends as the domain"))
    for destination in destinations:
        if not destination.has_mx:
            found.append(Finding(
                Severity.WARNING, "dmarc_report_domain_no_mx",
                f"{destination.uri}: {destination.domain} publishes no MX record, reports may not arrive",
                f"send reports to an address whose domain receives mail, or give {destination.domain} MX records",
            ))
        if not destination.authorized:
            found.append(Finding(
                Severity.ERROR, "dmarc_report_unauthorized",
                f"{destination.uri}: {destination.domain} did not agree to receive reports for this domain",
                f"publish 'v=DMARC1' at {policy_domain}._report._dmarc.{destination.domain} (RFC 7489 §7.1)",
            ))
    return found
