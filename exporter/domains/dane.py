"""SMTP DANE (RFC 7672): do an MX host's TLSA records authenticate the chain it presented?

`evaluate_dane` is pure: the TLSA records, their DNSSEC status and the chain (DER, leaf
first) come from elsewhere. `check_dane` gathers them for every MX host: the TLSA RRset at
_25._tcp.<mx> and its DNSSEC status from the DNS client, and from the caller the chain each
address of the host presented (the core TLS probe's last view of port 25), which may not
exist yet. Each address is a server a sender may pick, so each is judged: the host passes
only when every address does.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from cryptography import x509

from ..certs import hostname_matches
from ..dnsclient import DNSError, Resolver
from ..records.tlsa import TLSAError, TLSARecord, Usage, make_tlsa, tlsa_matches
from .common import CheckFailure, Finding, Severity, failure_from
from .dnssec import DNSSECStatus, NameDNSSEC, dnssec_status
from .mx import MXResult

# MX host -> {address: every chain it presented (one per key type of its certificates)};
# None when the host was not probed yet.
ChainFor = Callable[[str], "Mapping[str, Sequence[Sequence[bytes]]] | None"]


class DANEStatus(enum.StrEnum):
    NO_RECORDS = "no_records"   # no TLSA records: DANE is not in use
    INSECURE = "insecure"       # TLSA records not validated by DNSSEC: senders ignore them (§2.2)
    BOGUS = "bogus"             # the TLSA lookup failed validation: senders defer delivery (§2.1.1)
    UNUSABLE = "unusable"       # only PKIX-TA/PKIX-EE records: TLS is required, unauthenticated (§3.1.3)
    MATCH = "match"             # some usable record authenticates the chain
    NO_MATCH = "no_match"       # usable records, none matches: senders refuse to deliver


@dataclass(frozen=True)
class DANEResult:
    status: DANEStatus
    matching: tuple[TLSARecord, ...] = ()

    @property
    def authenticated(self) -> bool:
        return self.status is DANEStatus.MATCH


def evaluate_dane(
    records: tuple[TLSARecord, ...],
    dnssec: DNSSECStatus,
    chain_der: Sequence[bytes] | None,
    reference_name: str | None = None,
) -> DANEResult | None:
    """The DANE outcome; None when only the chain can tell and there is none (`chain_der`
    None). With `reference_name` (the MX host), a DANE-TA(2) match also needs the leaf to
    name it (RFC 7672 §3.2.3); DANE-EE(3) ignores names (§3.2.1)."""
    if dnssec is DNSSECStatus.BOGUS:
        return DANEResult(DANEStatus.BOGUS)
    if not records:
        return DANEResult(DANEStatus.NO_RECORDS)
    if dnssec is not DNSSECStatus.SECURE:
        return DANEResult(DANEStatus.INSECURE)
    usable = [record for record in records if record.usable_for_smtp]
    if not usable:
        return DANEResult(DANEStatus.UNUSABLE)
    if chain_der is None:
        return None
    chain = list(chain_der)
    names_ok = reference_name is None or _leaf_names(chain, reference_name)
    matching = tuple(
        record for record in usable
        if tlsa_matches(record, chain) and (record.usage is Usage.DANE_EE or names_ok)
    )
    return DANEResult(DANEStatus.MATCH if matching else DANEStatus.NO_MATCH, matching)


def _leaf_names(chain: list[bytes], name: str) -> bool:
    try:
        return hostname_matches(x509.load_der_x509_certificate(chain[0]), name)
    except (ValueError, IndexError):
        return False


@dataclass(frozen=True)
class MXDANE:
    """DANE for one MX host."""

    mx: str
    failure: CheckFailure | None           # the TLSA lookup could not be done
    records: tuple[TLSARecord, ...] = ()   # the valid TLSA records at _25._tcp.<mx>
    malformed: tuple[str, ...] = ()        # why each other TLSA record is rejected
    dnssec: DNSSECStatus | None = None     # of the TLSA RRset; insecure also when the MX or address RRset is
    evaluation: DANEResult | None = None   # all addresses together; None: not evaluated (no chain seen yet)
    by_address: tuple[tuple[str, DANEResult], ...] = ()   # each probed address's own outcome

    @property
    def tlsa_records(self) -> int:
        return len(self.records) + len(self.malformed)

    @property
    def evaluated(self) -> bool:
        return self.evaluation is not None


async def check_dane(
    dns: Resolver, mx: MXResult, dnssec: tuple[NameDNSSEC, ...], chain_for: ChainFor | None,
) -> tuple[MXDANE, ...]:
    """One MXDANE per named MX host. `dnssec` holds the statuses of the domain's MX RRset
    and of the hosts' address RRsets: unless both are secure, senders never look up TLSA
    records (RFC 7672 §2.2.1, §2.2.2), so the TLSA records count as insecure."""
    secure_names = {name.name for name in dnssec if name.status is DNSSECStatus.SECURE}
    domain_secure = bool(dnssec) and dnssec[0].status is DNSSECStatus.SECURE
    hosts = [host.name for host in mx.hosts if not host.is_ip_literal]
    return tuple(await asyncio.gather(*(
        _check_host(dns, host, domain_secure and host in secure_names, chain_for) for host in hosts
    )))


async def _check_host(dns: Resolver, host: str, path_secure: bool, chain_for: ChainFor | None) -> MXDANE:
    name = f"_25._tcp.{host}"
    status = await dnssec_status(dns, name, "TLSA")
    if status.status is None:
        return MXDANE(host, status.failure)
    try:
        # A bogus answer is only readable with checking disabled; it is reported, not used.
        answer = await dns.lookup(name, "TLSA", checking_disabled=status.status is DNSSECStatus.BOGUS)
        rdatas = answer.records
    except DNSError as exc:
        if not exc.kind.is_negative_answer:
            return MXDANE(host, failure_from(exc))
        rdatas = ()
    records, malformed = [], []
    for rdata in rdatas:
        try:
            records.append(make_tlsa(rdata.usage, rdata.selector, rdata.mtype, rdata.cert))
        except TLSAError as exc:
            malformed.append(str(exc))
    dnssec = status.status
    if dnssec is DNSSECStatus.SECURE and not path_secure:
        dnssec = DNSSECStatus.INSECURE
    chains = chain_for(host) if chain_for is not None else None
    evaluation, by_address = evaluate_addresses(tuple(records), dnssec, chains, host)
    return MXDANE(host, None, tuple(records), tuple(malformed), dnssec, evaluation, by_address)


def evaluate_addresses(
    records: tuple[TLSARecord, ...], dnssec: DNSSECStatus,
    chains: Mapping[str, Sequence[Sequence[bytes]]] | None, host: str,
) -> tuple[DANEResult | None, tuple[tuple[str, DANEResult], ...]]:
    """The host's outcome (a match only when every address matches) and each address's
    (a match only when every chain it presents, RSA and ECDSA, matches: a sender may get
    either). Addresses are in sorted order, so the outcome never depends on DNS answer order."""
    verdict = evaluate_dane(records, dnssec, None, reference_name=host)
    if verdict is not None or not chains:     # decided by the records alone, or no chain yet
        return verdict, tuple((address, verdict) for address in sorted(chains or ())) if verdict else ()
    by_address = tuple((address, _every_chain(records, dnssec, chains[address], host)) for address in sorted(chains))
    failing = [result for _, result in by_address if not result.authenticated]
    if failing:
        return failing[0], by_address
    return DANEResult(DANEStatus.MATCH, tuple(dict.fromkeys(r for _, res in by_address for r in res.matching))), by_address


def _every_chain(records: tuple[TLSARecord, ...], dnssec: DNSSECStatus,
                 chains: Sequence[Sequence[bytes]], host: str) -> DANEResult:
    outcomes = [evaluate_dane(records, dnssec, chain, reference_name=host) for chain in chains]
    failing = [outcome for outcome in outcomes if not outcome.authenticated]
    if failing:
        return failing[0]
    return DANEResult(DANEStatus.MATCH, tuple(dict.fromkeys(r for outcome in outcomes for r in outcome.matching)))


def dane_findings(results: tuple[MXDANE, ...]) -> list[Finding]:
    found = []
    for result in results:
        name = f"_25._tcp.{result.mx}"
        for reason in result.malformed:
            found.append(Finding(Severity.WARNING, "dane_tlsa_malformed", f"{name}: a TLSA record is invalid: {reason}",
                                 "remove or correct it"))
        status = result.evaluation.status if result.evaluation else None
        if status is DANEStatus.BOGUS:
            found.append(Finding(Severity.ERROR, "dane_tlsa_bogus",
                                 f"{name}: the TLSA lookup fails DNSSEC validation: DANE senders defer delivery to {result.mx}",
                                 "fix the DNSSEC signatures / DS records of the MX host's zone"))
        elif status is DANEStatus.INSECURE:
            found.append(Finding(Severity.WARNING, "dane_tlsa_insecure",
                                 f"{name}: TLSA records not protected by DNSSEC (the MX, address or TLSA RRset is insecure): senders ignore them",
                                 "sign the zones of the domain and of the MX host, or remove the TLSA records"))
        elif status is DANEStatus.UNUSABLE:
            found.append(Finding(Severity.WARNING, "dane_tlsa_unusable",
                                 f"{name}: only PKIX-TA(0)/PKIX-EE(1) records, unusable for SMTP (RFC 7672 §3.1.3)",
                                 "publish DANE-EE(3) or DANE-TA(2) records, e.g. '3 1 1 <SHA-256 of the key>'"))
        elif status is DANEStatus.NO_MATCH:
            addresses = [address for address, outcome in result.by_address if not outcome.authenticated]
            where = f" at {', '.join(addresses)}" if addresses else ""
            found.append(Finding(Severity.ERROR, "dane_no_match",
                                 f"{name}: no TLSA record matches the certificate {result.mx} presents on port 25{where}: DANE senders will not deliver there",
                                 "publish TLSA records for the current certificate (keep the old ones until it is deployed)"))
    return found
