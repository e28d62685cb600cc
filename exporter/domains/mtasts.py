"""MTA-STS (RFC 8461): the TXT record at _mta-sts.<domain> that announces a policy.

Only the DNS part is checked here: exactly one v=STSv1 record with an id (§3.1). The
HTTPS policy fetch is not implemented yet.
"""

from __future__ import annotations

from ..dnsclient import Resolver
from ..records.mtasts import STSRecord, parse_sts_record, select_sts_records
from .common import SingleRecordCheck, check_single_record

MTASTSResult = SingleRecordCheck[STSRecord]


async def check_mta_sts_record(domain: str, dns: Resolver) -> MTASTSResult:
    return await check_single_record(
        dns, f"_mta-sts.{domain}", select_sts_records, parse_sts_record, "MTA-STS",
        missing_code="mta_sts_missing",
        missing_fix="publish an MTA-STS policy and 'v=STSv1; id=...' to require TLS from senders",
        invalid_code="mta_sts_record_invalid",
        invalid_fix="publish exactly one 'v=STSv1; id=...' record (RFC 8461 §3.1)",
    )
