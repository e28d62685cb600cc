"""The outbound addresses a domain's SPF record authorises, for the blocklist checks.

Only `+` mechanisms authorise. `ip4`/`ip6` networks up to /29 and /125 give each of their
addresses (records/dnsbl.expand_network); larger ones are skipped and named. `a` and `mx`
are resolved (their `/cidr` applied the same way). `include` and `redirect` are followed when
they stay within the domain's own organizational domain (`include:_spf.example.org`): a
provider's include (`include:_spf.google.com`) lists the provider's ranges, whose reputation
is the provider's to watch. Terms with macros depend on the sender and are skipped. At most
MAX_LOOKUPS records and names are looked up, as an SPF evaluation would.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field

from ..dnsclient import DNSError, Resolver, mx_records, normalize_name, txt_records
from ..domains.dmarc import organizational_domain
from ..records.dnsbl import expand_network
from ..records.spf import MAX_DNS_LOOKUPS, Mechanism, Qualifier, SPFError, parse_spf, select_spf_records

MAX_LOOKUPS = MAX_DNS_LOOKUPS
MAX_MX_HOSTS = 10
MAX_ADDRESSES = 256     # per domain: beyond this the rest is skipped


@dataclass(frozen=True)
class SPFAddresses:
    addresses: tuple[tuple[str, str], ...] = ()   # (address, the term that authorises it)
    skipped: tuple[str, ...] = ()                 # terms not checked, each with why
    failure: str | None = None                    # the walk stopped: a lookup failed


@dataclass
class _Walk:
    dns: Resolver
    organization: str
    lookups: int = 0
    addresses: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def spend_lookup(self, term: str) -> bool:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            self.skipped.append(f"{term}: beyond {MAX_LOOKUPS} lookups")
            return False
        return True

    def add_network(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, term: str) -> None:
        addresses = expand_network(network)
        if addresses is None:
            self.skipped.append(f"{term}: {network} has {network.num_addresses} addresses "
                                f"(networks up to /29 and /125 are checked)")
            return
        for address in addresses:
            if len(self.addresses) >= MAX_ADDRESSES:
                self.skipped.append(f"{term}: beyond {MAX_ADDRESSES} addresses")
                return
            self.addresses.setdefault(address, term)


async def spf_addresses(domain: str, dns: Resolver) -> SPFAddresses:
    walk = _Walk(dns, organizational_domain(domain))
    try:
        await _walk_record(walk, domain, (domain,))
    except DNSError as exc:
        return SPFAddresses(failure=str(exc))
    return SPFAddresses(tuple(walk.addresses.items()), tuple(walk.skipped))


async def _walk_record(walk: _Walk, domain: str, chain: tuple[str, ...]) -> None:
    texts = select_spf_records(await txt_records(walk.dns, domain))
    if len(texts) != 1:
        if chain[1:]:
            walk.skipped.append(f"{domain}: {len(texts)} SPF records")
        return
    try:
        record = parse_spf(texts[0])
    except SPFError as exc:
        walk.skipped.append(f"{domain}: invalid SPF record ({exc})")
        return
    for mechanism in record.effective_mechanisms:
        if mechanism.qualifier is Qualifier.PASS:
            await _walk_mechanism(walk, mechanism, domain, chain)
    if record.redirect_applies and record.redirect is not None:
        target = _own_target(walk, record.redirect, f"redirect={record.redirect}", chain)
        if target is not None and walk.spend_lookup(f"redirect={record.redirect}"):
            await _walk_record(walk, target, chain + (target,))


def _own_target(walk: _Walk, spec: str, term: str, chain: tuple[str, ...]) -> str | None:
    """The name an include or redirect points at, if it is followed (see the module doc)."""
    if "%" in spec:
        walk.skipped.append(f"{term}: depends on the sender (macro)")
        return None
    target = normalize_name(spec)
    if target in chain:
        walk.skipped.append(f"{term}: a loop")
        return None
    if organizational_domain(target) != walk.organization:
        walk.skipped.append(f"{term}: another organization's addresses")
        return None
    return target


async def _walk_mechanism(walk: _Walk, mechanism: Mechanism, domain: str, chain: tuple[str, ...]) -> None:
    term = f"{mechanism.text} (SPF of {domain})"
    if mechanism.network is not None:
        walk.add_network(mechanism.network, term)
    elif mechanism.name == "include":
        target = _own_target(walk, mechanism.domain_spec or "", term, chain)
        if target is not None and walk.spend_lookup(term):
            await _walk_record(walk, target, chain + (target,))
    elif mechanism.name in ("a", "mx"):
        spec = mechanism.domain_spec or domain
        if "%" in spec:
            walk.skipped.append(f"{term}: depends on the sender (macro)")
        elif walk.spend_lookup(term):
            hosts = [normalize_name(spec)]
            if mechanism.name == "mx":
                hosts = [mx.exchange for mx in await mx_records(walk.dns, hosts[0]) if mx.exchange][:MAX_MX_HOSTS]
            for address in await _addresses(walk.dns, hosts):
                prefix = mechanism.ip4_prefix_length if ":" not in address else mechanism.ip6_prefix_length
                network = ipaddress.ip_network(f"{address}/{prefix}" if prefix is not None else address, strict=False)
                walk.add_network(network, term)


async def _addresses(dns: Resolver, hosts: list[str]) -> list[str]:
    """The A and AAAA addresses of `hosts`; a host without any gives none."""
    answers = await asyncio.gather(*(_records(dns, host, rdtype) for host in hosts for rdtype in ("A", "AAAA")))
    return [address for answer in answers for address in answer]


async def _records(dns: Resolver, host: str, rdtype: str) -> list[str]:
    try:
        return [rdata.address for rdata in (await dns.lookup(host, rdtype)).records]
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            return []
        raise
