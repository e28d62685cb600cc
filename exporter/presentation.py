"""Small formatting shared by every presentation of results (status page, `scan` and
`check` output, /probe?debug=true), so that they say the same thing the same way."""

from __future__ import annotations

import datetime
import unicodedata

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


# What `printable` escapes: controls (C0, DEL, C1), format characters (bidi overrides and
# isolates such as U+202E, zero-width characters), line and paragraph separators, and lone
# surrogates. Each can make a terminal or a page show something else than the text.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def printable(text: str) -> str:
    """`text` as it may be shown to a person: every character a terminal or a browser would
    act on instead of showing it (ESC sequences, newlines, U+202E) written as an escape
    (`\\x1b`, `\\n` as `\\x0a`, `\\u202e`), so server-controlled words cannot colour, move,
    reorder or forge lines of a report."""
    if text.isprintable():     # the common case; isprintable() is False for every escaped category
        return text
    return "".join(_escape(char) if unicodedata.category(char) in _UNPRINTABLE_CATEGORIES else char
                   for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
