"""The TLS 1.3 enumeration of suites and groups (step 2 of scanner.py's docstring) as a pure
state machine: `next_hello` says what the next hello offers, `observe` what its answer
teaches. The scanner sends the hellos; everything here can be driven by scripted answers.

Each hello offers the suites left, then (to show the order, or once the suites are known to
have run out) the accepted ones in reverse; and the groups not seen yet, then (when a refusal
must mean "no suite left") the groups already seen. Which group a server names in TLS 1.3
says nothing about the others: it may follow the client's order in TLS 1.2 and its own in
TLS 1.3 (OpenSSL 3.0 does): the groups TLS 1.2 showed are not asked about again, but what
its curve picks showed about the server's order is not carried over.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from ..tlswire.hello import DEFAULT_KEY_SHARE_GROUPS
from .order import Pick, server_order_verdict


@dataclass(frozen=True)
class Offer:
    """What one ClientHello offers, each in the order it is sent."""

    suites: tuple[int, ...]
    groups: tuple[int, ...]
    key_share_groups: tuple[int, ...]


@dataclass(frozen=True)
class Answer:
    """The server's answer to an Offer: the suite and group its ServerHello or
    HelloRetryRequest named, or suite None for a refusal (alert, close, another version...)."""

    suite: int | None
    group: int | None = None
    says_other_version: bool = False    # a protocol_version alert, or a ServerHello of another version


@dataclass(frozen=True)
class Enumeration:
    """What the hellos so far have shown, and what is still to ask."""

    groups: tuple[int, ...]              # every group there is to offer, in the client's order
    suites_left: tuple[int, ...]         # in offer order
    groups_left: tuple[int, ...]         # in the order of `groups`
    key_share_candidates: tuple[int, ...] = DEFAULT_KEY_SHARE_GROUPS
    accepted: tuple[int, ...] = ()       # suites, in the order found
    found_groups: tuple[int, ...] = ()   # groups of `groups_left` an answer named, in the order found
    working_groups: tuple[int, ...] = ()  # every group an answer named
    picks: tuple[Pick, ...] = ()
    suites_ran_out: bool = False
    groups_ran_out: bool = False
    # A refusal of new suites with new groups: either ran out; the next hello tells which.
    ambiguous: bool = False
    # The first hello offered only the groups not seen in TLS 1.2 and was refused: the next
    # offers them all; accepted then, the groups left were what it lacked.
    retry_with_seen: bool = False
    # An ordinary client's hello (observe_first) was refused: no TLS 1.3, or none of its
    # groups; the next hello offers every group, and a refusal of that one ends it.
    every_group_next: bool = False
    stopped: bool = False

    @property
    def suites_done(self) -> bool:
        return self.suites_ran_out or not self.suites_left

    @property
    def groups_done(self) -> bool:
        return self.groups_ran_out or not self.groups_left

    @property
    def seen_groups(self) -> tuple[int, ...]:
        return tuple(group for group in self.groups if group not in self.groups_left)


def start(suites: Sequence[int], groups: Sequence[int], seen_groups: Collection[int] = ()) -> Enumeration:
    """An enumeration of `suites` (in offer order) and `groups` (in the client's order),
    `seen_groups` being known already (from TLS 1.2) and so not asked about first."""
    return Enumeration(groups=tuple(groups), suites_left=tuple(suites),
                       groups_left=tuple(group for group in groups if group not in seen_groups))


def next_hello(state: Enumeration) -> Offer | None:
    """The next hello to send; None when the enumeration is over."""
    if state.stopped or (state.suites_done and state.groups_done):
        return None
    suites = (() if state.suites_done else state.suites_left) + (
        state.accepted[::-1] if _offers_accepted(state) else ())
    groups = (() if state.groups_done else state.groups_left) + (
        state.seen_groups if _offers_seen(state) else ())
    shareable = state.seen_groups if state.groups_done else state.groups_left
    key_shares = tuple(group for group in state.key_share_candidates if group in shareable)
    return Offer(suites, groups, key_shares)


def observe(state: Enumeration, answer: Answer) -> Enumeration:
    """The state after `answer` to the hello `next_hello(state)`."""
    offer = next_hello(state)
    assert offer is not None, "observe() after the enumeration ended"
    if answer.suite is None:
        return _after_refusal(state, answer)
    return _after_pick(state, offer, answer.suite, answer.group)


def observe_first(state: Enumeration, offer: Offer, answer: Answer) -> Enumeration:
    """The state after `answer` to a hello sent before the enumeration's own (an ordinary
    client's, offering every suite): a pick counts like any other; a refusal that says
    "another version" ends the enumeration; after any other refusal the next hello offers every
    group, so that a refusal of it too says "no TLS 1.3" at once."""
    if answer.suite is None:
        return replace(state, stopped=True) if answer.says_other_version else replace(state, every_group_next=True)
    return _with_pick(state, offer, answer.suite, answer.group)


def _offers_accepted(state: Enumeration) -> bool:
    """Whether the next hello lists the accepted suites too: when the suites have run out (the
    hello asks about groups), to resolve an ambiguous refusal, or to show the server's order
    while it is not shown yet."""
    if not state.accepted:
        return False
    if state.suites_done or state.ambiguous:
        return True
    return len(state.accepted) >= 2 and server_order_verdict(state.picks, set(state.accepted)) is not True


def _offers_seen(state: Enumeration) -> bool:
    return state.groups_done or state.retry_with_seen or state.every_group_next


def _after_refusal(state: Enumeration, answer: Answer) -> Enumeration:
    offered_seen, offered_accepted = _offers_seen(state), _offers_accepted(state)
    if not state.accepted:
        if not offered_seen and state.groups_left != state.groups and not answer.says_other_version:
            return replace(state, retry_with_seen=True)        # no TLS 1.3, or none of the groups left
        return replace(state, stopped=True)                    # no TLS 1.3, or no suite at all
    if offered_seen and offered_accepted:
        return replace(state, stopped=True)                    # refused what worked before
    if offered_seen:
        return replace(state, suites_ran_out=True)             # a group that works was offered
    if offered_accepted:
        return replace(state, groups_ran_out=True, ambiguous=False)   # suites that work were offered
    return replace(state, ambiguous=True)                      # either ran out; the next hello tells


def _after_pick(state: Enumeration, offer: Offer, suite: int, group: int | None) -> Enumeration:
    offered_accepted = _offers_accepted(state)
    new_suite, new_group = suite in state.suites_left, group in state.groups_left
    picked = _with_pick(state, offer, suite, group)
    if new_group and picked.ambiguous:      # a group was left, so the suites had run out
        picked = replace(picked, suites_ran_out=True, ambiguous=False)
    if offered_accepted and not new_suite and not picked.suites_done \
            and server_order_verdict(picked.picks, set(picked.accepted)) is False:
        picked = replace(picked, suites_ran_out=True)   # it follows our order and skipped every suite left
    if not (new_suite or new_group or picked.groups_done):
        # An answer naming nothing new (no key_share group, a group not offered, a suite and
        # group seen before) to a hello asking about groups: the same hello would get the same
        # answer, so stop here. (With the groups done, the hello asks about suites, and a pick
        # of an accepted one shows the server's order, which changes the next hello.)
        picked = replace(picked, stopped=True)
    return picked


def _with_pick(state: Enumeration, offer: Offer, suite: int, group: int | None) -> Enumeration:
    """`state` with the suite and group an answer named recorded."""
    new_suite, new_group = suite in state.suites_left, group in state.groups_left
    return replace(
        state,
        picks=(*state.picks, (offer.suites, suite)),
        accepted=(*state.accepted, suite) if new_suite else state.accepted,
        suites_left=_without(state.suites_left, suite),
        found_groups=(*state.found_groups, group) if new_group and group is not None else state.found_groups,
        groups_left=_without(state.groups_left, group),
        working_groups=state.working_groups if group is None or group in state.working_groups
        else (*state.working_groups, group),
        groups_ran_out=state.groups_ran_out or state.retry_with_seen,
        retry_with_seen=False,
        every_group_next=False,
    )


def _without(values: tuple[int, ...], value: int | None) -> tuple[int, ...]:
    return tuple(v for v in values if v != value)
