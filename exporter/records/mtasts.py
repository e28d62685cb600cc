"""MTA-STS (RFC 8461): the _mta-sts TXT record, the policy file, and MX pattern matching.

Both parsers are strict to the RFC grammar (keys and fixed values are case-sensitive), as
a sending MTA may be: a policy that only a lenient parser accepts is a policy at risk.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from exporter.records.common import RecordError, Tag, parse_strict_record


class MTASTSError(RecordError):
    """The TXT record or the policy file is invalid: senders treat it as absent."""


@dataclass(frozen=True)
class STSRecord:
    id: str                       # changes whenever the policy changes
    extensions: tuple[Tag, ...]   # fields other than v and id, ignored by senders


class STSMode(enum.StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class STSPolicy:
    version: str
    mode: STSMode
    max_age: int                           # seconds
    mx: tuple[str, ...]                    # patterns as written
    extensions: tuple[tuple[str, str], ...]  # unknown "key: value" lines, in order

    def allows_mx(self, hostname: str) -> bool:
        """Whether an MX host name matches one of the policy's patterns."""
        return any(mx_pattern_matches(pattern, hostname) for pattern in self.mx)


MAX_AGE_LIMIT = 31557600   # one year, RFC 8461 §3.2
_SELECT = re.compile(r"v=STSv1[ \t]*(?:;|\Z)")
_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MX_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\Z")
_POLICY_KEYS = ("version", "mode", "max_age")


def select_sts_records(txt_strings: list[str]) -> list[str]:
    """The TXT records at _mta-sts.<domain> that begin with v=STSv1 (§3.1).
    Anything but exactly one means the domain has no usable policy."""
    return [text for text in txt_strings if _SELECT.match(text)]


def parse_sts_record(text: str) -> STSRecord:
    """Parse the _mta-sts TXT record; raise MTASTSError if invalid."""
    by_name = parse_strict_record(text, MTASTSError, "STSv1", required="id")
    if not _ID.match(by_name["id"].value):
        raise MTASTSError(
            f"id={by_name['id'].value!r} must be 1 to 32 letters or digits",
            by_name["id"].position,
        )
    extensions = tuple(field for field in by_name.values() if field.name not in ("v", "id"))
    for field in extensions:
        if re.search(r"[ \t=]", field.value):
            raise MTASTSError(f"invalid value in field {field.name!r}", field.position)
    return STSRecord(by_name["id"].value, extensions)


def parse_sts_policy(body: str | bytes) -> STSPolicy:
    """Parse a policy file (the body of https://mta-sts.<domain>/.well-known/mta-sts.txt).

    Lines end in CRLF or LF; blank lines are tolerated. Errors name the line number.
    """
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MTASTSError("the policy is not UTF-8", error.start) from None
    values: dict[str, str] = {}
    mx: list[str] = []
    extensions: list[tuple[str, str]] = []
    offset = 0
    for number, raw_line in enumerate(body.split("\n"), start=1):
        line_offset = offset
        offset += len(raw_line) + 1
        line = raw_line.removesuffix("\r")
        if not line.strip(" \t"):
            continue
        match = _LINE.match(line)
        if not match or not match.group(2) or _has_control_char(match.group(2)):
            raise MTASTSError(f"line {number}: {line!r} is not a 'key: value' line", line_offset)
        key, value = match.groups()
        if key == "mx":
            if not _MX_PATTERN.match(value) or len(value) > 253:
                raise MTASTSError(f"line {number}: invalid mx pattern {value!r}", line_offset)
            mx.append(value)
        elif key in _POLICY_KEYS:
            if key in values:
                raise MTASTSError(f"line {number}: {key!r} given twice", line_offset)
            values[key] = value
        else:
            extensions.append((key, value))

    for key in _POLICY_KEYS:
        if key not in values:
            raise MTASTSError(f"the required key {key!r} is missing")
    if values["version"] != "STSv1":
        raise MTASTSError(f"version {values['version']!r} is not STSv1")
    try:
        mode = STSMode(values["mode"])
    except ValueError:
        raise MTASTSError(f"mode {values['mode']!r} is not enforce, testing or none") from None
    max_age_text = values["max_age"]
    if not re.fullmatch(r"[0-9]{1,10}", max_age_text) or int(max_age_text) > MAX_AGE_LIMIT:
        raise MTASTSError(f"max_age {max_age_text!r} is not an integer in 0..{MAX_AGE_LIMIT}")
    if not mx and mode != STSMode.NONE:
        raise MTASTSError(f"mode {mode} needs at least one mx pattern")
    return STSPolicy("STSv1", mode, int(max_age_text), tuple(mx), tuple(extensions))


def mx_pattern_matches(pattern: str, hostname: str) -> bool:
    """RFC 8461 §4.1: case-insensitive equality, or "*." matching exactly one label."""
    pattern = pattern.lower().rstrip(".")
    hostname = hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        first_label, dot, rest = hostname.partition(".")
        return bool(first_label) and bool(dot) and rest == pattern[2:]
    return pattern == hostname


def _has_control_char(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text if char != "\t")
