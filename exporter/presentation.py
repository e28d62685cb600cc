"""Small formatting shared by every presentation of results (status page, `scan` and
`check` output, /probe?debug=true), so that they say the same thing the same way."""

from __future__ import annotations

import datetime

DAY_SECONDS = 86400.0
# As the shipped alert rules: a certificate is a warning under 21 days, critical under 7.
CERT_WARNING_DAYS = 21
CERT_CRITICAL_DAYS = 7


def yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def utc_time(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def days_until(timestamp: float, now: float) -> float:
    return (timestamp - now) / DAY_SECONDS
