"""The revocation checks as JSON (status page, /api/v1/status, `check --json`) and as text
lines (`check`)."""

from __future__ import annotations

from typing import Any

from ..presentation import utc_time
from .results import CertificateCheck, RevocationResult, RevocationStatus


def verdict_text(check: CertificateCheck) -> str:
    """`good`, `REVOKED` (with when and why), or the failure reason."""
    verdict = check.verdict
    if verdict.status is None:
        return f"no verdict: {verdict.failure.value if verdict.failure else 'unknown'}"
    if verdict.status is RevocationStatus.GOOD:
        return "good"
    when = f" at {utc_time(verdict.revoked_at)}" if verdict.revoked_at is not None else ""
    why = f" ({verdict.revocation_reason})" if verdict.revocation_reason else ""
    return f"REVOKED{when}{why}"


def check_json(check: CertificateCheck) -> dict[str, Any]:
    verdict = check.verdict
    return {
        "address": check.address,
        "chain_position": check.position,
        "method": check.method.value,
        "url": check.url,
        "subject": check.subject,
        "serial": check.serial,
        "status": verdict.status.value if verdict.status else None,
        "failure": verdict.failure.value if verdict.failure else None,
        "detail": verdict.detail,
        "this_update": verdict.this_update,
        "next_update": verdict.next_update,
        "revoked_at": verdict.revoked_at,
        "revocation_reason": verdict.revocation_reason,
        "fetched_at": check.fetched_at,
    }


def to_json(result: RevocationResult) -> dict[str, Any]:
    return {
        "observed_at": result.observed_at,
        "duration_seconds": result.duration_seconds,
        "success": result.success,
        "revoked": bool(result.revoked),
        "checks": [check_json(check) for check in result.checks],
    }


def check_line(check: CertificateCheck) -> str:
    """One line per check: `192.0.2.1 #0 ocsp: good (next update ...)`."""
    next_update = check.verdict.next_update
    until = f", next update {utc_time(next_update)}" if next_update is not None and check.verdict.status else ""
    detail = f" — {check.verdict.detail}" if check.verdict.failure is not None else ""
    return f"{check.address} #{check.position} {check.method.value}: {verdict_text(check)}{until}{detail}"
