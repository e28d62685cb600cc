"""SMTP TLS Reporting (RFC 8460): one v=TLSRPTv1 record at _smtp._tls.<domain>."""

from __future__ import annotations

from dataclasses import replace

from ..dnsclient import Resolver
from ..records.tlsrpt import TLSRPTRecord, parse_tlsrpt, select_tlsrpt_records
from .common import Finding, Severity, SingleRecordCheck, check_single_record

TLSRPTResult = SingleRecordCheck[TLSRPTRecord]


async def check_tlsrpt(domain: str, dns: Resolver) -> TLSRPTResult:
    result = await check_single_record(
        dns, f"_smtp._tls.{domain}", select_tlsrpt_records, parse_tlsrpt, "TLS-RPT",
        missing_code="tlsrpt_missing",
        missing_fix="publish 'v=TLSRPTv1; rua=mailto:...' to hear about failed TLS deliveries",
        invalid_code="tlsrpt_invalid",
        invalid_fix="publish exactly one valid v=TLSRPTv1 record",
    )
    if result.lookup is None or result.lookup.record is None:
        return result
    name = result.lookup.name
    warnings = tuple(Finding(Severity.WARNING, f"tlsrpt_{w.code}", f"{name}: {w.message}", "correct the rua list")
                     for w in result.lookup.record.warnings)
    return replace(result, findings=result.findings + warnings)
