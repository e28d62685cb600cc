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


# The MX hosts looked at (by preference, then name), so that a domain cannot turn itself into
# a thousand probe targets: whoever controls a watched domain's DNS chooses its MX records.
MAX_MX_HOSTS = 10


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
    named = [r for r in records if r.exchange]
    hosts = await asyncio.gather(*(_host(dns, r.exchange, r.preference) for r in named[:MAX_MX_HOSTS]))
    findings = _findings(domain, records, hosts)
    if len(named) > MAX_MX_HOSTS:
        left_out = ", ".join(r.exchange for r in named[MAX_MX_HOSTS:MAX_MX_HOSTS + 5])
        findings.append(Finding(
            Severity.WARNING, "mx_too_many",
            f"{domain} has {len(named)} MX records: only the {MAX_MX_HOSTS} most preferred are checked and probed "
            f"(left out: {left_out}{', ...' if len(named) > MAX_MX_HOSTS + 5 else ''})",
            "publish fewer MX records: senders rarely try more than a few"))
    return MXResult(failure=None, hosts=tuple(hosts), findings=tuple(findings))


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
        for address in host.addresses:
            if (kind := non_public_kind(address)) is not None:
                found.append(Finding(
                    Severity.ERROR, "mx_address_not_public",
                    f"MX {host.name} has the {kind} address {address}: senders on the Internet cannot reach it",
                    f"publish the public address of {host.name} (split-horizon DNS leaking an internal one?)",
                ))
    reachable = [host for host in hosts if host.addresses]
    if reachable and not any(host.has_ipv6 for host in reachable):
        found.append(Finding(
            Severity.INFO, "mx_no_ipv6", f"no MX host of {domain} has an IPv6 address",
            "add AAAA records to the MX hosts",
        ))
    return found


def non_public_kind(address: str) -> str | None:
    """What kind of address this is when it is not a public unicast one (loopback, private,
    link-local, documentation, ...), else None. As danecheck does for MX addresses."""
    ip = ipaddress.ip_address(address)
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    for kind, test in _KINDS:
        if test(ip):
            return kind
    return None if ip.is_global else "reserved"


_DOCUMENTATION = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"))
_KINDS = (
    ("loopback", lambda ip: ip.is_loopback),
    ("unspecified", lambda ip: ip.is_unspecified),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("documentation", lambda ip: any(ip in net for net in _DOCUMENTATION if net.version == ip.version)),
    ("unique-local", lambda ip: ip.version == 6 and ip in ipaddress.ip_network("fc00::/7")),
    ("shared (carrier-grade NAT)", lambda ip: ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10")),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private),
)
