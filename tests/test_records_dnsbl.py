"""The pure DNS blocklist helpers (RFC 5782): query names, answers, test entries, networks."""

from __future__ import annotations

import ipaddress

import pytest

from exporter.records.dnsbl import (
    AnswerKind,
    CodeRange,
    ListProblem,
    Outcome,
    domain_query_name,
    expand_network,
    first_url,
    ip_query_name,
    judge_test_entries,
    query_problem,
    query_zone,
    read_answer,
    redact_key,
    reversed_address,
)

A = ipaddress.IPv4Address


@pytest.mark.parametrize("address, reversed_", [
    ("192.0.2.99", "99.2.0.192"),
    ("127.0.0.2", "2.0.0.127"),
    ("10.0.0.1", "1.0.0.10"),
    # RFC 5782 §2.4's own example.
    ("2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"),
    ("::1", ".".join("1" + "0" * 31)),
    ("2001:DB8::", "0." * 24 + "8.b.d.0.1.0.0.2"),
])
def test_reversed_address(address, reversed_):
    assert reversed_address(address) == reversed_


def test_query_names():
    assert ip_query_name("192.0.2.99", "zen.spamhaus.org") == "99.2.0.192.zen.spamhaus.org"
    assert domain_query_name("Example.ORG.", "dbl.spamhaus.org") == "example.org.dbl.spamhaus.org"
    with pytest.raises(ValueError, match="longer than 253"):
        domain_query_name(".".join(["a" * 63] * 3) + "." + "b" * 50 + ".org", "dbl.spamhaus.org")


@pytest.mark.parametrize("zone, key, expected", [
    ("zen.dq.spamhaus.net", "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net"),
    ("zen.spamhaus.org", None, "zen.spamhaus.org"),
    ("zen.spamhaus.org", "", "zen.spamhaus.org"),
])
def test_query_zone(zone, key, expected):
    assert query_zone(zone, key) == expected


def test_redact_key():
    assert redact_key("2.0.0.127.sekrit.zen.dq.spamhaus.net A: timed out", "sekrit") == \
        "2.0.0.127.<key>.zen.dq.spamhaus.net A: timed out"
    assert redact_key("no key here", None) == "no key here"


@pytest.mark.parametrize("network, expected", [
    ("192.0.2.8/29", tuple(f"192.0.2.{n}" for n in range(8, 16))),
    ("192.0.2.1/32", ("192.0.2.1",)),
    ("192.0.2.0/28", None),                  # 16 addresses: too many
    ("10.0.0.0/8", None),
    ("2001:db8::/125", ("2001:db8::", *(f"2001:db8::{n}" for n in range(1, 8)))),
    ("2001:db8::5/128", ("2001:db8::5",)),
    ("2001:db8::/124", None),
    ("2001:db8::/32", None),
])
def test_expand_network(network, expected):
    assert expand_network(ipaddress.ip_network(network)) == expected


ZEN = (
    CodeRange(A("127.0.0.2"), A("127.0.0.2"), "sbl"),
    CodeRange(A("127.0.0.3"), A("127.0.0.3"), "css"),
    CodeRange(A("127.0.0.4"), A("127.0.0.7"), "xbl"),
    CodeRange(A("127.0.0.9"), A("127.0.0.9"), "drop"),
    CodeRange(A("127.0.0.10"), A("127.0.0.11"), "pbl"),
)
REFUSALS = ((A("127.255.255.252"), A("127.255.255.252")), (A("127.255.255.254"), A("127.255.255.255")))


@pytest.mark.parametrize("answer, kind, meanings", [
    (["127.0.0.2"], AnswerKind.LISTED, ("sbl",)),
    (["127.0.0.5"], AnswerKind.LISTED, ("xbl",)),
    (["127.0.0.11"], AnswerKind.LISTED, ("pbl",)),
    (["127.0.0.10", "127.0.0.4", "127.0.0.6"], AnswerKind.LISTED, ("xbl", "pbl")),   # each meaning once, table order
    (["127.0.0.8"], AnswerKind.LISTED, ("unknown",)),                              # between two ranges
    (["127.0.0.2", "127.0.0.200"], AnswerKind.LISTED, ("sbl", "unknown")),
    (["127.255.255.254"], AnswerKind.REFUSED, ()),
    (["127.255.255.255"], AnswerKind.REFUSED, ()),
    (["127.255.255.253"], AnswerKind.LISTED, ("unknown",)),                        # between two refusal ranges
    (["127.0.0.2", "127.255.255.252"], AnswerKind.REFUSED, ()),                    # a refusal wins
    (["192.0.2.80"], AnswerKind.UNEXPECTED, ()),                                   # NXDOMAIN rewritten
    (["127.0.0.2", "10.0.0.1"], AnswerKind.UNEXPECTED, ()),
    ([], AnswerKind.UNEXPECTED, ()),
])
def test_read_answer(answer, kind, meanings):
    reading = read_answer(answer, ZEN, REFUSALS, "unknown")
    assert (reading.kind, reading.meanings) == (kind, meanings)
    assert reading.codes == tuple(sorted(set(answer), key=lambda a: ipaddress.ip_address(a)))


def test_read_answer_without_a_table_means_unknown():
    assert read_answer(["127.0.0.2"], (), (), "other").meanings == ("other",)


L, N = Outcome.LISTED, Outcome.NOT_LISTED


@pytest.mark.parametrize("listed, not_listed, problem", [
    (L, N, None),
    (N, N, ListProblem.LIST_DEAD),                       # 127.0.0.2 NXDOMAIN: the list is gone
    (L, L, ListProblem.LISTS_EVERYTHING),                # 127.0.0.1 listed: a wildcard
    (N, L, ListProblem.LIST_DEAD),
    (Outcome.REFUSED, Outcome.REFUSED, ListProblem.REFUSED_BY_LIST),
    (L, Outcome.REFUSED, ListProblem.REFUSED_BY_LIST),
    (Outcome.TIMEOUT, N, ListProblem.TIMEOUT),
    (Outcome.TIMEOUT, Outcome.REFUSED, ListProblem.REFUSED_BY_LIST),    # the refusal explains the rest
    (L, Outcome.SERVFAIL, ListProblem.SERVFAIL),
    (Outcome.ERROR, N, ListProblem.DNS_ERROR),
    (Outcome.UNEXPECTED, Outcome.UNEXPECTED, ListProblem.UNEXPECTED_ANSWER),
])
def test_judge_test_entries(listed, not_listed, problem):
    assert judge_test_entries(listed, not_listed) == problem


@pytest.mark.parametrize("outcome, problem", [
    (Outcome.LISTED, None), (Outcome.NOT_LISTED, None), (Outcome.TIMEOUT, ListProblem.TIMEOUT),
    (Outcome.REFUSED, ListProblem.REFUSED_BY_LIST), (Outcome.UNEXPECTED, ListProblem.UNEXPECTED_ANSWER),
    (Outcome.SERVFAIL, ListProblem.SERVFAIL), (Outcome.ERROR, ListProblem.DNS_ERROR),
])
def test_query_problem(outcome, problem):
    assert query_problem(outcome) == problem


@pytest.mark.parametrize("text, url", [
    ("Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL12345", "https://check.spamhaus.org/sbl/query/SBL12345"),
    ('"Blocked - see http://www.spamcop.net/bl.shtml?192.0.2.1".', "http://www.spamcop.net/bl.shtml?192.0.2.1"),
    ("(see https://example.org/x).", "https://example.org/x"),
    ("no link here", None),
    ("", None),
])
def test_first_url(text, url):
    assert first_url(text) == url
