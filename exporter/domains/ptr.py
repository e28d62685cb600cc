"""Reverse DNS of the MX addresses, forward-confirmed (FCrDNS): some PTR name of the
address must resolve back to that address. Many receivers distrust senders without it,
and a mail host usually sends as well as receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..dnsclient import DNSError, Resolver, addresses_of, ptr_names
from .common import CheckFailure, Finding, Severity, failure_from


@dataclass(frozen=True)
class ReverseDNS:
    mx: str
    address: str
    ptr_names: tuple[str, ...] = ()
    forward_confirmed: bool = False
    failure: CheckFailure | None = None


async def check_reverse_dns(dns: Resolver, mx: str, address: str) -> ReverseDNS:
    try:
        names = await ptr_names(dns, address)
        confirmed = False
        for name in names:
            try:
                confirmed = address in await addresses_of(dns, name)
            except DNSError as exc:
                if not exc.kind.is_negative_answer:
                    raise
            if confirmed:
                break
    except DNSError as exc:
        return ReverseDNS(mx, address, failure=failure_from(exc))
    return ReverseDNS(mx, address, tuple(names), confirmed)


async def check_all_reverse_dns(dns: Resolver, hosts: list[tuple[str, str]]) -> tuple[ReverseDNS, ...]:
    return tuple(await asyncio.gather(*(check_reverse_dns(dns, mx, address) for mx, address in hosts)))


def reverse_dns_findings(results: tuple[ReverseDNS, ...]) -> list[Finding]:
    found = []
    for result in results:
        if result.failure is None and not result.forward_confirmed:
            what = f"PTR {', '.join(result.ptr_names)} does not resolve back to it" if result.ptr_names else "no PTR record"
            found.append(Finding(Severity.WARNING, "fcrdns_failed", f"MX {result.mx} address {result.address}: {what}",
                                 f"set the PTR of {result.address} to {result.mx} (ask the address owner)"))
    return found
