"""SMTP DANE (RFC 7672): do an MX host's TLSA records authenticate the chain it presented?

A pure function: the TLSA answers, their DNSSEC status and the chain (DER, leaf first)
come from elsewhere (the DNS client and the TLS probe). For DANE-TA(2) matches, checking
the leaf's name against the MX host is the caller's job (RFC 7672 §3.2.2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..records.tlsa import TLSARecord, tlsa_matches
from .dnssec import DNSSECStatus


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


def evaluate_dane(records: tuple[TLSARecord, ...], dnssec: DNSSECStatus, chain_der: list[bytes]) -> DANEResult:
    if dnssec is DNSSECStatus.BOGUS:
        return DANEResult(DANEStatus.BOGUS)
    if not records:
        return DANEResult(DANEStatus.NO_RECORDS)
    if dnssec is not DNSSECStatus.SECURE:
        return DANEResult(DANEStatus.INSECURE)
    usable = [record for record in records if record.usable_for_smtp]
    if not usable:
        return DANEResult(DANEStatus.UNUSABLE)
    matching = tuple(record for record in usable if tlsa_matches(record, chain_der))
    return DANEResult(DANEStatus.MATCH if matching else DANEStatus.NO_MATCH, matching)
