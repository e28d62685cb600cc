"""DNS blocklists (RFC 5782): the names to query, how to read the answers, and how to judge
a list by its test entries. Pure functions; the queries are in exporter/reputation/.

An IP list is asked for `<reversed address>.<zone>` A: IPv4 as its octets reversed
(192.0.2.99 -> 99.2.0.192), IPv6 as its 32 nibbles reversed (RFC 5782 §2.4). A domain list
is asked for `<domain>.<zone>` A. An answer in 127.0.0.0/8 is a listing, its address a
return code whose meaning the list documents; no record (NXDOMAIN) means not listed.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Generic, Iterable, Sequence, TypeVar

Meaning = TypeVar("Meaning")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
MAX_NAME_LENGTH = 253

# The largest networks whose every address is checked: 8 addresses each. A larger network
# (an ISP's /24 in an SPF record, say) is skipped, not sampled: its reputation is not the
# domain's alone, and 256 queries per list and cycle would be abuse of a free service.
MAX_IPV4_PREFIX_EXPANDED = 29
MAX_IPV6_PREFIX_EXPANDED = 125

# RFC 5782 §5: every IP list lists 127.0.0.2 and never 127.0.0.1; every domain list lists
# TEST and never INVALID.
IP_TEST_LISTED, IP_TEST_NOT_LISTED = "127.0.0.2", "127.0.0.1"
DOMAIN_TEST_LISTED, DOMAIN_TEST_NOT_LISTED = "test", "invalid"


def reversed_address(address: str) -> str:
    """The query label sequence of an IP address: reversed octets (IPv4), reversed nibbles (IPv6)."""
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv4Address):
        return ".".join(reversed(str(parsed).split(".")))
    return ".".join(reversed(parsed.exploded.replace(":", "")))


def ip_query_name(address: str, zone: str) -> str:
    return f"{reversed_address(address)}.{zone}"


def domain_query_name(name: str, zone: str) -> str:
    """`name` under `zone`; ValueError when the result is longer than a DNS name may be."""
    query = f"{name.rstrip('.').lower()}.{zone}"
    if len(query) > MAX_NAME_LENGTH:
        raise ValueError(f"{name} under {zone} is longer than {MAX_NAME_LENGTH} characters")
    return query


def query_zone(zone: str, key: str | None) -> str:
    """The zone queries go to: a query key (Spamhaus DQS) is the label before the zone."""
    return f"{key}.{zone}" if key else zone


def redact_key(text: str, key: str | None) -> str:
    """`text` (an error naming a query) with the query key replaced: keys are secrets."""
    return text.replace(key, "<key>") if key else text


def expand_network(network: IPNetwork) -> tuple[str, ...] | None:
    """Every address of a small network (up to /29 or /125); None for a larger one."""
    limit = MAX_IPV4_PREFIX_EXPANDED if network.version == 4 else MAX_IPV6_PREFIX_EXPANDED
    if network.prefixlen < limit:
        return None
    return tuple(str(address) for address in network)


@dataclass(frozen=True)
class CodeRange(Generic[Meaning]):
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    meaning: Meaning


class AnswerKind(enum.StrEnum):
    LISTED = "listed"
    REFUSED = "refused"          # a "you may not query" code: an error of the list
    UNEXPECTED = "unexpected"    # an address outside 127.0.0.0/8: a resolver that rewrites NXDOMAIN


@dataclass(frozen=True)
class Reading(Generic[Meaning]):
    kind: AnswerKind
    codes: tuple[str, ...]           # the addresses answered, sorted
    meanings: tuple[Meaning, ...]    # for LISTED: what the codes mean, each once, in table order


def read_answer(
    addresses: Iterable[str],
    table: Sequence[CodeRange[Meaning]],
    refusal_codes: Sequence[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]],
    unknown: Meaning,
) -> Reading[Meaning]:
    """What the A records of one query say. A refusal code (in one of the (first, last)
    ranges) anywhere makes it a refusal; a code that is not in `table` means `unknown`."""
    parsed = sorted({ipaddress.ip_address(address) for address in addresses}, key=lambda a: (a.version, a))
    codes = tuple(str(address) for address in parsed)
    if not parsed or any(address not in _LOOPBACK for address in parsed):
        return Reading(AnswerKind.UNEXPECTED, codes, ())
    if any(first <= address <= last for address in parsed for first, last in refusal_codes):
        return Reading(AnswerKind.REFUSED, codes, ())
    meanings: list[Meaning] = []
    for address in parsed:
        meaning = next((row.meaning for row in table if row.first <= address <= row.last), unknown)
        if meaning not in meanings:
            meanings.append(meaning)
    order = [row.meaning for row in table] + [unknown]
    return Reading(AnswerKind.LISTED, codes, tuple(sorted(meanings, key=order.index)))


class Outcome(enum.StrEnum):
    """How one query to a list ended."""

    LISTED = "listed"
    NOT_LISTED = "not_listed"    # NXDOMAIN (or NODATA)
    REFUSED = "refused"
    UNEXPECTED = "unexpected"
    TIMEOUT = "timeout"
    SERVFAIL = "servfail"
    ERROR = "error"


class ListProblem(enum.StrEnum):
    """Why a list or a query to it is not usable: the `reason` label, a closed set."""

    TIMEOUT = "timeout"
    SERVFAIL = "servfail"
    DNS_ERROR = "dns_error"                  # REFUSED rcode, unreachable resolver, malformed answer
    REFUSED_BY_LIST = "refused_by_list"      # a "you may not query" code (public or unregistered resolver)
    UNEXPECTED_ANSWER = "unexpected_answer"  # an answer outside 127.0.0.0/8
    LIST_DEAD = "list_dead"                  # the test entry that must be listed is not
    LISTS_EVERYTHING = "lists_everything"    # the test entry that must not be listed is


_PROBLEM_OF_OUTCOME = {
    Outcome.REFUSED: ListProblem.REFUSED_BY_LIST,
    Outcome.UNEXPECTED: ListProblem.UNEXPECTED_ANSWER,
    Outcome.TIMEOUT: ListProblem.TIMEOUT,
    Outcome.SERVFAIL: ListProblem.SERVFAIL,
    Outcome.ERROR: ListProblem.DNS_ERROR,
}


def query_problem(outcome: Outcome) -> ListProblem | None:
    """The problem of a query that did not say listed or not listed."""
    return _PROBLEM_OF_OUTCOME.get(outcome)


def judge_test_entries(must_be_listed: Outcome, must_not_be_listed: Outcome) -> ListProblem | None:
    """Whether a list answers its RFC 5782 test entries as it must; None when it does.
    A refusal comes first (it explains the rest), then other errors, then wrong answers."""
    outcomes = (must_be_listed, must_not_be_listed)
    for outcome in (Outcome.REFUSED, Outcome.UNEXPECTED, Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.ERROR):
        if outcome in outcomes:
            return _PROBLEM_OF_OUTCOME[outcome]
    if must_be_listed is not Outcome.LISTED:
        return ListProblem.LIST_DEAD
    if must_not_be_listed is Outcome.LISTED:
        return ListProblem.LISTS_EVERYTHING
    return None


def first_url(text: str) -> str | None:
    """The first http(s) URL in a list's TXT reason (where it says how to get delisted)."""
    for word in text.replace('"', " ").split():
        if word.startswith(("https://", "http://")):
            return word.rstrip(".,;)")
    return None
