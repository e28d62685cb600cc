"""The revocation status of the presented certificates: frozen results, closed sets."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RevocationMethod(enum.StrEnum):
    OCSP = "ocsp"
    CRL = "crl"


class RevocationStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"


class RevocationFailure(enum.StrEnum):
    """Why a check reached no verdict: a closed set, exported as the `reason` label."""

    NO_ISSUER = "no_issuer"                   # the issuer is neither presented nor a trust anchor
    UNSUPPORTED_URL = "unsupported_url"       # only ldap:, https: or malformed URLs
    DNS_ERROR = "dns_error"                   # the CA server's name has no address, or its lookup failed
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"                 # no connection, reset, not HTTP/1.x
    HTTP_STATUS = "http_status"               # any other status than 200, redirects included
    TOO_LARGE = "too_large"                   # a body over the size limit
    PARSE_ERROR = "parse_error"               # not a DER (or PEM) OCSP response or CRL
    RESPONDER_ERROR = "responder_error"       # OCSP responseStatus other than successful
    SIGNATURE_INVALID = "signature_invalid"   # not signed by the issuer (or a responder it delegated to)
    WRONG_CERTIFICATE = "wrong_certificate"   # an OCSP answer about other certificates; a CRL of another issuer
    STALE = "stale"                           # nextUpdate passed, or thisUpdate in the future
    OCSP_UNKNOWN = "ocsp_unknown"             # the responder does not know the certificate
    INTERNAL_ERROR = "internal_error"         # a bug in the exporter; logged with its traceback


@dataclass(frozen=True)
class Verdict:
    """What one answer (an OCSP response, a CRL) says about one certificate."""

    status: RevocationStatus | None          # None exactly when `failure` is set
    failure: RevocationFailure | None
    detail: str = ""                         # for logs and the status page; never a label
    this_update: float | None = None         # Unix seconds
    next_update: float | None = None
    revoked_at: float | None = None
    revocation_reason: str | None = None     # CRLReason name, e.g. "key_compromise"


def failed(failure: RevocationFailure, detail: str, next_update: float | None = None) -> Verdict:
    return Verdict(None, failure, detail, next_update=next_update)


@dataclass(frozen=True)
class CertificateCheck:
    """One method's verdict on one certificate of one address's chain."""

    address: str
    position: int                # 0: the leaf, 1: the certificate after it...
    method: RevocationMethod
    url: str                     # the responder or distribution point asked ("" when none was usable)
    subject: str
    serial: str                  # lower-case hex
    verdict: Verdict
    fetched_at: float            # when the answer was fetched (it may come from the cache)


@dataclass(frozen=True)
class RevocationResult:
    """The revocation checks of one target's presented chains, after one endpoint probe."""

    observed_at: float
    duration_seconds: float
    checks: tuple[CertificateCheck, ...]

    @property
    def success(self) -> bool:
        """Every check reached a verdict."""
        return all(check.verdict.failure is None for check in self.checks)

    @property
    def revoked(self) -> tuple[CertificateCheck, ...]:
        return tuple(c for c in self.checks if c.verdict.status is RevocationStatus.REVOKED)
