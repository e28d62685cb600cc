"""MTA-STS (RFC 8461): the TXT record at _mta-sts.<domain> that announces a policy.

Only the DNS part is checked here: exactly one v=STSv1 record with an id (§3.1). The
HTTPS policy fetch is not implemented yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dnsclient import DNSError, Resolver
from ..records.mtasts import STSRecord, parse_sts_record, select_sts_records
from .common import CheckFailure, Finding, Severity, SingleRecord, failure_from, lookup_single_record


@dataclass(frozen=True)
class MTASTSResult:
    failure: CheckFailure | None
    lookup: SingleRecord[STSRecord] | None = None
    findings: tuple[Finding, ...] = ()


async def check_mta_sts_record(domain: str, dns: Resolver) -> MTASTSResult:
    try:
        lookup = await lookup_single_record(dns, f"_mta-sts.{domain}", select_sts_records, parse_sts_record)
    except DNSError as exc:
        return MTASTSResult(failure=failure_from(exc))
    findings: list[Finding] = []
    if lookup.count == 0:
        findings.append(Finding(Severity.INFO, "mta_sts_missing", f"{lookup.name} has no MTA-STS record",
                                "publish an MTA-STS policy and 'v=STSv1; id=...' to require TLS from senders"))
    elif lookup.record is None:
        findings.append(Finding(Severity.ERROR, "mta_sts_record_invalid", f"{lookup.name}: {lookup.error}",
                                "publish exactly one 'v=STSv1; id=...' record (RFC 8461 §3.1)"))
    return MTASTSResult(failure=None, lookup=lookup, findings=tuple(findings))

