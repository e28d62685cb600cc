"""Cipher order: the order the scan offers suites in, and what the server's picks say about
whose order it follows. Pure functions; the scanner records every (offered list, pick).

A server either has its own preference (it picks the suite it likes best among those offered)
or follows the client's (it picks the first offered suite it accepts). The enumeration's own
hellos usually tell which, so that finding the order costs no extra hello:

- own order, proven: some hello got a suite although another accepted suite came before it;
- client order, proven: two accepted suites u and v, one hello listing u before v got u, another
  listing v before u got v (no fixed preference can do that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..tlswire import ProtocolVersion
from ..tlswire.ciphers import CIPHER_SUITES, KeyExchange, suites_for_version
from ..tlswire.grading import grade_cipher_suite

# (the suites one hello offered, in order; the suite the server picked)
Pick = tuple[tuple[int, ...], int]

# ECDHE first and DHE last: a server without DH parameters picks DHE, fails and closes without
# an alert (Dovecot), which hides what it would accept after it, so DHE comes when nothing else is left.
_FAMILY_RANK = {KeyExchange.ECDHE: 0, KeyExchange.DHE: 2}


def offer_order(version: ProtocolVersion) -> tuple[int, ...]:
    """Every registered suite a server may pick for `version`, in the order the enumeration
    offers them: ECDHE, then the others, then DHE; within each, the worst class first and the
    highest code first. Servers with their own order rank strong suites first, so they pick
    against this order early and show it. TLS_NULL_WITH_NULL_NULL is left out: no server may
    ever pick it (RFC 5246 A.5)."""
    codes = [suite.code for suite in suites_for_version(version) if suite.code != 0x0000]
    return tuple(sorted(codes, key=lambda code: (
        _FAMILY_RANK.get(CIPHER_SUITES[code].key_exchange, 1), -grade_cipher_suite(code), -code)))


def picked_against_client_order(picks: Iterable[Pick], accepted: set[int]) -> bool:
    """Some hello got a suite while another suite the server accepts came before it in the list."""
    for offered, code in picks:
        for candidate in offered:
            if candidate == code:
                break
            if candidate in accepted:
                return True
    return False


def passed_over(picks: Iterable[Pick]) -> set[int]:
    """The suites some hello listed before the suite the server picked. A server that follows
    the client's order picks the first suite it has, so it has none of these: it would not
    even pick one of them to fail on it."""
    return {code for offered, pick in picks for code in offered[:offered.index(pick)]}


def picked_in_two_orders(picks: Sequence[Pick]) -> bool:
    """Two hellos listed two suites in opposite orders and each got the one it listed first."""
    positions = [({code: index for index, code in enumerate(offered)}, code) for offered, code in picks]
    for first_index, (first_positions, u) in enumerate(positions):
        for second_positions, v in positions[first_index + 1:]:
            if u == v or v not in first_positions or u not in second_positions:
                continue
            if (first_positions[u] < first_positions[v]) and (second_positions[v] < second_positions[u]):
                return True
    return False


def server_order_verdict(picks: Sequence[Pick], accepted: set[int]) -> bool | None:
    """True: the server has its own order; False: it follows the client's; None: not shown yet."""
    if picked_against_client_order(picks, accepted):
        return True
    if picked_in_two_orders(picks):
        return False
    return None


def order_test(picks: Sequence[Pick], remaining: Sequence[int]) -> tuple[int, ...] | None:
    """A hello that shows the order while it goes on enumerating: `remaining`, then two accepted
    suites p2, p1 where an earlier hello listing p1 before p2 and every suite of `remaining` got
    p1. A server with its own order prefers p1 to all of them and picks p1 again; one that
    follows the client picks the first accepted suite of `remaining` (a new one), or p2 when
    `remaining` holds none, which also ends the enumeration. None: no two such picks yet."""
    remaining_set = set(remaining)
    for index, (offered, p1) in enumerate(picks):
        if not remaining_set <= set(offered):
            continue
        for _, p2 in picks[index + 1:]:
            if p2 != p1 and p2 in offered:
                return (*remaining, p2, p1)
    return None
