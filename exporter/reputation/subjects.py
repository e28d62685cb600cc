"""What is checked against the blocklists, and why each subject is there.

IP lists: every address of every MX host of every watched domain, every configured
target's addresses and, where enabled, the addresses the domain's SPF authorises. Domain
lists: the domain itself, its MX host names and the hosts of its DMARC aggregate-report
(rua) addresses. The MX hosts and DMARC destinations come from the domain's latest check
result when there is one (the scheduler's), else from lookups of their own.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from dataclasses import dataclass
from typing import Callable, Iterable

from ..config import BlocklistKind, Domain, Target
from ..dnsclient import DNSError, Resolver, addresses_of
from ..domains.check import DomainResult
from ..domains.dmarc import DMARCResult, check_dmarc
from ..domains.mx import MXResult, check_mx
from .spf_addresses import spf_addresses


class OriginKind(enum.StrEnum):
    MX_ADDRESS = "mx_address"
    SPF_ADDRESS = "spf_address"
    TARGET_ADDRESS = "target_address"
    DOMAIN = "domain"
    MX_HOST = "mx_host"
    RUA_HOST = "rua_host"


_ORIGIN_TEXT = {
    OriginKind.MX_ADDRESS: "address of MX {via}",
    OriginKind.SPF_ADDRESS: "authorised by {via}",
    OriginKind.TARGET_ADDRESS: "address of target {via}",
    OriginKind.DOMAIN: "the domain",
    OriginKind.MX_HOST: "MX host",
    OriginKind.RUA_HOST: "DMARC report address {via}",
}


@dataclass(frozen=True, order=True)
class Origin:
    """Why a subject is checked: e.g. an address of MX mx1.example.org of example.org."""

    kind: OriginKind
    domain: str         # the watched domain it comes from; "" for a target
    via: str            # the MX host, SPF term, target or rua URI

    def __str__(self) -> str:
        text = _ORIGIN_TEXT[self.kind].format(via=self.via)
        return f"{text} of {self.domain}" if self.domain else text

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "domain": self.domain, "via": self.via}


@dataclass(frozen=True)
class Subject:
    value: str                     # an IP address (canonical form) or a domain name
    origins: tuple[Origin, ...]    # sorted

    def concerns(self, domain: str) -> bool:
        return any(origin.domain == domain for origin in self.origins)


@dataclass(frozen=True)
class Subjects:
    subjects: tuple[Subject, ...] = ()   # sorted by value
    notes: tuple[str, ...] = ()          # what could not be gathered or was skipped, and why


StoredDomainResult = Callable[[str], DomainResult | None]


def merge(found: Iterable[tuple[str, Origin]]) -> tuple[Subject, ...]:
    """One Subject per value, with every origin it was found through."""
    origins: dict[str, set[Origin]] = {}
    for value, origin in found:
        origins.setdefault(value, set()).add(origin)
    return tuple(Subject(value, tuple(sorted(origins[value]))) for value in sorted(origins, key=_order))


def _order(value: str) -> tuple[int, int, str]:
    """Addresses in numeric order (IPv4 first), then names."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return (7, 0, value)
    return (address.version, int(address), "")


async def gather_subjects(
    kind: BlocklistKind, domains: Iterable[Domain], targets: Iterable[Target], dns: Resolver,
    stored: StoredDomainResult, spf_default: bool,
) -> Subjects:
    per_domain = await asyncio.gather(*(_domain_subjects(kind, domain, dns, stored(domain.name), spf_default)
                                        for domain in domains))
    found = [pair for pairs, _ in per_domain for pair in pairs]
    notes = [note for _, domain_notes in per_domain for note in domain_notes]
    if kind is BlocklistKind.IP:
        target_pairs, target_notes = await _target_addresses(targets, dns)
        found += target_pairs
        notes += target_notes
    return Subjects(merge(found), tuple(notes))


async def _domain_subjects(
    kind: BlocklistKind, domain: Domain, dns: Resolver, stored: DomainResult | None, spf_default: bool,
) -> tuple[list[tuple[str, Origin]], list[str]]:
    name = domain.name
    mx = stored.mx if stored is not None and stored.mx.failure is None else await check_mx(name, dns)
    notes = [f"{name}: MX hosts not known: {mx.failure}"] if mx.failure is not None else []
    if kind is BlocklistKind.DOMAIN:
        dmarc = stored.dmarc if stored is not None and stored.dmarc.failure is None else await check_dmarc(name, dns)
        if dmarc.failure is not None:
            notes.append(f"{name}: DMARC report addresses not known: {dmarc.failure}")
        return _domain_names(name, mx, dmarc), notes
    found = [(address, Origin(OriginKind.MX_ADDRESS, name, host.name))
             for host in mx.hosts for address in _mx_addresses(host.name, host.addresses)]
    if domain.blocklist_spf if domain.blocklist_spf is not None else spf_default:
        authorised = await spf_addresses(name, dns)
        found += [(address, Origin(OriginKind.SPF_ADDRESS, name, term)) for address, term in authorised.addresses]
        notes += [f"{name}: SPF not read: {authorised.failure}"] if authorised.failure else []
        notes += [f"{name}: skipped {skipped}" for skipped in authorised.skipped]
    return found, notes


def _mx_addresses(host: str, addresses: tuple[str, ...]) -> tuple[str, ...]:
    """The addresses of an MX host; an MX written as an IP address is that address."""
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        return addresses


def _domain_names(name: str, mx: MXResult, dmarc: DMARCResult) -> list[tuple[str, Origin]]:
    found = [(name, Origin(OriginKind.DOMAIN, name, name))]
    found += [(host.name, Origin(OriginKind.MX_HOST, name, host.name)) for host in mx.hosts if not host.is_ip_literal]
    rua = {uri.uri for uri in dmarc.record.aggregate_report_uris} if dmarc.record else set()
    found += [(destination.domain, Origin(OriginKind.RUA_HOST, name, destination.uri))
              for destination in dmarc.destinations if destination.uri in rua]
    return found


async def _target_addresses(targets: Iterable[Target], dns: Resolver) -> tuple[list[tuple[str, Origin]], list[str]]:
    hosts = sorted({target.host for target in targets})
    outcomes = await asyncio.gather(*(_resolve(dns, host) for host in hosts))
    found: list[tuple[str, Origin]] = []
    notes: list[str] = []
    for host, outcome in zip(hosts, outcomes):
        if isinstance(outcome, DNSError):
            notes.append(f"target {host}: addresses not known: {outcome}")
            continue
        found += [(str(ipaddress.ip_address(address)), Origin(OriginKind.TARGET_ADDRESS, "", host))
                  for address in outcome]
    return found, notes


async def _resolve(dns: Resolver, host: str) -> list[str] | DNSError:
    """The addresses of a target host (an IP literal is its own), or why there are none."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        return await addresses_of(dns, host)
    except DNSError as exc:
        return exc
