"""TLS-RPT aggregate reports: the JSON of RFC 8460 §4.

The result types are RFC 8460 §4.3's closed set (plus the IANA registry's later
sts-webpki-invalid); any other value is kept as `other`, so a sender's invention cannot
add a label value. Session counts without failure details (the details are optional) are
counted as `other` too, so that the failed sessions always add up to the summary's total.
"""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass
from typing import Any

from .common import RejectReason, ReportRejected

MAX_COUNT = 1 << 40


class PolicyType(enum.StrEnum):
    STS = "sts"
    TLSA = "tlsa"
    NO_POLICY_FOUND = "no-policy-found"


class ResultType(enum.StrEnum):
    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"
    OTHER = "other"


@dataclass(frozen=True)
class FailureDetail:
    result_type: ResultType
    receiving_mx: str | None     # receiving-mx-hostname, lower case, without a final dot
    sessions: int


@dataclass(frozen=True)
class PolicyResult:
    policy_type: PolicyType
    domain: str                  # policy-domain, lower case, without a final dot
    successful: int
    failed: int
    failures: tuple[FailureDetail, ...]   # they add up to `failed`


@dataclass(frozen=True)
class TLSReport:
    org_name: str
    contact: str
    report_id: str
    begin: float                 # Unix seconds
    end: float
    policies: tuple[PolicyResult, ...]


def _schema(detail: str) -> ReportRejected:
    return ReportRejected(RejectReason.SCHEMA, detail)


def _field(mapping: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise _schema(f"{where} is not an object")
    value = mapping.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _schema(f"{where}.{key} is missing or not a {kind.__name__}")
    return value


def _count(mapping: Any, key: str, where: str) -> int:
    value = _field(mapping, key, int, where)
    if not 0 <= value <= MAX_COUNT:
        raise _schema(f"{where}.{key} is out of range: {value}")
    return value


def _datetime(text: str, where: str) -> float:
    """An RFC 3339 date-time with its offset (Z or +hh:mm)."""
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _schema(f"{where} is not an RFC 3339 date-time: {text[:40]!r}")
    return parsed.timestamp()


def _name(text: str) -> str:
    return text.strip().lower().rstrip(".")


def parse_tlsrpt_report(data: bytes) -> TLSReport:
    """The report in `data` (the unpacked JSON); ReportRejected (bad_json, schema) otherwise."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:   # UnicodeDecodeError is a ValueError
        raise ReportRejected(RejectReason.BAD_JSON, f"not JSON: {str(exc)[:80]}") from None
    date_range = _field(document, "date-range", dict, "report")
    begin = _datetime(_field(date_range, "start-datetime", str, "date-range"), "start-datetime")
    end = _datetime(_field(date_range, "end-datetime", str, "date-range"), "end-datetime")
    if end < begin:
        raise _schema("date-range ends before it begins")
    policies = _field(document, "policies", list, "report")
    return TLSReport(
        org_name=_field(document, "organization-name", str, "report").strip(),
        contact=document.get("contact-info") if isinstance(document.get("contact-info"), str) else "",
        report_id=_field(document, "report-id", str, "report").strip(),
        begin=begin,
        end=end,
        policies=tuple(_policy(item, f"policies[{index}]") for index, item in enumerate(policies)),
    )


def _policy(item: Any, where: str) -> PolicyResult:
    policy = _field(item, "policy", dict, where)
    type_text = _field(policy, "policy-type", str, f"{where}.policy")
    try:
        policy_type = PolicyType(type_text)
    except ValueError:
        raise _schema(f"{where}.policy.policy-type is not sts, tlsa or no-policy-found: {type_text[:40]!r}") from None
    summary = _field(item, "summary", dict, where)
    failed = _count(summary, "total-failure-session-count", f"{where}.summary")
    details = item.get("failure-details", [])
    if not isinstance(details, list):
        raise _schema(f"{where}.failure-details is not a list")
    failures = [_failure(detail, f"{where}.failure-details[{index}]") for index, detail in enumerate(details)]
    unexplained = failed - sum(failure.sessions for failure in failures)
    if unexplained > 0:
        failures.append(FailureDetail(ResultType.OTHER, None, unexplained))
    return PolicyResult(
        policy_type=policy_type,
        domain=_name(_field(policy, "policy-domain", str, f"{where}.policy")),
        successful=_count(summary, "total-successful-session-count", f"{where}.summary"),
        failed=sum(failure.sessions for failure in failures),   # at least the summary's, more if details say so
        failures=tuple(failures),
    )


def _failure(detail: Any, where: str) -> FailureDetail:
    text = _field(detail, "result-type", str, where)
    try:
        result_type = ResultType(text)
    except ValueError:
        result_type = ResultType.OTHER
    mx = detail.get("receiving-mx-hostname")
    return FailureDetail(result_type, _name(mx) if isinstance(mx, str) and mx.strip() else None,
                         _count(detail, "failed-session-count", where))
