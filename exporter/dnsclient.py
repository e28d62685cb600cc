"""The one place that talks to dnspython.

Every lookup the exporter makes goes through a `DNSClient`, so that the configured
nameservers, port, timeout and retries apply everywhere, the target host names included.
"""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from .config import DNSSettings


class DNSError(Exception):
    """A lookup failed (NXDOMAIN, no answer, SERVFAIL, timeout). str() says which."""


class DNSClient:
    def __init__(self, settings: DNSSettings):
        self.settings = settings
        if settings.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(ns.address, ns.port) for ns in settings.nameservers
            ]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = settings.timeout
        resolver.timeout = settings.timeout / (settings.retries + 1)
        self._resolver = resolver

    async def resolve_addresses(self, host: str) -> list[str]:
        """IP addresses of `host`: IPv4 first, then IPv6. An IP literal is returned as is."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        addresses: list[str] = []
        errors: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, rdtype)
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NXDOMAIN:
                raise DNSError(f"{host}: no such domain (NXDOMAIN)") from None
            except dns.exception.Timeout:
                errors.append(f"{rdtype} lookup timed out")
                continue
            except dns.exception.DNSException as exc:
                errors.append(f"{rdtype}: {exc}")
                continue
            addresses.extend(rdata.address for rdata in answer)
        if not addresses:
            raise DNSError(f"{host}: no address" + (f" ({'; '.join(errors)})" if errors else ""))
        return addresses
