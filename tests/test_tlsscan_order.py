"""order.py: the offer order and what picks prove about the server's cipher order."""

from __future__ import annotations

import pytest

from exporter.tlsscan.order import (
    offer_order, order_test, passed_over, picked_against_client_order, picked_in_two_orders, server_order_verdict,
)
from exporter.tlswire import ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES, KeyExchange, suites_for_version
from exporter.tlswire.grading import grade_cipher_suite

A, B, C, D = 0xC02F, 0xC030, 0xCCA8, 0x009C


@pytest.mark.parametrize("version", [ProtocolVersion.SSL3, ProtocolVersion.TLS1_0, ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3])
def test_offer_order_is_every_usable_suite_ecdhe_first_dhe_last_worst_first(version):
    order = offer_order(version)
    assert sorted(order) == sorted(s.code for s in suites_for_version(version) if s.code != 0x0000)
    families = [CIPHER_SUITES[code].key_exchange for code in order]
    ranks = [0 if f is KeyExchange.ECDHE else 2 if f is KeyExchange.DHE else 1 for f in families]
    assert ranks == sorted(ranks)
    for rank in set(ranks):
        same = [code for code, r in zip(order, ranks) if r == rank]
        keys = [(-grade_cipher_suite(code), -code) for code in same]
        assert keys == sorted(keys)


@pytest.mark.parametrize("picks, accepted, expected", [
    # got B although the accepted A came first: its own order
    ([((A, B, C), B)], {A, B}, True),
    # got the first accepted suite of the list: no proof either way
    ([((A, B, C), A), ((B, C), B)], {A, B}, False),
    # an unaccepted suite before the pick proves nothing
    ([((D, A, B), A)], {A, B}, False),
])
def test_picked_against_client_order(picks, accepted, expected):
    assert picked_against_client_order(picks, accepted) is expected


@pytest.mark.parametrize("picks, expected", [
    ([((A, B, C), A), ((C, B, A), C)], True),       # A before C got A, C before A got C
    ([((A, B, C), A), ((B, C), B)], False),         # A never offered again
    ([((A, B), A), ((A, B), A)], False),            # the same pick twice
    ([((A, B, C), A), ((C, B, A), A)], False),      # A both times: its own order, not two orders
])
def test_picked_in_two_orders(picks, expected):
    assert picked_in_two_orders(picks) is expected


@pytest.mark.parametrize("picks, expected", [
    ([], set()),
    ([((A, B, C), A)], set()),                      # the first suite: nothing skipped
    ([((A, B, C), C)], {A, B}),
    ([((A, B, C, D), B), ((C, D, A), D)], {A, C}),  # every hello counts
])
def test_passed_over_is_what_came_before_each_pick(picks, expected):
    assert passed_over(picks) == expected


@pytest.mark.parametrize("picks, accepted, expected", [
    ([((A, B, C), B)], {A, B}, True),
    ([((A, B, C), A), ((C, B, A), C)], {A, C}, False),
    ([((A, B, C), A), ((B, C), B)], {A, B}, None),
    ([], set(), None),
])
def test_server_order_verdict(picks, accepted, expected):
    assert server_order_verdict(picks, accepted) is expected


def test_order_test_lists_the_rest_then_two_picks_in_reverse():
    picks = [((A, B, C, D), A), ((B, C, D), B)]
    assert order_test(picks, [C, D]) == (C, D, B, A)


def test_order_test_needs_a_pick_whose_hello_offered_every_remaining_suite():
    # The first hello offered only A and B (what a higher version accepted): it says nothing
    # about C and D, so it cannot anchor the test; the second one can once a third pick exists.
    picks = [((A, B), A), ((B, C, D), B)]
    assert order_test(picks, [C, D]) is None
    assert order_test([*picks, ((C, D), C)], [D]) == (D, C, B)


def test_no_order_test_before_two_picks():
    assert order_test([((A, B, C), A)], [B, C]) is None
