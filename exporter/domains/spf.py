"""SPF (RFC 7208): the domain's record and everything it pulls in through include and
redirect, evaluated without a sending IP address.

What an evaluation for the worst-case sender (one that matches nothing) would meet is
checked: every DNS-querying term counts against the limit of 10 (§4.6.4), lookups that
find nothing ("void lookups") against the limit of 2, and the permerrors of the RFC are
reported where it puts them: more than one record (§4.5), a syntax error (§4.6), an
include target without a record (§5.2), a redirect target without a record (§6.1), a
limit exceeded (§4.6.4). An include or redirect loop would exceed the lookup limit; it is
reported as a loop as soon as a domain reappears in its own include chain. Terms whose
domain depends on macros (%{i}, %{s}...) need the sender, so they are counted but not
followed.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from dataclasses import dataclass, field

from ..dnsclient import DNSError, Resolver, normalize_name, txt_records
from ..records.spf import (
    MAX_DNS_LOOKUPS,
    MacroContext,
    MacroExpand,
    Mechanism,
    Qualifier,
    SPFError,
    expand_macros,
    parse_macro_string,
    parse_spf,
    select_spf_records,
    truncate_domain,
)
from .common import CheckFailure, Finding, Severity, failure_from

MAX_VOID_LOOKUPS = 2          # RFC 7208 §4.6.4
MAX_MX_NAMES = 10             # RFC 7208 §4.6.4: an mx term may look at no more than 10 MX names


class SPFOutcome(enum.StrEnum):
    NONE = "none"             # the domain has no SPF record
    VALID = "valid"           # an evaluation can always complete
    PERMERROR = "permerror"   # receivers treat the record as broken


# Metric label value of each `all` qualifier.
QUALIFIER_NAMES = {
    Qualifier.PASS: "pass", Qualifier.FAIL: "fail", Qualifier.SOFTFAIL: "softfail", Qualifier.NEUTRAL: "neutral",
}


@dataclass(frozen=True)
class SPFResult:
    failure: CheckFailure | None       # a lookup failed: RFC 7208's temperror
    records: int = 0                   # SPF records at the domain itself
    outcome: SPFOutcome = SPFOutcome.NONE
    error: str | None = None           # why permerror
    dns_lookups: int = 0               # DNS-querying terms met, includes and redirects followed
    void_lookups: int = 0
    all_qualifier: Qualifier | None = None   # of the final record (after redirects); None: no `all`
    findings: tuple[Finding, ...] = ()


class _PermError(Exception):
    pass


class _NoRecord(Exception):
    """The domain has no SPF record: what that means depends on who asked (§5.2, §6.1)."""


@dataclass
class _Evaluation:
    dns: Resolver
    lookups: int = 0
    voids: int = 0
    findings: list[Finding] = field(default_factory=list)

    def count_lookup(self, term: str, domain: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_DNS_LOOKUPS:
            raise _PermError(f"more than {MAX_DNS_LOOKUPS} DNS-querying terms ({term!r} in the record of {domain})")

    def count_void(self, term: str, domain: str) -> None:
        self.voids += 1
        if self.voids > MAX_VOID_LOOKUPS:
            raise _PermError(f"more than {MAX_VOID_LOOKUPS} lookups found nothing ({term!r} in the record of {domain})")
        # Within the limit it is no error, but the term authorizes nothing: a typo or a leftover.
        self.findings.append(Finding(
            Severity.WARNING, "spf_mechanism_no_records",
            f"{term!r} in the SPF record of {domain} finds no records", "fix the name or remove the term",
        ))


async def check_spf(domain: str, dns: Resolver) -> SPFResult:
    try:
        count = len(select_spf_records(await txt_records(dns, domain)))
    except DNSError as exc:
        return SPFResult(failure=failure_from(exc))
    if count == 0:
        return SPFResult(failure=None, findings=(Finding(
            Severity.ERROR, "spf_missing", f"{domain} has no SPF record",
            "publish one, e.g. 'v=spf1 mx -all', or 'v=spf1 -all' if the domain sends no mail",
        ),))
    evaluation = _Evaluation(dns)
    outcome, error, qualifier = SPFOutcome.VALID, None, None
    try:
        qualifier = await _evaluate(evaluation, domain, (domain,))
    except _PermError as exc:
        outcome, error = SPFOutcome.PERMERROR, str(exc)
        evaluation.findings.append(Finding(
            Severity.ERROR, "spf_permerror", f"SPF of {domain} is a permerror: {error}",
            "fix the record: receivers treat a permerror as if there were no SPF, or reject",
        ))
    except DNSError as exc:
        return SPFResult(failure=failure_from(exc), records=count)
    if outcome is SPFOutcome.VALID:
        evaluation.findings.extend(_qualifier_findings(domain, qualifier))
    return SPFResult(
        failure=None, records=count, outcome=outcome, error=error, dns_lookups=evaluation.lookups,
        void_lookups=evaluation.voids, all_qualifier=qualifier, findings=tuple(evaluation.findings),
    )


async def _record_of(evaluation: _Evaluation, domain: str):
    """The one SPF record of `domain`, parsed; None when it has none."""
    texts = select_spf_records(await txt_records(evaluation.dns, domain))
    if not texts:
        return None
    if len(texts) > 1:
        raise _PermError(f"{domain} has {len(texts)} SPF records (RFC 7208 §4.5 allows one)")
    try:
        return parse_spf(texts[0])
    except SPFError as exc:
        raise _PermError(f"syntax error in the record of {domain}: {exc}") from None


async def _evaluate(evaluation: _Evaluation, domain: str, chain: tuple[str, ...]) -> Qualifier | None:
    """Walk the record of `domain`; returns the qualifier of the `all` that ends it."""
    record = await _record_of(evaluation, domain)
    if record is None:
        raise _NoRecord(domain)
    for warning in record.warnings:
        if warning.code not in ("too_many_dns_lookups", "permissive_all", "implicit_neutral"):
            evaluation.findings.append(Finding(
                Severity.WARNING, f"spf_{warning.code}", f"{domain}: {warning.message}",
                "remove or replace the term named",
            ))
    for mechanism in record.effective_mechanisms:
        if mechanism.costs_dns_lookup:
            evaluation.count_lookup(mechanism.text, domain)
            await _follow(evaluation, mechanism, domain, chain)
    if record.redirect_applies:
        target = _redirect_target(evaluation, record.redirect, domain)
        return None if target is None else await _nested(_evaluate, evaluation, "redirect", target, chain)
    return record.all_qualifier


_MISSING_TARGET = {"include": "RFC 7208 §5.2", "redirect": "RFC 7208 §6.1"}


async def _nested(walk, evaluation: _Evaluation, term: str, target: str, chain: tuple[str, ...]):
    """`walk` (one of the two walkers of a record) run on the record an include or a redirect names."""
    _check_loop(target, chain)
    try:
        return await walk(evaluation, target, chain + (target,))
    except _NoRecord:
        raise _PermError(f"{term} target {target} has no SPF record ({_MISSING_TARGET[term]})") from None


def _redirect_target(evaluation: _Evaluation, redirect: str, domain: str) -> str | None:
    """The domain a redirect that applies names, its lookup counted; None if it needs the sender."""
    evaluation.count_lookup(f"redirect={redirect}", domain)
    return _static_target(evaluation, redirect, domain)


async def _mx_names(evaluation: _Evaluation, mechanism: Mechanism, target: str, domain: str) -> list[str]:
    """The MX host names of an mx term's target; none (a void lookup) when it has no MX."""
    answer = await _positive(evaluation.dns, target, "MX")
    if answer is None:
        evaluation.count_void(mechanism.text, domain)
        return []
    if len(answer.records) > MAX_MX_NAMES:
        raise _PermError(f"{mechanism.text!r}: {target} has more than {MAX_MX_NAMES} MX records")
    return [rdata.exchange for rdata in answer.records]


async def _follow(evaluation: _Evaluation, mechanism: Mechanism, domain: str, chain: tuple[str, ...]) -> None:
    if mechanism.name == "ptr":
        return   # depends on the sender's address; the parser already warns about it
    target = _static_target(evaluation, mechanism.domain_spec or domain, domain)
    if target is None:
        return
    if mechanism.name == "include":
        await _nested(_evaluate, evaluation, "include", target, chain)
    elif mechanism.name == "mx":
        await _mx_names(evaluation, mechanism, target, domain)
    else:   # a, exists
        rdtypes = ("A",) if mechanism.name == "exists" else ("A", "AAAA")
        answers = await asyncio.gather(*(_positive(evaluation.dns, target, rdtype) for rdtype in rdtypes))
        if all(answer is None for answer in answers):
            evaluation.count_void(mechanism.text, domain)


async def _positive(dns: Resolver, name: str, rdtype: str):
    """The answer, or None for NXDOMAIN/NODATA; other errors propagate (temperror)."""
    try:
        return await dns.lookup(name, rdtype)
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            return None
        raise


def _static_target(evaluation: _Evaluation, domain_spec: str, domain: str) -> str | None:
    """The name a term points at, or None when it depends on the sender (a finding says so).
    %{d}, the domain being checked, is the one macro known without a sender."""
    macros = {piece.letter.lower() for piece in parse_macro_string(domain_spec) if isinstance(piece, MacroExpand)}
    if not macros <= {"d"}:
        evaluation.findings.append(Finding(
            Severity.INFO, "spf_macro_not_followed",
            f"{domain}: {domain_spec!r} depends on the sender and was not followed",
            "nothing to fix; lookups behind macros are not counted beyond the term itself",
        ))
        return None
    # Only %{d} may be read: the sender, address and HELO of this context never are.
    context = MacroContext(sender=f"postmaster@{domain}", domain=domain, ip=ipaddress.ip_address("0.0.0.0"), helo=domain)
    return normalize_name(truncate_domain(expand_macros(domain_spec, context)))


def _check_loop(target: str, chain: tuple[str, ...]) -> None:
    if target in chain:
        raise _PermError("include/redirect loop: " + " -> ".join(chain + (target,)))


def _qualifier_findings(domain: str, qualifier: Qualifier | None) -> list[Finding]:
    if qualifier is Qualifier.PASS:
        return [Finding(Severity.ERROR, "spf_pass_all", f"the SPF of {domain} ends in +all: anyone may send as {domain}",
                        "end the record with -all (or ~all while testing)")]
    if qualifier is Qualifier.NEUTRAL:
        return [Finding(Severity.WARNING, "spf_neutral_all", f"the SPF of {domain} ends in ?all: it refuses no sender",
                        "end the record with -all or ~all")]
    if qualifier is None:
        return [Finding(Severity.WARNING, "spf_no_all", f"the SPF of {domain} has no 'all': unlisted senders get neutral",
                        "end the record with -all or ~all")]
    return []


# --- which addresses the record authorizes (DMARC reports' source addresses) ---------------

_EVERY_ADDRESS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SPFDirective:
    """What one mechanism matches: address ranges, or the addresses an included record passes."""

    qualifier: Qualifier
    networks: tuple[IPNetwork, ...] = ()
    included: SPFAuthorizer | None = None


@dataclass(frozen=True)
class SPFAuthorizer:
    """An SPF record resolved into address ranges, in evaluation order, includes and redirect
    followed, so that many addresses can be judged without a lookup each. Mechanisms that
    depend on the sender (ptr, macros other than %{d}) match nothing here: an address only
    they would authorize is judged not authorized."""

    directives: tuple[SPFDirective, ...]
    redirect: SPFAuthorizer | None = None

    def result(self, address: IPAddress) -> Qualifier | None:
        """The qualifier of the first directive matching `address` (RFC 7208 §4.6.2); None: neutral."""
        for directive in self.directives:
            if directive.included is not None:
                if directive.included.result(address) is Qualifier.PASS:
                    return directive.qualifier
            elif any(address.version == network.version and address in network for network in directive.networks):
                return directive.qualifier
        return self.redirect.result(address) if self.redirect is not None else None

    def authorizes(self, address: IPAddress) -> bool:
        return self.result(address) is Qualifier.PASS


class SPFUnavailable(Exception):
    """The record could not be resolved: a lookup failed (temperror) or it is a permerror."""


async def spf_authorizer(domain: str, dns: Resolver) -> SPFAuthorizer | None:
    """The ranges the SPF record of `domain` authorizes; None when it has no record (it
    authorizes nobody). SPFUnavailable when a lookup fails or the record is a permerror."""
    try:
        return await _authorizer(_Evaluation(dns), domain, (domain,))
    except _NoRecord:
        return None
    except (_PermError, DNSError) as exc:
        raise SPFUnavailable(str(exc)) from None


async def _authorizer(evaluation: _Evaluation, domain: str, chain: tuple[str, ...]) -> SPFAuthorizer:
    record = await _record_of(evaluation, domain)
    if record is None:
        raise _NoRecord(domain)
    directives = []
    for mechanism in record.effective_mechanisms:
        if mechanism.costs_dns_lookup:
            evaluation.count_lookup(mechanism.text, domain)
        directive = await _directive(evaluation, mechanism, domain, chain)
        if directive is not None:
            directives.append(directive)
    redirect = None
    if record.redirect_applies:
        target = _redirect_target(evaluation, record.redirect, domain)
        redirect = None if target is None else await _nested(_authorizer, evaluation, "redirect", target, chain)
    return SPFAuthorizer(tuple(directives), redirect)


async def _directive(
    evaluation: _Evaluation, mechanism: Mechanism, domain: str, chain: tuple[str, ...]
) -> SPFDirective | None:
    """What `mechanism` matches; None when it matches nothing known without the sender."""
    if mechanism.name == "all":
        return SPFDirective(mechanism.qualifier, _EVERY_ADDRESS)
    if mechanism.network is not None:    # ip4, ip6
        return SPFDirective(mechanism.qualifier, (mechanism.network,))
    target = None if mechanism.name == "ptr" else _static_target(evaluation, mechanism.domain_spec or domain, domain)
    if target is None:
        return None
    if mechanism.name == "include":
        return SPFDirective(mechanism.qualifier, included=await _nested(_authorizer, evaluation, "include", target, chain))
    if mechanism.name == "exists":
        found = await _positive(evaluation.dns, target, "A") is not None
        if not found:
            evaluation.count_void(mechanism.text, domain)
        return SPFDirective(mechanism.qualifier, _EVERY_ADDRESS) if found else None
    hosts = await _mx_names(evaluation, mechanism, target, domain) if mechanism.name == "mx" else [target]
    networks = [network for host in hosts for network in await _host_networks(evaluation.dns, host, mechanism)]
    if not networks and mechanism.name == "a":
        evaluation.count_void(mechanism.text, domain)
    return SPFDirective(mechanism.qualifier, tuple(networks))


async def _host_networks(dns: Resolver, host: str, mechanism: Mechanism) -> list[IPNetwork]:
    """The addresses of `host`, widened by the mechanism's prefix lengths (a/24, mx//64)."""
    networks: list[IPNetwork] = []
    ip4 = 32 if mechanism.ip4_prefix_length is None else mechanism.ip4_prefix_length
    ip6 = 128 if mechanism.ip6_prefix_length is None else mechanism.ip6_prefix_length
    for rdtype, length in (("A", ip4), ("AAAA", ip6)):
        answer = await _positive(dns, host, rdtype)
        for rdata in answer.records if answer is not None else ():
            networks.append(ipaddress.ip_network(f"{rdata.address}/{length}", strict=False))
    return networks
