"""One run of every DNS check of a mail domain.

The checks share one `LookupCache`, so a name several checks need (the MX hosts' addresses,
say) is looked up once per run and every check sees the same answer.

Two inputs come from outside DNS: the certificate chain each MX host presented on port 25
(`chain_for`, from the core TLS probe; DANE is not evaluated without it), and the CA file
the MTA-STS policy host's certificate is verified against (None: the system store).
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from ..config import Domain
from ..dnsclient import DNSClient, LookupCache
from .bimi import BIMIResult, check_bimi
from .common import CheckFailure, CheckFailureReason, Finding
from .dane import ChainFor, MXDANE, check_dane, dane_findings
from .dkim import DKIMResult, check_dkim
from .dmarc import DMARCResult, check_dmarc
from .dnssec import NameDNSSEC, dnssec_status
from .mtasts import MTASTSResult, check_mta_sts, judge_mx_coverage
from .mx import MXResult, check_mx
from .policy_fetch import AddressAllowed
from .ptr import ReverseDNS, check_all_reverse_dns, reverse_dns_findings
from .spf import SPFResult, check_spf
from .tlsrpt import TLSRPTResult, check_tlsrpt


@dataclass(frozen=True)
class DomainResult:
    domain: str
    observed_at: float                 # Unix seconds when the run started
    duration_seconds: float
    mx: MXResult
    spf: SPFResult
    dmarc: DMARCResult
    dkim: DKIMResult
    mta_sts: MTASTSResult
    tlsrpt: TLSRPTResult
    bimi: BIMIResult
    dnssec: tuple[NameDNSSEC, ...]     # the domain first, then each MX host
    reverse_dns: tuple[ReverseDNS, ...]   # one per MX address
    dane: tuple[MXDANE, ...]           # one per named MX host
    interval_seconds: float | None = None   # how often the scheduler runs it; None for /probe and the CLI

    def check_failures(self) -> dict[CheckName, CheckFailure | None]:
        """Each check by name, with why it could not run (None when it ran)."""
        return {check.name: check.failure(self) for check in CHECKS}

    @property
    def success(self) -> bool:
        """True when every check could run (whatever it found)."""
        return all(failure is None for failure in self.check_failures().values())

    @property
    def checked(self) -> bool:
        """False when the lookups every run makes (MX, SPF, DMARC) all failed on a DNS
        timeout or an unusable resolver, which says more about the exporter's DNS than
        about the domain. A refused MTA-STS policy host or a SERVFAIL (bogus DNSSEC) is
        the domain's problem."""
        unusable = (CheckFailureReason.DNS_TIMEOUT, CheckFailureReason.DNS_ERROR)
        always_asked = (self.mx.failure, self.spf.failure, self.dmarc.failure)
        return not all(failure is not None and failure.reason in unusable for failure in always_asked)

    def findings_by_check(self) -> dict[CheckName, tuple[Finding, ...]]:
        return {check.name: check.findings(self) for check in CHECKS if check.findings is not None}

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(finding for findings in self.findings_by_check().values() for finding in findings)


class CheckName(enum.StrEnum):
    """The checks of a domain: the `check` label, and the headings of reports."""

    MX = "mx"
    SPF = "spf"
    DMARC = "dmarc"
    DKIM = "dkim"
    MTA_STS = "mta_sts"
    MTA_STS_POLICY = "mta_sts_policy"
    TLSRPT = "tlsrpt"
    BIMI = "bimi"
    DNSSEC = "dnssec"
    REVERSE_DNS = "reverse_dns"
    DANE = "dane"


@dataclass(frozen=True)
class CheckView:
    """Where a check's outcome is in a DomainResult."""

    name: CheckName
    failure: Callable[[DomainResult], CheckFailure | None]
    findings: Callable[[DomainResult], tuple[Finding, ...]] | None   # None: reported with another check


def _first_failure(parts: Iterable[NameDNSSEC | ReverseDNS | MXDANE]) -> CheckFailure | None:
    return next((part.failure for part in parts if part.failure), None)


# The one table of the checks, in report order.
CHECKS = (
    CheckView(CheckName.MX, lambda r: r.mx.failure, lambda r: r.mx.findings),
    CheckView(CheckName.SPF, lambda r: r.spf.failure, lambda r: r.spf.findings),
    CheckView(CheckName.DMARC, lambda r: r.dmarc.failure, lambda r: r.dmarc.findings),
    CheckView(CheckName.DKIM, lambda r: r.dkim.failure, lambda r: r.dkim.findings),
    CheckView(CheckName.MTA_STS, lambda r: r.mta_sts.failure, lambda r: r.mta_sts.findings),
    CheckView(CheckName.MTA_STS_POLICY, lambda r: r.mta_sts.policy_failure, None),
    CheckView(CheckName.TLSRPT, lambda r: r.tlsrpt.failure, lambda r: r.tlsrpt.findings),
    CheckView(CheckName.BIMI, lambda r: r.bimi.failure, lambda r: r.bimi.findings),
    CheckView(CheckName.DNSSEC, lambda r: _first_failure(r.dnssec), None),
    CheckView(CheckName.REVERSE_DNS, lambda r: _first_failure(r.reverse_dns),
              lambda r: tuple(reverse_dns_findings(r.reverse_dns))),
    CheckView(CheckName.DANE, lambda r: _first_failure(r.dane), lambda r: tuple(dane_findings(r.dane))),
)


DEFAULT_HTTPS_TIMEOUT_SECONDS = 10.0


async def check_domain(
    domain: Domain,
    dns: DNSClient,
    *,
    chain_for: ChainFor | None = None,
    https_ca_file: str | None = None,
    https_timeout: float = DEFAULT_HTTPS_TIMEOUT_SECONDS,
    address_allowed: AddressAllowed | None = None,
) -> DomainResult:
    """Run every check of `domain`. `chain_for(mx_host)` gives the DER chain (leaf first)
    the host last presented on port 25, or None when it was not probed yet.
    `address_allowed(address)`: False for an address the checks must not connect to (the
    MTA-STS policy host's); None allows every address."""
    started, clock = time.time(), time.monotonic()
    cache = LookupCache(dns)
    name = domain.name
    mx, spf, dmarc, dkim, mta_sts, tlsrpt, bimi, domain_dnssec = await asyncio.gather(
        check_mx(name, cache),
        check_spf(name, cache),
        check_dmarc(name, cache),
        check_dkim(name, domain.dkim_selectors, cache, domain.reported_dkim_selectors),
        check_mta_sts(name, cache, ca_file=https_ca_file, timeout=https_timeout, address_allowed=address_allowed),
        check_tlsrpt(name, cache),
        check_bimi(name, cache),
        dnssec_status(cache, name, "MX"),
    )
    named_hosts = [host for host in mx.hosts if not host.is_ip_literal]
    hosts_dnssec, reverse_dns = await asyncio.gather(
        asyncio.gather(*(dnssec_status(cache, host.name, "A") for host in named_hosts)),
        check_all_reverse_dns(cache, [(host.name, address) for host in named_hosts for address in host.addresses]),
    )
    dnssec = (domain_dnssec, *hosts_dnssec)
    dane = await check_dane(cache, mx, dnssec, chain_for)
    return DomainResult(
        domain=name, observed_at=started, duration_seconds=time.monotonic() - clock,
        mx=mx, spf=spf, dmarc=dmarc, dkim=dkim, mta_sts=judge_mx_coverage(mta_sts, mx), tlsrpt=tlsrpt, bimi=bimi,
        dnssec=dnssec, reverse_dns=reverse_dns, dane=dane,
    )
