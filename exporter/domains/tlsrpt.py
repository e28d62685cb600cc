"""SMTP TLS Reporting (RFC 8460): one v=TLSRPTv1 record at _smtp._tls.<domain>."""

from __future__ import annotations

from dataclasses import dataclass

from ..dnsclient import DNSError, Resolver
from ..records.tlsrpt import TLSRPTRecord, parse_tlsrpt, select_tlsrpt_records
from .common import CheckFailure, Finding, Severity, SingleRecord, failure_from, lookup_single_record


@dataclass(frozen=True)
class TLSRPTResult:
    failure: CheckFailure | None
    lookup: SingleRecord[TLSRPTRecord] | None = None
    findings: tuple[Finding, ...] = ()


async def check_tlsrpt(domain: str, dns: Resolver) -> TLSRPTResult:
    try:
        lookup = await lookup_single_record(dns, f"_smtp._tls.{domain}", select_tlsrpt_records, parse_tlsrpt)
    except DNSError as exc:
        return TLSRPTResult(failure=failure_from(exc))
    findings: list[Finding] = []
    if lookup.count == 0:
        findings.append(Finding(Severity.INFO, "tlsrpt_missing", f"{lookup.name} has no TLS-RPT record",
                                "publish 'v=TLSRPTv1; rua=mailto:...' to hear about failed TLS deliveries"))
    elif lookup.record is None:
        findings.append(Finding(Severity.ERROR, "tlsrpt_invalid", f"{lookup.name}: {lookup.error}",
                                "publish exactly one valid v=TLSRPTv1 record"))
    else:
        findings.extend(Finding(Severity.WARNING, f"tlsrpt_{w.code}", f"{lookup.name}: {w.message}", "correct the rua list")
                        for w in lookup.record.warnings)
    return TLSRPTResult(failure=None, lookup=lookup, findings=tuple(findings))
