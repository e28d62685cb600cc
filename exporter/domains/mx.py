"""MX records: who receives the domain's mail, and whether those hosts can be reached.

RFC 5321 §5.1: an MX target must be a host name with address records, not an alias
(CNAME) and not an IP address. RFC 7505: a single "MX 0 ." says the domain takes no mail.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from ..dnsclient import DNSAnswer, DNSError, Resolver, mx_records
from .common import CheckFailure, Finding, Severity, failure_from


@dataclass(frozen=True)
class MXHost:
    name: str                          # the exchange, lower case
    preference: int
    addresses: tuple[str, ...]         # IPv4 then IPv6
    is_alias: bool                     # the name is a CNAME
    is_ip_literal: bool                # the exchange is written as an IP address
    lookup_error: str | None = None    # the address lookup failed (not NXDOMAIN/NODATA)

    @property
    def has_ipv6(self) -> bool:
        return any(":" in address for address in self.addresses)


@dataclass(frozen=True)
class MXResult:
    failure: CheckFailure | None
    hosts: tuple[MXHost, ...] = ()     # by preference; empty for a null MX
    null_mx: bool = False
    findings: tuple[Finding, ...] = ()


async def check_mx(domain: str, dns: Resolver) -> MXResult:
    try:
        records = await mx_records(dns, domain)
    except DNSError as exc:
        return MXResult(failure=failure_from(exc))
    if len(records) == 1 and records[0].exchange == "":
        # Info, not a warning: right for a domain that sends no mail, but worth a line in a
        # report in case it was not meant (checkdmarc notes it too).
        findings = [Finding(
            Severity.INFO, "null_mx", f"{domain} publishes a null MX: it accepts no mail (RFC 7505)",
            "nothing to do if the domain receives no mail; otherwise publish its real MX records instead")]
        if records[0].preference != 0:
            findings.append(Finding(
                Severity.WARNING, "null_mx_preference", f"the null MX of {domain} has preference {records[0].preference}",
                "publish it as 'MX 0 .' (RFC 7505)"))
        return MXResult(failure=None, null_mx=True, findings=tuple(findings))
    hosts = await asyncio.gather(*(_host(dns, r.exchange, r.preference) for r in records if r.exchange))
    return MXResult(failure=None, hosts=tuple(hosts), findings=tuple(_findings(domain, records, hosts)))


async def _host(dns: Resolver, name: str, preference: int) -> MXHost:
    try:
        ipaddress.ip_address(name)
        return MXHost(name, preference, (), is_alias=False, is_ip_literal=True)
    except ValueError:
        pass
    answers = await asyncio.gather(dns.lookup(name, "A"), dns.lookup(name, "AAAA"), return_exceptions=True)
    addresses: list[str] = []
    is_alias = False
    lookup_error = None
    for answer in answers:
        if isinstance(answer, DNSAnswer):
            addresses.extend(rdata.address for rdata in answer.records)
            is_alias = is_alias or answer.is_alias
        elif isinstance(answer, DNSError):
            if not answer.kind.is_negative_answer:
                lookup_error = str(answer)
        else:
            raise answer
    return MXHost(name, preference, tuple(addresses), is_alias, False, lookup_error)


def _findings(domain: str, records, hosts: list[MXHost]) -> list[Finding]:
    found: list[Finding] = []
    if not records:
        found.append(Finding(
            Severity.WARNING, "mx_missing", f"{domain} has no MX record: senders fall back to its A/AAAA records",
            "publish MX records, or 'MX 0 .' if the domain receives no mail",
        ))
    if any(r.exchange == "" for r in records) and len(records) > 1:
        found.append(Finding(
            Severity.ERROR, "null_mx_mixed", f"{domain} has a null MX next to other MX records",
            "remove 'MX 0 .' or the other MX records (RFC 7505 §3)",
        ))
    for host in hosts:
        if host.is_ip_literal:
            found.append(Finding(
                Severity.ERROR, "mx_ip_literal", f"MX {host.name} is an IP address, not a host name",
                "point the MX at a host name that has A/AAAA records",
            ))
        elif host.lookup_error:
            found.append(Finding(
                Severity.WARNING, "mx_lookup_failed", f"the addresses of MX {host.name} could not be looked up: {host.lookup_error}",
                "check the DNS servers of the MX host's zone",
            ))
        elif not host.addresses:
            found.append(Finding(
                Severity.ERROR, "mx_no_address", f"MX {host.name} has no A or AAAA record",
                f"add address records for {host.name} or remove the MX",
            ))
        if host.is_alias:
            found.append(Finding(
                Severity.WARNING, "mx_cname", f"MX {host.name} is a CNAME (RFC 5321 §5.1 forbids aliases)",
                "point the MX at the canonical host name",
            ))
    reachable = [host for host in hosts if host.addresses]
    if reachable and not any(host.has_ipv6 for host in reachable):
        found.append(Finding(
            Severity.INFO, "mx_no_ipv6", f"no MX host of {domain} has an IPv6 address",
            "add AAAA records to the MX hosts",
        ))
    return found
