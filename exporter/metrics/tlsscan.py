"""Metric families of the deep TLS scan, and the samples of one scan result.

Declared in the same `MetricSpec` form as collector.py, so the collector can add
`TLSSCAN_METRICS` to its families and call `add_scan_samples` per scanned target.
docs/metrics.md documents every family here. All labels are bounded: versions,
IANA suite names, guideline classes, registry group names, failure reasons.
"""

from __future__ import annotations

from collections.abc import Callable

from .specs import Families, MetricSpec, subject_labels
from ..config import Target
from ..tlsscan.results import TLSScanResult
from ..tlswire.grading import Class
from .encodings import GRADE_VALUES

TLSSCAN_METRICS = (
    MetricSpec("mailsec_tls_scan_success", "1 if the last deep TLS scan of the endpoint completed, else 0."),
    MetricSpec("mailsec_tls_scan_failure_info", "Why the last deep TLS scan failed; present only while it fails.", ("reason",)),
    MetricSpec("mailsec_tls_scan_connections", "TCP connections the last deep TLS scan opened."),
    MetricSpec("mailsec_tls_scan_duration_seconds", "How long the last deep TLS scan took."),
    MetricSpec("mailsec_tls_scan_last_run_timestamp_seconds", "When the last deep TLS scan started."),
    MetricSpec("mailsec_tls_protocol_supported", "1 if the server accepts the protocol version, 0 if not.", ("version",)),
    MetricSpec("mailsec_tls_cipher_accepted", "A cipher suite the server accepts for a version; always 1.", ("version", "cipher", "class")),
    MetricSpec("mailsec_tls_ciphers_accepted", "How many (version, cipher suite) pairs the server accepts, per NCSC-NL class.", ("class",)),
    MetricSpec("mailsec_tls_grade", "The endpoint's worst NCSC-NL class: 3 good, 2 sufficient, 1 phase_out, 0 insufficient."),
    MetricSpec("mailsec_tls_dh_min_size", "Size of the smallest finite-field DHE prime the server uses, in bits."),
    MetricSpec("mailsec_tls_group_supported", "A key-exchange group the server accepts (TLS 1.2 ECDHE or TLS 1.3); always 1.", ("group",)),
    MetricSpec("mailsec_tls_normal_client_group", "The key-exchange group an ordinary client's hello gets, per version (TLS 1.3 key share, TLS 1.2 ECDHE curve); always 1.", ("version", "group", "class")),
    MetricSpec("mailsec_tls_cipher_order_violation", "1 if the server prefers a phase_out cipher suite over a better one (internet.nl's cipher order test), else 0."),
    MetricSpec("mailsec_tls_server_cipher_order", "Per version with two or more accepted cipher suites: 1 if the server picks by its own preference, 0 if it follows the client.", ("version",)),
    MetricSpec("mailsec_tls_secure_renegotiation", "1 if the server supports RFC 5746 secure renegotiation (TLS <= 1.2)."),
    MetricSpec("mailsec_tls_compression", "1 if the server accepts TLS compression (DEFLATE)."),
    MetricSpec("mailsec_tls_extended_master_secret", "1 if the server supports the RFC 7627 extended master secret (TLS <= 1.2)."),
    MetricSpec("mailsec_tls_ocsp_stapling", "1 if the server staples a successful OCSP response when asked (TLS <= 1.2)."),
    MetricSpec("mailsec_tls_fallback_scsv", "1 if the server refuses a fallback hello carrying TLS_FALLBACK_SCSV (RFC 7507), 0 if it accepts it."),
    MetricSpec("mailsec_starttls_injection_vulnerable", "1 if the server executes a command pipelined after STARTTLS once TLS is up (CVE-2011-0411 and kin), else 0."),
    MetricSpec("mailsec_tls_session_resumption_supported", "1 if the server resumed a session on a new connection, 0 if not, per mechanism (session_id in TLS <= 1.2, ticket in the best version).", ("mechanism",)),
    MetricSpec("mailsec_tls_session_ticket_lifetime_hint_seconds", "The lifetime hint of the server's session ticket (NewSessionTicket)."),
    MetricSpec("mailsec_tls_client_renegotiation_accepted", "1 if the server completes a renegotiation the client starts (TLS <= 1.2), 0 if it refuses."),
    MetricSpec("mailsec_tls_client_renegotiations_accepted", "Client-initiated renegotiations the server accepted in a row on one connection, up to the check's limit of 10."),
    MetricSpec("mailsec_tls_ocsp_staple_status", "The certificate status the stapled OCSP response gives; always 1.", ("status",)),
    MetricSpec("mailsec_tls_ocsp_staple_next_update_timestamp_seconds", "When the stapled OCSP response expires (its nextUpdate)."),
)


def add_scan_samples(families: Families, target: Target, result: TLSScanResult) -> None:
    """Add the samples of one endpoint's latest deep-scan result."""
    base = subject_labels(target)

    def add(name: str, value: float, **extra: str) -> None:
        families.add(name, {**base, **extra} if extra else base, value)

    add("mailsec_tls_scan_success", 1.0 if result.success else 0.0)
    if result.failure is not None:
        add("mailsec_tls_scan_failure_info", 1.0, reason=result.failure.value)
    add("mailsec_tls_scan_connections", float(result.connections))
    add("mailsec_tls_scan_duration_seconds", result.duration_seconds)
    add("mailsec_tls_scan_last_run_timestamp_seconds", result.observed_at)

    for support in result.versions:
        add("mailsec_tls_protocol_supported", float(support.supported), version=support.version.label)
    counts = dict.fromkeys(Class, 0)
    for cipher in result.ciphers:
        add("mailsec_tls_cipher_accepted", 1.0, version=cipher.version.label, cipher=cipher.name, **{"class": cipher.grade.label})
        counts[cipher.grade] += 1
    if result.versions:
        for grade, count in counts.items():
            add("mailsec_tls_ciphers_accepted", float(count), **{"class": grade.label})
    if result.grade is not None:
        add("mailsec_tls_grade", GRADE_VALUES[result.grade])
    if result.dh_min_size is not None:
        add("mailsec_tls_dh_min_size", float(result.dh_min_size))
    for group in sorted({support.name for support in result.groups}):
        add("mailsec_tls_group_supported", 1.0, group=group)
    for group in result.normal_client_groups:
        add("mailsec_tls_normal_client_group", 1.0, version=group.version.label, group=group.name,
            **{"class": group.grade.label})
    for version, server_order in result.server_cipher_order:
        add("mailsec_tls_server_cipher_order", float(server_order), version=version.label)
    for name, fact in (("mailsec_tls_secure_renegotiation", result.secure_renegotiation),
                       ("mailsec_tls_compression", result.compression),
                       ("mailsec_tls_extended_master_secret", result.extended_master_secret),
                       ("mailsec_tls_ocsp_stapling", result.ocsp_stapling),
                       ("mailsec_starttls_injection_vulnerable", result.starttls_injection),
                       ("mailsec_tls_fallback_scsv", result.fallback_scsv),
                       ("mailsec_tls_cipher_order_violation", result.cipher_order_violation)):
        if fact is not None:
            add(name, float(fact))
    _add_staple_samples(add, result)
    _add_session_samples(add, result)


def _add_staple_samples(add: Callable[..., None], result: TLSScanResult) -> None:
    if result.ocsp_staple is not None:
        add("mailsec_tls_ocsp_staple_status", 1.0, status=result.ocsp_staple.status.value)
        if result.ocsp_staple.next_update is not None:
            add("mailsec_tls_ocsp_staple_next_update_timestamp_seconds", result.ocsp_staple.next_update)


def _add_session_samples(add: Callable[..., None], result: TLSScanResult) -> None:
    resumption = result.session_resumption
    if resumption is not None:
        for mechanism, attempt in (("session_id", resumption.session_id), ("ticket", resumption.ticket)):
            if attempt.resumed is not None:
                add("mailsec_tls_session_resumption_supported", float(attempt.resumed), mechanism=mechanism)
        if resumption.ticket_lifetime_hint is not None:
            add("mailsec_tls_session_ticket_lifetime_hint_seconds", float(resumption.ticket_lifetime_hint))
    renegotiation = result.client_renegotiation
    if renegotiation is not None and renegotiation.accepted is not None:
        add("mailsec_tls_client_renegotiation_accepted", float(renegotiation.accepted))
        if renegotiation.in_a_row is not None:
            add("mailsec_tls_client_renegotiations_accepted", float(renegotiation.in_a_row))
