"""Shared pieces of the record parsers: the error type, warnings, and tag lists.

Two tag-list grammars exist among mail-authentication records:

* the DKIM one (RFC 6376 §3.2), reused by DMARC and BIMI: `name = value` pairs split by
  ";", whitespace allowed around names, "=" and values;
* the stricter one of MTA-STS and TLS-RPT (RFC 8461 §3.1, RFC 8460 §3): `name=value`
  with no whitespace around "=", field names of up to 32 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class RecordError(ValueError):
    """A record is syntactically invalid. Each parser raises its own subclass.

    `position` is the 0-based character offset of the offending part in the parsed text
    (None when the problem is the record as a whole, e.g. a missing tag).
    """

    def __init__(self, message: str, position: int | None = None):
        self.reason = message
        self.position = position
        where = f" (at offset {position})" if position is not None else ""
        super().__init__(f"{message}{where}")


@dataclass(frozen=True)
class RecordWarning:
    """Something valid but worth telling the domain owner about."""

    code: str       # stable and machine-readable, e.g. "ptr_used"; suitable as a metric label
    message: str    # for people: names the term or tag concerned


@dataclass(frozen=True)
class Tag:
    name: str
    value: str
    position: int   # offset of the tag name in the record


_DKIM_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_STRICT_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
# Printable ASCII with inner blanks: TLS-RPT's rua allows "=" in URIs and blanks around
# commas, so this is a little wider than MTA-STS's sts-ext-value; callers check the rest.
_STRICT_FIELD_VALUE = re.compile(r"[\x21-\x7e](?:[ \t\x21-\x7e]*[\x21-\x7e])?\Z")
_FWS = " \t\r\n"


def parse_tag_list(
    text: str, error: type[RecordError], *, case_insensitive_names: bool = False
) -> tuple[Tag, ...]:
    """Split an RFC 6376 §3.2 tag-list into tags, in order.

    Empty elements (";;", a trailing ";") are tolerated. Duplicate names are an error
    (RFC 6376: "the entire tag-list is invalid"). With `case_insensitive_names` the names
    are returned lower-cased and compared that way (DMARC, whose ABNF literals are
    case-insensitive); DKIM names are case-sensitive.
    """
    tags: list[Tag] = []
    seen: set[str] = set()
    offset = 0
    for element in text.split(";"):
        start = offset
        offset += len(element) + 1
        if not element.strip(_FWS):
            continue
        if "=" not in element:
            raise error(f"{element.strip(_FWS)!r} is not a tag=value pair", start + _lead(element))
        raw_name, raw_value = element.split("=", 1)
        name = raw_name.strip(_FWS)
        position = start + _lead(raw_name)
        if not _DKIM_TAG_NAME.match(name):
            raise error(f"invalid tag name {name!r}", position)
        value = raw_value.strip(_FWS)
        bad = next((c for c in value if not _is_tag_value_char(c)), None)
        if bad is not None:
            raise error(f"tag {name!r}: invalid character {bad!r} in value", position)
        if case_insensitive_names:
            name = name.lower()
        if name in seen:
            raise error(f"duplicate tag {name!r}", position)
        seen.add(name)
        tags.append(Tag(name, value, position))
    return tuple(tags)


def parse_strict_fields(text: str, error: type[RecordError]) -> tuple[Tag, ...]:
    """Split an MTA-STS / TLS-RPT TXT record (`field *( *WSP ";" *WSP field ) [";"]`).

    Duplicate field names are an error: the RFCs leave no way to choose between them.
    """
    fields: list[Tag] = []
    seen: set[str] = set()
    offset = 0
    elements = text.split(";")
    for index, element in enumerate(elements):
        start = offset
        offset += len(element) + 1
        field = element.strip(" \t")
        position = start + len(element) - len(element.lstrip(" \t"))
        if not field:
            if index == len(elements) - 1 and index > 0:
                continue   # the optional trailing ";"
            raise error("empty field", position)
        name, equals, value = field.partition("=")
        if not equals or not _STRICT_FIELD_NAME.match(name):
            raise error(f"{field!r} is not a name=value field", position)
        if not _STRICT_FIELD_VALUE.match(value):
            raise error(f"field {name!r} has an empty or invalid value {value!r}", position)
        if name in seen:
            raise error(f"duplicate field {name!r}", position)
        seen.add(name)
        fields.append(Tag(name, value, position))
    return tuple(fields)


def parse_strict_record(
    text: str, error: type[RecordError], version: str, required: str
) -> dict[str, Tag]:
    """Parse an MTA-STS / TLS-RPT TXT record that must start with `v=<version>` and have
    the field `required`; the fields by name, in record order."""
    fields = parse_strict_fields(text, error)
    if fields[0].name != "v" or fields[0].value != version:
        raise error(f"the record must start with v={version}", fields[0].position)
    by_name = tag_map(fields)
    if required not in by_name:
        raise error(f"the required field {required!r} is missing")
    return by_name


def tag_map(tags: tuple[Tag, ...]) -> dict[str, Tag]:
    return {tag.name: tag for tag in tags}


def split_list(value: str, separator: str) -> tuple[str, ...]:
    """Split a tag value on `separator`, dropping surrounding whitespace of each item."""
    return tuple(item.strip(_FWS) for item in value.split(separator))


def _lead(text: str) -> int:
    """How many whitespace characters `text` starts with."""
    return len(text) - len(text.lstrip(_FWS))


def _is_tag_value_char(char: str) -> bool:
    # RFC 6376 tval: %x21-3A / %x3C-7E, plus folding whitespace inside the value.
    return char in _FWS or ("\x21" <= char <= "\x7e" and char != ";")
