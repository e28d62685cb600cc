"""DKIM keys (RFC 6376 §3.6) of the configured selectors, at <selector>._domainkey.<domain>.

A selector with several key records is ambiguous (verifiers may pick any, §3.6.2.2):
reported as invalid, like a record that does not parse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from dataclasses import dataclass
from typing import Callable, Iterable

from ..config import Domain

from ..dnsclient import DNSError, Resolver, txt_records
from ..records.dkim import RECOMMENDED_RSA_BITS, DKIMError, DKIMKey, parse_dkim_key
from .common import CheckFailure, Finding, Severity, failure_from


class SelectorSource(enum.StrEnum):
    """Where the exporter learnt a selector: the configuration promises it signs mail; a DMARC
    report says it did, which may have been before the key was retired."""
    CONFIGURED = "configured"
    REPORTED = "reported"


@dataclass(frozen=True)
class DKIMSelectorResult:
    selector: str
    failure: CheckFailure | None
    source: SelectorSource = SelectorSource.CONFIGURED
    key: DKIMKey | None = None       # the one valid key record
    records: int = 0                 # TXT records at the selector's name
    error: str | None = None         # why no key is usable

    @property
    def present(self) -> bool:
        """A usable, not revoked key is published."""
        return self.key is not None and not self.key.revoked


@dataclass(frozen=True)
class DKIMResult:
    selectors: tuple[DKIMSelectorResult, ...]
    findings: tuple[Finding, ...]

    @property
    def failure(self) -> CheckFailure | None:
        return next((s.failure for s in self.selectors if s.failure), None)


async def check_dkim(domain: str, selectors: tuple[str, ...], dns: Resolver,
                     reported: tuple[str, ...] = ()) -> DKIMResult:
    """The keys of `selectors`; those also in `reported` came from DMARC reports."""
    results = await asyncio.gather(*(
        _selector(domain, selector, dns, SelectorSource.REPORTED if selector in reported else SelectorSource.CONFIGURED)
        for selector in selectors))
    findings = [finding for result in results for finding in _findings(domain, result)]
    return DKIMResult(tuple(results), tuple(findings))


async def _selector(domain: str, selector: str, dns: Resolver, source: SelectorSource) -> DKIMSelectorResult:
    try:
        texts = await txt_records(dns, f"{selector}._domainkey.{domain}")
    except DNSError as exc:
        return DKIMSelectorResult(selector, failure_from(exc), source)
    if len(texts) != 1:
        return DKIMSelectorResult(selector, None, source, records=len(texts),
                                  error=f"{len(texts)} TXT records" if texts else "no key record")
    try:
        return DKIMSelectorResult(selector, None, source, key=parse_dkim_key(texts[0]), records=1)
    except DKIMError as exc:
        return DKIMSelectorResult(selector, None, source, records=1, error=str(exc))


def _findings(domain: str, result: DKIMSelectorResult) -> list[Finding]:
    name = f"{result.selector}._domainkey.{domain}"
    if result.failure:
        return []
    if result.key is None and not result.records and result.source is SelectorSource.REPORTED:
        # Keys are rotated: a selector that signed last month may be gone on purpose.
        return [Finding(Severity.INFO, "dkim_reported_key_missing",
                        f"{name}: no key record; DMARC reports showed mail signed with this selector",
                        "nothing to do if the selector was retired; otherwise publish its key again")]
    if result.key is None:
        return [Finding(Severity.ERROR, "dkim_key_invalid" if result.records else "dkim_key_missing",
                        f"{name}: {result.error}", "publish exactly one valid key record for the selector, or stop configuring it")]
    key = result.key
    if key.revoked:
        return [Finding(Severity.INFO, "dkim_key_revoked", f"{name}: the key is revoked (empty p=)",
                        "remove the selector from the configuration once no mail is signed with it")]
    found = [Finding(Severity.ERROR if w.code in ("rsa_key_unusable", "sha1_only", "not_for_email") else Severity.WARNING,
                     f"dkim_{w.code}", f"{name}: {w.message}",
                     f"publish a {RECOMMENDED_RSA_BITS}-bit RSA or an ed25519 key with h=sha256 or no h="
                     if w.code != "testing" else "remove t=y once signing works")
             for w in key.warnings]
    return found


# The selectors a domain signs with, as others saw them (the passing DKIM signatures of its
# DMARC reports): given a domain name, its selectors, most recently seen first.
SelectorFeed = Callable[[str], Iterable[str]]


def with_reported_selectors(domain: Domain, feed: SelectorFeed) -> Domain:
    """`domain` with the selectors of `feed` checked too, after the configured ones (a
    selector is one DNS label: the same selector in another case is not added twice)."""
    known = {selector.lower() for selector in domain.dkim_selectors}
    reported = tuple(selector for selector in feed(domain.name) if selector.lower() not in known)
    if not reported:
        return domain
    return dataclasses.replace(domain, dkim_selectors=domain.dkim_selectors + reported,
                               reported_dkim_selectors=reported)
