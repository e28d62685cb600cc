"""The `blocklists:` section of the config file: the DNS blocklists to query and how to
read their answers. docs/blocklists.md has ready-made entries for well-known lists."""

from __future__ import annotations

import functools
import ipaddress
import re

import yaml

from . import yamlnodes as nodes
from .model import Blocklist, BlocklistKind, BlocklistSettings, ListingMeaning, ReturnCodes
from .values import normalize_dns_name

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_LIST_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_KEY_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_MEANINGS = tuple(meaning.value for meaning in ListingMeaning)
_YEAR = 365 * 86400.0


def parse_return_code(text: str) -> ipaddress.IPv4Address:
    """One answer of a list: an IPv4 address in 127.0.0.0/8 (RFC 5782 §2.1)."""
    try:
        address = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address such as 127.0.0.2") from None
    if address not in _LOOPBACK:
        raise ValueError(f"{text!r} is outside 127.0.0.0/8, where lists answer (RFC 5782)")
    return address


def parse_return_code_range(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """"127.0.0.2" or "127.0.0.4-127.0.0.7" -> (first, last)."""
    first_text, dash, last_text = text.partition("-")
    first = parse_return_code(first_text)
    last = parse_return_code(last_text) if dash else first
    if last < first:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return first, last


def parse_query_key(text: str) -> str:
    """A query key (Spamhaus DQS), put before the zone as one DNS label."""
    if not _KEY_RE.fullmatch(text):
        raise ValueError("must be one DNS label: 1 to 63 letters, digits or hyphens, no dots")
    return text


def parse_removal_url(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s\"<>]+", text):
        raise ValueError(f"must be an http:// or https:// URL; got {text!r}")
    return text


def _parse_codes(node: yaml.Node | None, path: str) -> tuple[ReturnCodes, ...]:
    codes: list[tuple[ReturnCodes, yaml.Node]] = []
    for text, key_node, value_node in nodes.entries(node, path):
        code_path = f"{path}.{text}"
        try:
            first, last = parse_return_code_range(text)
        except ValueError as exc:
            raise nodes.Invalid(key_node, f"{code_path}: {exc}") from None
        meaning = ListingMeaning(nodes.choice(_MEANINGS, value_node, code_path))
        for other, other_node in codes:
            if first <= other.last and other.first <= last:
                raise nodes.Invalid(key_node, f"{code_path}: overlaps the codes on line {other_node.start_mark.line + 1}")
        codes.append((ReturnCodes(first, last, meaning), key_node))
    return tuple(code for code, _ in codes)


def _parse_refusal_codes(
    node: yaml.Node, path: str
) -> tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...]:
    return tuple(nodes.checked_string(parse_return_code_range, item, f"{path}[{index}]")
                 for index, item in enumerate(nodes.items(node, path)))


def _parse_test_entry(node: yaml.Node, path: str) -> str:
    """An IPv4 address (IP lists) or a domain name (domain lists); which is checked later."""
    text = nodes.string(node, path)
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return nodes.checked_string(normalize_dns_name, node, path)


def _is_address(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


_LIST_PARSERS = {
    "name": nodes.string,
    "zone": functools.partial(nodes.checked_string, normalize_dns_name),
    "kind": lambda node, path: BlocklistKind(nodes.choice(tuple(BlocklistKind), node, path)),
    "codes": _parse_codes,
    "refusal_codes": _parse_refusal_codes,
    "query_key": functools.partial(nodes.checked_string, parse_query_key),
    "interval": functools.partial(nodes.duration, maximum=_YEAR),
    "removal_url": functools.partial(nodes.checked_string, parse_removal_url),
    "test_listed": _parse_test_entry,
    "test_not_listed": _parse_test_entry,
}


def _parse_list(node: yaml.Node, path: str) -> Blocklist:
    fields = nodes.fields(node, path, tuple(_LIST_PARSERS))
    for required in ("name", "zone", "kind"):
        fields.require(required)
    blocklist = Blocklist(**nodes.given(fields, _LIST_PARSERS))
    if not _LIST_NAME_RE.fullmatch(blocklist.name):
        raise nodes.Invalid(fields.get("name"), f"{fields.path_of('name')}: a list name may only have letters, "
                                                "digits, '_', '.' and '-'")
    clash = next((code for code in blocklist.codes if any(code.first <= last and first <= code.last
                                                         for first, last in blocklist.refusal_codes)), None)
    if clash is not None:
        raise nodes.Invalid(fields.get("refusal_codes"), f"{fields.path_of('refusal_codes')}: a refusal code is "
                                                         f"also a listing code ({clash.first}-{clash.last})")
    for key in ("test_listed", "test_not_listed"):
        entry = getattr(blocklist, key)
        if entry is not None and _is_address(entry) != (blocklist.kind is BlocklistKind.IP):
            expected = "an IPv4 address" if blocklist.kind is BlocklistKind.IP else "a domain name"
            raise nodes.Invalid(fields.get(key), f"{fields.path_of(key)}: must be {expected} for a list of kind "
                                                 f"{blocklist.kind}; got {entry!r}")
    if len(blocklist.query_zone) > 200:
        raise nodes.Invalid(fields.get("zone"), f"{fields.path_of('zone')}: {blocklist.query_zone} leaves too "
                                                "little room for the name queried under it (200 characters at most)")
    return blocklist


def _parse_lists(node: yaml.Node, path: str) -> tuple[Blocklist, ...]:
    lists: list[Blocklist] = []
    first_lines: dict[str, int] = {}
    for index, item in enumerate(nodes.items(node, path)):
        blocklist = _parse_list(item, f"{path}[{index}]")
        for key in (f"name {blocklist.name}", f"zone {blocklist.query_zone}"):
            if key in first_lines:
                raise nodes.Invalid(item, f"{path}[{index}]: same {key} as the list on line {first_lines[key]}")
            first_lines[key] = item.start_mark.line + 1
        lists.append(blocklist)
    return tuple(lists)


_PARSERS = {
    "lists": _parse_lists,
    "spf_addresses": nodes.boolean,
    "concurrency": functools.partial(nodes.integer, low=1, high=256),
}


def parse_blocklists(node: yaml.Node | None, path: str) -> BlocklistSettings:
    fields = nodes.fields(node, path, tuple(_PARSERS))
    return BlocklistSettings(**nodes.given(fields, _PARSERS))
