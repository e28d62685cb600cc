"""Do an SMTP server's names agree? The host name in its greeting, the one in its EHLO
reply, the PTR of the address the probe connected to (forward-confirmed) and the names of
its certificate. Receivers score a mismatch; a well-run MX has one name everywhere.

Names are compared without regard to case or a final dot; a certificate name matches as
RFC 6125 says (`certs.dns_name_matches`: a wildcard stands for exactly one left-most label).
"""

from __future__ import annotations

import ipaddress
import re

from ..certs import dns_name_matches
from ..dnsclient import DNSError, Resolver, addresses_of, ptr_names
from ..results import CertificateInfo, NameFacts, NamePair

# A host name as servers write it in greetings: LDH labels, maybe a final dot. An address
# literal ("[192.0.2.1]") or a word such as "ESMTP" with characters outside these is no name.
_HOST_NAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?")


def normalized_name(name: str) -> str:
    return name.rstrip(".").lower()


def leading_host_name(text: str | None) -> str | None:
    """The host name a greeting or EHLO reply text starts with ("mx.example.org ESMTP"),
    normalized; None when it starts with something else (an address literal, nothing)."""
    if not text:
        return None
    first = text.split(None, 1)[0] if text.strip() else ""
    if len(first) > 254 or not _HOST_NAME.fullmatch(first):
        return None
    return normalized_name(first)


async def forward_confirmed_ptr(dns: Resolver, address: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every PTR name of `address`, those whose addresses include it). Raises DNSError when
    a lookup fails; a PTR name that does not exist simply is not confirmed."""
    names = tuple(await ptr_names(dns, address))
    confirmed = []
    for name in names:
        try:
            if address in await addresses_of(dns, name):
                confirmed.append(name)
        except DNSError as exc:
            if not exc.kind.is_negative_answer:
                raise
    return names, tuple(confirmed)


def certificate_dns_names(leaf: CertificateInfo) -> tuple[str, ...]:
    """The leaf's DNS subjectAltNames (its IP address SANs left out)."""
    names = []
    for san in leaf.sans:
        try:
            ipaddress.ip_address(san)
        except ValueError:
            names.append(normalized_name(san))
    return tuple(names)


def _one(name: str | None) -> tuple[str, ...] | None:
    return (name,) if name is not None else None


def _agree(left: tuple[str, ...] | None, right: tuple[str, ...] | None, *, right_is_cert: bool) -> bool | None:
    """Some name of `left` is some name of `right` (matched as a certificate name when
    `right_is_cert`); None when either side is unknown. An empty side never agrees."""
    if left is None or right is None:
        return None
    if right_is_cert:
        return any(dns_name_matches(pattern, name) for name in left for pattern in right)
    return bool(set(left) & set(right))


def compare_names(
    greeting_text: str | None,
    ehlo_reply_text: str | None,
    ptr: tuple[tuple[str, ...], tuple[str, ...]] | None,
    leaf: CertificateInfo | None,
) -> NameFacts:
    """The names and the verdict on each pair whose two sides are known. `ptr` is (PTR names,
    the forward-confirmed ones), None when not looked up; only confirmed names count."""
    greeting = leading_host_name(greeting_text)
    ehlo = leading_host_name(ehlo_reply_text)
    ptr_all, ptr_confirmed = ptr if ptr is not None else (None, None)
    cert = certificate_dns_names(leaf) if leaf is not None else None
    verdicts = {
        NamePair.GREETING_EHLO: _agree(_one(greeting), _one(ehlo), right_is_cert=False),
        NamePair.GREETING_PTR: _agree(_one(greeting), ptr_confirmed, right_is_cert=False),
        NamePair.GREETING_CERT: _agree(_one(greeting), cert, right_is_cert=True),
        NamePair.EHLO_PTR: _agree(_one(ehlo), ptr_confirmed, right_is_cert=False),
        NamePair.EHLO_CERT: _agree(_one(ehlo), cert, right_is_cert=True),
        NamePair.PTR_CERT: _agree(ptr_confirmed, cert, right_is_cert=True),
    }
    return NameFacts(
        greeting_name=greeting,
        ehlo_name=ehlo,
        ptr_names=ptr_all,
        ptr_confirmed=ptr_confirmed,
        cert_names=cert,
        compared=frozenset(pair for pair, agrees in verdicts.items() if agrees is not None),
        disagreeing=frozenset(pair for pair, agrees in verdicts.items() if agrees is False),
    )
