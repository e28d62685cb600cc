"""Which targets and domains /probe may check: the guard against server-side request forgery.

Without it, anyone who reaches the exporter could make it open connections anywhere,
internal networks included. `admit` lets a target through only when it matches one of
the config's `probe.allowed_targets` patterns:

- an IP literal must fall in one of the network patterns;
- a DNS name passes when a name glob matches it; the probe then resolves it as usual,
  so the name's owner decides where it points;
- otherwise a DNS name passes when every address it resolves to (through the config's DNS
  client, as the probe would) falls in a network pattern. The probe is then given exactly
  those checked addresses, so a second lookup answering differently (DNS rebinding)
  cannot send it elsewhere.

A domain passes when one of `probe.allowed_domains` (globs) matches its name.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Callable, Sequence

from ..config import TargetPattern
from ..dnsclient import DNSClient, DNSError, PinnedResolver
from ..domains.mx import non_public_kind


class TargetRefused(Exception):
    """/probe must not connect to this target. str() says why, for the HTTP answer."""


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def admit(
    host: str, port: int, patterns: Sequence[TargetPattern], dns: DNSClient
) -> DNSClient | PinnedResolver:
    """The resolver the probe of host:port must use, or TargetRefused.

    `host` is normalized (parse_host): a canonical IP literal or a lower-case DNS name.
    """
    if not patterns:
        raise TargetRefused("/probe is disabled: the configuration has no probe.allowed_targets")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    not_allowed = f"target {address} is not allowed by probe.allowed_targets"
    if _is_ip_literal(host):
        if any(pattern.matches_address(host, port) for pattern in patterns):
            return dns
        raise TargetRefused(not_allowed)
    if any(pattern.matches_name(host, port) for pattern in patterns):
        return dns
    networks = [pattern for pattern in patterns if pattern.network is not None and pattern.matches_port(port)]
    if not networks:
        raise TargetRefused(not_allowed)
    try:
        addresses = await dns.resolve_addresses(host)
    except DNSError as exc:
        raise TargetRefused(f"{not_allowed} by name, and its addresses could not be checked: {exc}") from None
    outside = [a for a in addresses if not any(pattern.matches_address(a, port) for pattern in networks)]
    if outside:
        raise TargetRefused(f"{not_allowed}: {host} resolves to {', '.join(outside)}, outside the allowed networks")
    return PinnedResolver(host, addresses, dns)


def public_or_allowed(patterns: Sequence[TargetPattern]) -> Callable[[str], bool]:
    """Where a check a request asked for may connect (an MTA-STS policy host, port 443):
    public addresses, and the others (loopback, private, link-local, unique-local...) only
    when a network pattern of probe.allowed_targets names them. The safe default needs no
    configuration: a domain's owner cannot aim the exporter at an internal address."""
    def allowed(address: str) -> bool:
        return non_public_kind(address) is None or any(p.matches_address(address, 443) for p in patterns)
    return allowed


def admit_domain(name: str, patterns: Sequence[str]) -> None:
    """TargetRefused unless a `probe.allowed_domains` glob matches `name` (normalized)."""
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
        raise TargetRefused(f"domain {name}: not allowed by probe.allowed_domains"
                            + ("" if patterns else " (empty: /probe checks no domain)"))
