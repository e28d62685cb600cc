"""The TLS 1.3 enumeration state machine (exporter/tlsscan/tls13.py), driven by scripted server
answers: each case lists the hellos it must offer, in order, with the answer to each, and what
it must have found once next_hello says it is done."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from exporter.tlsscan.order import offer_order
from exporter.tlsscan.scanner import TLS13_GROUPS
from exporter.tlsscan.tls13 import Answer, Enumeration, Offer, next_hello, observe, observe_first, start
from exporter.tlswire import NamedGroup, ProtocolVersion
from exporter.tlswire.hello import DEFAULT_KEY_SHARE_GROUPS

A, B, C = 0x1302, 0x1303, 0x1301        # TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256
# X and Y are the groups the client sends key shares for (DEFAULT_KEY_SHARE_GROUPS), Z is not.
X, Y, Z = NamedGroup.X25519, NamedGroup.SECP256R1, NamedGroup.SECP384R1
REFUSED = Answer(None)
OTHER_VERSION = Answer(None, says_other_version=True)


@dataclass(frozen=True)
class Case:
    start: Enumeration
    script: tuple[tuple[Offer, Answer], ...]   # (the hello it must offer, the server's answer)
    accepted: tuple[int, ...]
    found_groups: tuple[int, ...]


CASES = {
    # Suites A, B and groups X, Y; it takes the client's order for both. Each hello finds a
    # suite and a group; the third lists the accepted suites after C (the order is not shown
    # yet) with Z alone: refused although suites that work were offered, so no group is left;
    # the fourth gets B although A was listed after it: client order, so C is not accepted.
    "client order": Case(
        start((A, B, C), (X, Y, Z)),
        ((Offer((A, B, C), (X, Y, Z), (X, Y)), Answer(A, X)),
         (Offer((B, C), (Y, Z), (Y,)), Answer(B, Y)),
         (Offer((C, B, A), (Z,), ()), REFUSED),
         (Offer((C, B, A), (X, Y), (X, Y)), Answer(B, X))),
        accepted=(A, B), found_groups=(X, Y)),
    # Its own order (B before A, Y before X): the first pick shows it. C with Z is refused, which
    # is ambiguous; the accepted suites with Z are refused too, so no group was left; C with
    # the groups seen is refused, so no suite was.
    "own order, ambiguous refusal: the groups ran out": Case(
        start((A, B, C), (X, Y, Z)),
        ((Offer((A, B, C), (X, Y, Z), (X, Y)), Answer(B, Y)),
         (Offer((A, C), (X, Z), (X,)), Answer(A, X)),
         (Offer((C,), (Z,), ()), REFUSED),
         (Offer((C, A, B), (Z,), ()), REFUSED),
         (Offer((C,), (X, Y), (X, Y)), REFUSED)),
        accepted=(B, A), found_groups=(Y, X)),
    # Suite A only, groups X and Z: B with Y, Z is refused (ambiguous); A with them names Z, so
    # a group was left and the suites had run out; A with Y alone is refused: Y is not accepted.
    "ambiguous refusal: the suites ran out": Case(
        start((A, B), (X, Y, Z)),
        ((Offer((A, B), (X, Y, Z), (X, Y)), Answer(A, X)),
         (Offer((B,), (Y, Z), (Y,)), REFUSED),
         (Offer((B, A), (Y, Z), (Y,)), Answer(A, Z)),
         (Offer((A,), (Y,), (Y,)), REFUSED)),
        accepted=(A,), found_groups=(X, Z)),
    # Every suite, group X only, client order.
    "every suite, one group": Case(
        start((A, B, C), (X, Y, Z)),
        ((Offer((A, B, C), (X, Y, Z), (X, Y)), Answer(A, X)),
         (Offer((B, C), (Y, Z), (Y,)), REFUSED),
         (Offer((B, C, A), (Y, Z), (Y,)), REFUSED),
         (Offer((B, C), (X,), (X,)), Answer(B, X)),
         (Offer((C, B, A), (X,), (X,)), Answer(C, X))),
        accepted=(A, B, C), found_groups=(X,)),
    # Own order, everything accepted: a suite and a group per hello, nothing else.
    "one hello per suite and group": Case(
        start((A, B, C), (X, Y, Z)),
        ((Offer((A, B, C), (X, Y, Z), (X, Y)), Answer(C, Z)),
         (Offer((A, B), (X, Y), (X, Y)), Answer(B, Y)),
         (Offer((A,), (X,), (X,)), Answer(A, X))),
        accepted=(C, B, A), found_groups=(Z, Y, X)),
    # TLS 1.2 showed X and Y. The first hello offers Z alone and is refused: no TLS 1.3, or no
    # group left; the same with X and Y too is answered, so the groups left were what it lacked.
    "retry with the groups seen": Case(
        start((A, B), (X, Y, Z), seen_groups=(X, Y)),
        ((Offer((A, B), (Z,), ()), REFUSED),
         (Offer((A, B), (Z, X, Y), ()), Answer(A, X)),
         (Offer((B,), (X, Y), (X, Y)), REFUSED)),
        accepted=(A,), found_groups=()),
    "retry with the groups seen, refused again: no TLS 1.3": Case(
        start((A, B), (X, Y, Z), seen_groups=(X, Y)),
        ((Offer((A, B), (Z,), ()), REFUSED),
         (Offer((A, B), (Z, X, Y), ()), REFUSED)),
        accepted=(), found_groups=()),
    # A protocol_version alert says no TLS 1.3 whatever the groups: no retry.
    "no TLS 1.3, said by the first answer": Case(
        start((A, B), (X, Y, Z), seen_groups=(X, Y)),
        ((Offer((A, B), (Z,), ()), OTHER_VERSION),),
        accepted=(), found_groups=()),
    "no TLS 1.3, every group offered": Case(
        start((A, B), (X, Y, Z)),
        ((Offer((A, B), (X, Y, Z), (X, Y)), REFUSED),),
        accepted=(), found_groups=()),
    # Its own order (A over B) shows in the third pick; that pick names neither a suite nor a
    # group not seen yet (X was not even offered): nothing new, so it stops.
    "an answer naming nothing new ends it": Case(
        start((A, B, C), (X, Y, Z)),
        ((Offer((A, B, C), (X, Y, Z), (X, Y)), Answer(A, X)),
         (Offer((B, C), (Y, Z), (Y,)), Answer(B, Y)),
         (Offer((C, B, A), (Z,), ()), Answer(A, X))),
        accepted=(A, B), found_groups=(X, Y)),
    # The suites ran out (A is the only one), groups are left: a ServerHello without a key_share
    # group, or naming a group it was not offered, teaches nothing, and the same hello would
    # get the same answer until the scan's budget ran out.
    "suites done, an answer without a group ends it": Case(
        start((A,), (X, Y, Z)),
        ((Offer((A,), (X, Y, Z), (X, Y)), Answer(A, X)),
         (Offer((A,), (Y, Z), (Y,)), Answer(A, None))),
        accepted=(A,), found_groups=(X,)),
    "suites done, an answer naming a group not offered ends it": Case(
        start((A,), (X, Y, Z)),
        ((Offer((A,), (X, Y, Z), (X, Y)), Answer(A, X)),
         (Offer((A,), (Y, Z), (Y,)), Answer(A, X))),
        accepted=(A,), found_groups=(X,)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_offers_and_findings(case: Case):
    state = case.start
    for number, (offer, answer) in enumerate(case.script, start=1):
        assert next_hello(state) == offer, f"hello {number}"
        state = observe(state, answer)
    assert next_hello(state) is None
    assert (state.accepted, state.found_groups) == (case.accepted, case.found_groups)


def test_picks_and_working_groups_are_kept_for_the_order_hellos():
    state = start((A, B), (X, Y, Z), seen_groups=(X, Y))
    for answer in (REFUSED, Answer(A, X)):
        state = observe(state, answer)
    assert state.picks == (((A, B), A),)
    assert state.working_groups == (X,)      # named, though seen before: the order hellos offer it
    assert state.found_groups == ()


def test_the_scan_starts_with_every_suite_and_the_groups_tls12_did_not_show():
    seen = (NamedGroup.X25519, NamedGroup.SECP384R1)
    offer = next_hello(start(offer_order(ProtocolVersion.TLS1_3), TLS13_GROUPS, seen_groups=seen))
    assert offer is not None
    assert offer.suites == offer_order(ProtocolVersion.TLS1_3)
    assert offer.groups == tuple(group for group in TLS13_GROUPS if group not in seen)
    assert offer.key_share_groups == tuple(group for group in DEFAULT_KEY_SHARE_GROUPS if group not in seen)


FIRST_HELLO_CASES = {
    # An ordinary client's hello (every suite, X only) before the enumeration's own.
    "a pick starts the enumeration": (Answer(B, X), (B,), (), False),
    "a pick of a group TLS 1.2 did not show": (Answer(B, Z), (B,), (Z,), False),
    "a protocol_version alert ends it": (OTHER_VERSION, (), (), True),
    "another refusal: every group next": (REFUSED, (), (), False),
}


@pytest.mark.parametrize("answer, accepted, found, stopped", FIRST_HELLO_CASES.values(), ids=FIRST_HELLO_CASES.keys())
def test_an_ordinary_clients_first_hello(answer: Answer, accepted: tuple[int, ...], found: tuple[int, ...],
                                         stopped: bool):
    state = start((A, B, C), (X, Y, Z), seen_groups=(X, Y))
    after = observe_first(state, Offer((A, B, C), (X,), (X,)), answer)
    assert (after.accepted, after.found_groups, after.stopped) == (accepted, found, stopped)
    assert after.suites_left == tuple(code for code in (A, B, C) if code not in accepted)
    if answer.suite is not None:
        assert after.picks == (((A, B, C), answer.suite),)
    elif not stopped:
        # The next hello offers every group; refused as well, there is no TLS 1.3.
        assert next_hello(after) == Offer((A, B, C), (Z, X, Y), ())
        assert next_hello(observe(after, REFUSED)) is None
