"""DNSSEC status of a name, as the configured validating resolver reports it.

secure:   the resolver set the AD bit: it validated the answer (or the proof that there
          is none) up to a trust anchor.
insecure: an answer without AD: the zone is unsigned, or the resolver does not validate.
bogus:    SERVFAIL, while the same query with CD (checking disabled) is answered: the data
          is there but fails validation (bad signature, DS of another key, expired RRSIG).
A SERVFAIL with CD too, or a timeout, is no status: the check fails instead.

The status is only as trustworthy as the resolver and the path to it (docs/domains.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..dnsclient import DNSError, DNSErrorKind, Resolver
from .common import CheckFailure, failure_from


class DNSSECStatus(enum.StrEnum):
    INSECURE = "insecure"
    SECURE = "secure"
    BOGUS = "bogus"


@dataclass(frozen=True)
class NameDNSSEC:
    name: str                          # the domain or an MX host
    status: DNSSECStatus | None        # None when the check failed
    failure: CheckFailure | None = None


async def dnssec_status(dns: Resolver, name: str, rdtype: str) -> NameDNSSEC:
    """The status of the `rdtype` RRset at `name` (MX for a domain, A for a host)."""
    try:
        answer = await dns.lookup(name, rdtype)
        return NameDNSSEC(name, DNSSECStatus.SECURE if answer.authenticated else DNSSECStatus.INSECURE)
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            return NameDNSSEC(name, DNSSECStatus.SECURE if exc.authenticated else DNSSECStatus.INSECURE)
        if exc.kind is not DNSErrorKind.SERVFAIL:
            return NameDNSSEC(name, None, failure_from(exc))
        first_error = exc
    try:
        await dns.lookup(name, rdtype, checking_disabled=True)
    except DNSError as exc:
        if not exc.kind.is_negative_answer:
            return NameDNSSEC(name, None, failure_from(first_error))
    return NameDNSSEC(name, DNSSECStatus.BOGUS)
