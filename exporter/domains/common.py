"""What every domain check shares: findings, the failure of a check, and the lookup of a
record that must exist at most once (DMARC, MTA-STS, TLS-RPT, BIMI), and the check of
such a record alone, with findings for its absence or invalidity (MTA-STS, TLS-RPT)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from ..dnsclient import DNSError, DNSErrorKind, Resolver, txt_records
from ..records.common import RecordError


class Severity(enum.StrEnum):
    INFO = "info"          # worth knowing, nothing to fix
    WARNING = "warning"    # works, but weaker than it should be or deprecated
    ERROR = "error"        # broken: receivers ignore it or mail is at risk


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str              # stable, machine-readable, e.g. "spf_too_many_lookups"
    message: str           # what is wrong, naming the record or host
    fix: str               # one line: what to change

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity.value, "code": self.code, "message": self.message, "fix": self.fix}


class CheckFailureReason(enum.StrEnum):
    """Why a check could not run: a closed set, exported as the `reason` label."""

    DNS_TIMEOUT = "dns_timeout"
    DNS_SERVFAIL = "dns_servfail"     # from a validating resolver this may be a DNSSEC failure
    DNS_ERROR = "dns_error"           # REFUSED, unreachable nameserver, malformed answer
    # Fetching the MTA-STS policy over HTTPS (RFC 8461 §3.3); senders treat each as "no policy".
    HTTPS_NO_ADDRESS = "https_no_address"   # mta-sts.<domain> has no A/AAAA record
    HTTPS_TIMEOUT = "https_timeout"
    HTTPS_ERROR = "https_error"       # connection refused or reset, malformed HTTP
    TLS_ERROR = "tls_error"           # handshake failed or the certificate did not verify
    HTTP_REDIRECT = "http_redirect"   # a 3xx: senders must not follow redirects
    HTTP_STATUS = "http_status"       # any other status than 200
    CONTENT_TYPE = "content_type"     # not text/plain
    TOO_LARGE = "too_large"           # a body over the size limit
    POLICY_INVALID = "policy_invalid"  # the body is not a valid policy
    ADDRESS_NOT_ALLOWED = "address_not_allowed"   # the address guard refused every address of the host
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class CheckFailure:
    reason: CheckFailureReason
    detail: str                       # for logs and the status page; never a label

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


_REASON_OF_KIND = {
    DNSErrorKind.TIMEOUT: CheckFailureReason.DNS_TIMEOUT,
    DNSErrorKind.SERVFAIL: CheckFailureReason.DNS_SERVFAIL,
    DNSErrorKind.ERROR: CheckFailureReason.DNS_ERROR,
}


def failure_from(error: DNSError) -> CheckFailure:
    """The failure of a check stopped by a lookup error that is not NXDOMAIN/NODATA."""
    return CheckFailure(_REASON_OF_KIND.get(error.kind, CheckFailureReason.DNS_ERROR), str(error))


RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class SingleRecord(Generic[RecordT]):
    """The outcome of looking up a record a name must have at most once."""

    name: str                         # where it was looked up
    count: int                        # TXT records of that kind found there
    record: RecordT | None            # parsed, when exactly one and valid
    error: str | None                 # why the one record is invalid, or "N records"

    @property
    def valid(self) -> bool:
        return self.record is not None


@dataclass(frozen=True)
class SingleRecordCheck(Generic[RecordT]):
    """The result of a check whose whole subject is one such record (MTA-STS, TLS-RPT)."""

    failure: CheckFailure | None
    lookup: SingleRecord[RecordT] | None = None
    findings: tuple[Finding, ...] = ()


async def lookup_single_record(
    dns: Resolver,
    name: str,
    select: Callable[[list[str]], list[str]],
    parse: Callable[[str], RecordT],
) -> SingleRecord[RecordT]:
    """Look up TXT at `name`, keep the records `select` recognizes, parse the only one.
    Raises DNSError when the lookup itself fails (not for NXDOMAIN/NODATA)."""
    texts = select(await txt_records(dns, name))
    if len(texts) != 1:
        error = f"{len(texts)} records: exactly one is allowed" if texts else None
        return SingleRecord(name, len(texts), None, error)
    try:
        return SingleRecord(name, 1, parse(texts[0]), None)
    except RecordError as exc:
        return SingleRecord(name, 1, None, str(exc))



async def check_single_record(
    dns: Resolver,
    name: str,
    select: Callable[[list[str]], list[str]],
    parse: Callable[[str], RecordT],
    record_kind: str,
    *,
    missing_code: str,
    missing_fix: str,
    invalid_code: str,
    invalid_fix: str,
) -> SingleRecordCheck[RecordT]:
    """Look up the record (see `lookup_single_record`) and judge its presence: an INFO
    finding when there is none, an ERROR one when it is invalid or there are several."""
    try:
        lookup = await lookup_single_record(dns, name, select, parse)
    except DNSError as exc:
        return SingleRecordCheck(failure=failure_from(exc))
    findings: tuple[Finding, ...] = ()
    if lookup.count == 0:
        findings = (Finding(Severity.INFO, missing_code, f"{name} has no {record_kind} record", missing_fix),)
    elif lookup.record is None:
        findings = (Finding(Severity.ERROR, invalid_code, f"{name}: {lookup.error}", invalid_fix),)
    return SingleRecordCheck(failure=None, lookup=lookup, findings=findings)
