"""Typed, immutable probe results.

Probes return these; the store keeps the latest one per target; the collector turns
them into metrics on each scrape. Nothing here touches Prometheus.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class JobKind(enum.StrEnum):
    """What a run probes: the `kind` label of the exporter's own metrics."""

    ENDPOINT = "endpoint"
    DOMAIN = "domain"
    DEEP_SCAN = "deep_scan"
    BLOCKLIST = "blocklist"


class FailureReason(enum.StrEnum):
    """Why a probe failed: a closed set, exported as the `reason` label."""

    DNS_ERROR = "dns_error"                       # the target's name did not resolve
    CONNECTION_REFUSED = "connection_refused"
    CONNECT_TIMEOUT = "connect_timeout"           # no TCP connection within the timeout
    CONNECTION_ERROR = "connection_error"         # reset, unreachable, closed early
    TIMEOUT = "timeout"                           # connected, but the dialogue did not finish in time
    PROTOCOL_ERROR = "protocol_error"             # garbage, over-long line, bytes before the TLS upgrade
    SERVICE_UNAVAILABLE = "service_unavailable"   # the server said no (SMTP 421/554 greeting, IMAP BYE, POP3 -ERR)
    STARTTLS_NOT_OFFERED = "starttls_not_offered"
    STARTTLS_REFUSED = "starttls_refused"
    TLS_HANDSHAKE_ERROR = "tls_handshake_error"
    INTERNAL_ERROR = "internal_error"             # a bug in the exporter; logged with its traceback


@dataclass(frozen=True)
class CertificateInfo:
    """Facts of one X.509 certificate, as presented by the server."""

    der: bytes
    subject: str                  # RFC 4514 string
    issuer: str
    serial: str                   # lower-case hex, no separators
    fingerprint_sha256: str       # lower-case hex, no separators
    sans: tuple[str, ...]         # DNS names and IP addresses from subjectAltName
    not_before: float             # Unix seconds
    not_after: float
    key_type: str                 # "rsa", "ec", "ed25519", "ed448", "dsa"; "unknown" (0 bits) if unparsable
    key_bits: int
    signature_hash: str | None    # "sha256", "sha1", ...; None for ed25519/ed448
    self_signed: bool             # issuer == subject and the signature verifies with its own key


@dataclass(frozen=True)
class TLSFacts:
    """What one TLS handshake showed."""

    version: str                          # "TLSv1.2", "TLSv1.3"
    cipher: str                           # cipher suite name
    chain: tuple[CertificateInfo, ...]    # as presented, leaf first
    chain_valid: bool                     # verified against the system store or the module's ca_file
    chain_error: str | None               # OpenSSL's verify message when not valid
    hostname_valid: bool                  # the leaf matches `verified_name` (RFC 6125)
    verified_name: str                    # the name the leaf was checked against

    @property
    def leaf(self) -> CertificateInfo:
        return self.chain[0]

    @property
    def chain_earliest_not_after(self) -> float:
        return min(cert.not_after for cert in self.chain)


@dataclass(frozen=True)
class EndpointResult:
    """The outcome of one run of the mail-endpoint probe."""

    success: bool
    failure: FailureReason | None         # None exactly when success
    failure_detail: str                   # human-readable, for logs and the status page; never a label
    observed_at: float                    # Unix seconds when the probe started
    duration_seconds: float
    address: str | None = None            # the IP address connected to
    starttls_offered: bool | None = None  # None where STARTTLS does not apply (implicit TLS)
    plaintext_auth_exposed: bool | None = None  # None where it could not be determined
    capabilities_before_tls: tuple[str, ...] = ()
    capabilities_after_tls: tuple[str, ...] = ()
    tls: TLSFacts | None = None
    connect_seconds: float | None = None
    greeting_seconds: float | None = None
    tls_handshake_seconds: float | None = None
    transcript: tuple[str, ...] = ()      # the dialogue, for /probe?debug=true and the status page
    # How often the scheduler runs this probe (the module's interval), so that alerts can
    # tell a late result from one on schedule; None for /probe and the CLI.
    interval_seconds: float | None = None


class ProbeOutcome(Protocol):
    """What every probe and scan result has."""

    success: bool
    failure: FailureReason | None
    failure_detail: str
    observed_at: float
    duration_seconds: float


def outcome_fields(result: ProbeOutcome) -> dict[str, object]:
    """The outcome every probe and scan result has, JSON-ready (status page, reports)."""
    return {
        "success": result.success,
        "failure": result.failure.value if result.failure else None,
        "failure_detail": result.failure_detail,
        "observed_at": result.observed_at,
        "duration_seconds": result.duration_seconds,
    }
