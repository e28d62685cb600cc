"""BIMI (draft-brand-indicators-for-message-identification): the default assertion record
at default._bimi.<domain>. A record with empty l= and a= declines to show a logo."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..dnsclient import DNSError, Resolver
from ..records.bimi import BIMIRecord, parse_bimi, select_bimi_records
from .common import CheckFailure, Finding, Severity, SingleRecord, failure_from, lookup_single_record


class BIMIStatus(enum.StrEnum):
    ABSENT = "absent"
    DECLINED = "declined"
    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True)
class BIMIResult:
    failure: CheckFailure | None
    status: BIMIStatus = BIMIStatus.ABSENT
    lookup: SingleRecord[BIMIRecord] | None = None
    findings: tuple[Finding, ...] = ()


async def check_bimi(domain: str, dns: Resolver) -> BIMIResult:
    try:
        lookup = await lookup_single_record(dns, f"default._bimi.{domain}", select_bimi_records, parse_bimi)
    except DNSError as exc:
        return BIMIResult(failure=failure_from(exc))
    if lookup.count == 0:
        return BIMIResult(failure=None, status=BIMIStatus.ABSENT, lookup=lookup)
    if lookup.record is None:
        return BIMIResult(failure=None, status=BIMIStatus.INVALID, lookup=lookup, findings=(Finding(
            Severity.WARNING, "bimi_invalid", f"{lookup.name}: {lookup.error}", "publish exactly one valid v=BIMI1 record"),))
    status = BIMIStatus.DECLINED if lookup.record.declined else BIMIStatus.VALID
    findings = tuple(Finding(Severity.WARNING, f"bimi_{w.code}", f"{lookup.name}: {w.message}", "correct the tag named")
                     for w in lookup.record.warnings)
    return BIMIResult(failure=None, status=status, lookup=lookup, findings=findings)
