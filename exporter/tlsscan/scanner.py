"""The deep TLS scan: which hellos to send to an endpoint, and what their answers mean.

Strategy (each hello on a fresh connection, see connection.py; connections are what mail
servers rate-limit, so the scan spends as few as it can):

1. TLS 1.2 first: offer every registered suite valid for the version in one hello (order:
   order.offer_order); the suite the server picks is accepted; offer the rest again without
   it; stop at the first refusal: (accepted suites + 1) hellos. Every hello offers every EC
   curve, those not seen yet first (at first an ordinary client's curves in its order, then the
   rest: the first ECDHE pick shows the curve such a client gets, which the grade rates; when
   it names another curve, one hello after step 6 asks with an ordinary client's curves): a
   server that takes the client's curve order shows a new curve with each ECDHE suite it picks,
   at no cost (groups are reported once, with the
   version that showed them first; mailsec_tls_group_supported is the union).
2. TLS 1.3 suites and groups together (the state machine of tls13.py decides each hello from
   the answers so far). The first hello is an ordinary client's (every suite; X25519, P-256,
   X448, P-521, P-384 with an X25519 key share): the group it gets is the one the grade rates
   (docs/tls-grading.md), and its suite starts the enumeration; refused, the next hello offers
   every group, and a refusal of that too means no TLS 1.3. Every hello offers the suites not yet accepted and the
   groups not yet seen; the answer (ServerHello or HelloRetryRequest) names one of each, so a
   hello finds a suite and a group at once. A refusal of such a hello is ambiguous (no suite
   left, or no group left); the next hello offers the accepted suites too, with the groups
   left: if it names a group, the suites had run out (in TLS 1.3 any group goes with any
   suite); if it is refused, the groups have. Whichever is left then goes on alone (suites
   with the groups seen; groups with the accepted suites). If the first hello, offering only
   the groups TLS 1.2 did not show, is refused otherwise than by a protocol_version alert,
   the same hello with every group tells "no TLS 1.3" from "none of those groups". About
   max(suites, groups left) + 2 hellos instead of suites + groups + 2.
3. TLS 1.1 down to SSL 3.0, as TLS 1.2, except that the first hello offers only the suites a
   higher version accepted: a server that supports the version accepts one of them, so a
   refusal (protocol version alert, close, internal_error, answer with another version) ends
   the version in one hello; an alert that may be about the suites (handshake_failure) falls
   back to the full list. (A server whose lists differ per version and that refuses by
   closing would be misread; no TLS library we know keeps such lists.)
   The servers that refuse by closing are OpenSSL's (Dovecot): one cipher list and one order
   setting for every version, and versions that form one range. On such a server a version
   that served a known-good suite is asked only about the other known-good suites and those
   no higher version was asked about (TLS 1.0's export suites), and the order a higher
   version showed stands while its own picks show nothing. A version below one refused on
   suites the server serves gets one hello of its whole list and no family retries.
   In every version below TLS 1.3, a bare close (no alert) or an internal_error alert may not
   mean "no shared suite": the server may have picked a suite it cannot serve (Dovecot
   without DH parameters picks DHE, fails and closes), or the hello may be too long for it.
   Such a refused list is offered again split by key-exchange family (ECDHE, DHE, the rest)
   when it mixes them (a server that fails on a suite fails on its whole family, so one with a
   suite served does not fail), else in chunks of 64 (as nmap and internet.nl do) when it is
   longer than any hello answered so far; each part is enumerated the same way. Fewer parts
   when the answers allow (`_families_that_may_hide`): none when every family of the list has
   served a suite; when the server has shown it follows our order, only the families after
   the first one not shown to work, together (and the suites a hello listed before the one
   such a server picked leave the enumeration at once: it has none of them); otherwise the
   working families together, and the others apart only if there are two or more (a lone
   one serves nothing either way). Once the server has refused a hello by a bare close, a
   version without known-good suites is offered family by family from the start. Silence is
   not retried that way: every silent hello costs a whole connection timeout.
   A version is supported when the server answers a hello offering it with a ServerHello of
   that version; an answer with another version (a TLS 1.2 ServerHello to a TLS 1.0 hello),
   an alert, a close or garbage means not supported, and the reason is kept.
4. SSLv2: one SSL 2.0 CLIENT-HELLO offering every cipher kind; the SERVER-HELLO lists the
   kinds the server accepts.
5. Server cipher order (order.py), per version with two or more accepted suites: the picks of
   the enumeration usually show it. When three picks (two in TLS 1.3) do not, one
   enumeration hello lists the suites left, then accepted ones in reverse: a server with its
   own order picks its favourite again, one that follows the client goes on enumerating (or
   picks an accepted suite, which shows none is left). On a server that refuses by closing,
   the second hello of a lower version already lists its first pick last. Only when the
   enumeration ended before that, one or two hellos of accepted suites settle it.
6. TLS 1.2 groups: the accepted ECDHE suites with the EC curves not seen yet; the
   ServerKeyExchange names the curve; remove it and offer the rest again, until a refusal.
   Skipped when step 1 already showed that none is left: two curves seen, each picked while
   the other was offered (the server takes the client's order), and a later pick of a seen
   curve although the unseen ones came first. (Not carried over to TLS 1.3: OpenSSL 3.0
   follows the client's curve order in TLS 1.2 and picks its own group in TLS 1.3.)
7. Everything else comes from the flights already read: DHE prime sizes (ServerKeyExchange of
   every DHE suite picked), secure renegotiation, extended master secret (the ServerHello
   extensions of TLS <= 1.2), OCSP stapling (a CertificateStatus holding a successful OCSP
   response, not the mere echo of status_request), compression (every TLS <= 1.2 hello also offers
   DEFLATE) and the leaf certificates (the Certificate message of TLS <= 1.2).
8. A server that accepts TLS 1.3 but showed no certificate in any flight (TLS 1.3 only, or
   only anonymous suites below it) gets one real TLS 1.3 handshake, with the same client as
   the core probe, for the certificate to grade.
9. TLS_FALLBACK_SCSV (RFC 7507): one hello of the second-best version with the SCSV; refused
   with inappropriate_fallback is the right answer. Skipped with fewer than two versions.
10. STARTTLS endpoints: one connection for the STARTTLS command injection check (injection.py).
11. Session resumption (resumption.py), with TLS 1.2 or 1.3: by ticket, in the best version
    (one real handshake, one more to resume when a ticket came), by session ID in TLS 1.2 (the same).
12. Client-initiated renegotiation (renegotiation.py): one connection, TLS 1.2 only, unless
    step 11 completed no handshake at all.

Connections used, at most: TLS 1.3 suites + groups + 4 (the ordinary client's hello usually
also finds a suite); per lower version accepted suites + 1
[+ up to 3 family hellos and one per 64-suite chunk after a bare-close refusal]; 1 (SSLv2);
per version, 1 order test and at most 2 order hellos; TLS 1.2 curves not seen otherwise + 1;
[+ 1 for the TLS 1.3 certificate] [+ 1 for the TLS 1.2 curve of an ordinary client, when
the first ECDHE pick named a curve it does not offer]; 1 for the fallback SCSV; 1 for the
STARTTLS injection check; at most 4 for session resumption (1 when no handshake completes)
and 1 for renegotiation.

Bounds: each connection (connect, mail dialogue, hello, answer) within the module's timeout;
the whole scan within `budget` seconds (default DEFAULT_SCAN_BUDGET_SECONDS); `min_delay`
seconds between the starts of two connections; never two connections at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence

from ..certs import certificate_info
from ..config import Module, Target
from ..dnsclient import DNSClient, DNSError
from ..probes.mailproto import DialogueError
from ..probes.tlsconn import client_context, sni_name
from ..results import CertificateInfo, FailureReason
from ..tlswire import NamedGroup, ProtocolVersion
from ..tlswire.ciphers import SSL2_CIPHER_KINDS, CIPHER_SUITES, KeyExchange
from ..tlswire.grading import Class, grade_cipher_suite, grade_dh_parameters, grade_group, worst
from ..tlswire.hello import (
    COMPRESSION_DEFLATE, DEFAULT_CIPHERS_PER_HELLO, DEFAULT_GROUPS, DEFAULT_KEY_SHARE_GROUPS,
    NORMAL_CLIENT_GROUPS, NORMAL_CLIENT_KEY_SHARE_GROUPS, build_client_hello, build_sslv2_client_hello, split_cipher_codes,
)
from ..tlswire.parse import AlertDescription, DHParameters, ECDHParameters
from . import tls13
from .connection import Connector, FlightEnd, ServerFlight
from .grade import cipher_order_violation, grade_scan
from .injection import check_starttls_injection
from .renegotiation import check_client_renegotiation
from .resumption import check_session_resumption
from .order import Pick, offer_order, order_test, passed_over, server_order_verdict
from .results import AcceptedCipher, ClientRenegotiation, GroupSupport, SessionResumption, TLSScanResult, VersionSupport
from .stapling import StapledResponse, parse_stapled_response

log = logging.getLogger(__name__)

DEFAULT_SCAN_BUDGET_SECONDS = 300.0

# Newest first (execute() scans TLS 1.2 before TLS 1.3, see the module docstring); SSLv2
# needs its own hello format and comes last.
TLS_VERSIONS = (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_1,
                ProtocolVersion.TLS1_0, ProtocolVersion.SSL3)

# Groups a TLS <= 1.2 server may pick for ECDHE: the classic curves. FFDHE groups are left out
# on purpose, so that DHE suites show the parameters the server gives to clients that do not
# know RFC 7919 (the weakest it has); the hybrids and the *tls13 brainpools are TLS 1.3 only.
# An ordinary client's curves come first, in its order: the first ECDHE suite a TLS 1.2 server
# picks then shows the curve such a client gets (see `_note_normal_curve`).
TLS12_EC_GROUPS: tuple[int, ...] = NORMAL_CLIENT_GROUPS + tuple(
    group for group in NamedGroup
    if not group.finite_field and group < NamedGroup.BRAINPOOLP256R1TLS13 and group not in NORMAL_CLIENT_GROUPS)
TLS13_GROUPS: tuple[int, ...] = tuple(NamedGroup)

_TLS12_HELLO_COMPRESSION = (COMPRESSION_DEFLATE, 0)   # DEFLATE first: a server that can compress will


async def scan_endpoint(target: Target, module: Module, dns: DNSClient, *, min_delay: float = 0.0,
                        budget: float = DEFAULT_SCAN_BUDGET_SECONDS) -> TLSScanResult:
    """Scan one endpoint; never raises for anything a network or a server can do."""
    observed_at = time.time()
    started = time.monotonic()
    run = _ScanRun(target, module, min_delay)
    try:
        async with asyncio.timeout(budget):
            await run.execute(dns)
    except TimeoutError:
        run.fail(FailureReason.TIMEOUT, f"scan not finished within its budget of {budget:g} s")
    except DialogueError as exc:
        run.fail(exc.reason, exc.detail)
    except Exception as exc:   # a bug of ours: report it rather than lose the scan
        log.exception("TLS scan of %s (module %s) failed unexpectedly", target.address, module.name)
        run.fail(FailureReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    return run.result(observed_at, time.monotonic() - started)


def _may_hide_accepted_suites(flight: ServerFlight) -> bool:
    """A refusal that may not mean "none of these suites": a bare close, or an internal_error
    alert. Servers do that when the hello is too long for them, and when they picked a suite
    they cannot serve (Dovecot without ssl_dh picks a DHE suite, fails, and closes)."""
    if flight.end is FlightEnd.CLOSED:
        return True
    return flight.alert is not None and flight.alert.description == AlertDescription.INTERNAL_ERROR


def _refuses_version(flight: ServerFlight) -> bool:
    """The answer to a hello of suites the server accepted in a higher version: anything but an
    alert about something else than the version (e.g. handshake_failure) means it does not
    speak this version at all. An internal_error counts like a close (`_may_hide_accepted_suites`):
    it is what OpenSSL 3 sends for a version its security level rules out."""
    if flight.end is not FlightEnd.ALERT or flight.alert is None:
        return True
    return flight.alert.description in (AlertDescription.PROTOCOL_VERSION, AlertDescription.INTERNAL_ERROR)


def _says_other_version(flight: ServerFlight, version: ProtocolVersion) -> bool:
    """A protocol_version alert, or a ServerHello of another version than `version`."""
    if flight.alert is not None and flight.alert.description == AlertDescription.PROTOCOL_VERSION:
        return True
    return flight.server_hello is not None and flight.server_hello.version != version


def _family(code: int) -> str:
    """The key-exchange family of a suite: ECDHE, DHE, or "other". A server that fails on the
    suite it picked fails on a key exchange it is not set up for (DH parameters, mostly), so
    on the whole family: the refusal retries below rest on that."""
    key_exchange = CIPHER_SUITES[code].key_exchange
    return key_exchange.value if key_exchange in (KeyExchange.ECDHE, KeyExchange.DHE) else "other"


def _key_exchange_families(codes: list[int]) -> list[list[int]]:
    """`codes` split by _family, each in the given order, the families in the order they
    first appear."""
    families: dict[str, list[int]] = {}
    for code in codes:
        families.setdefault(_family(code), []).append(code)
    return list(families.values())


def answer_to(flight: ServerFlight, version: ProtocolVersion, offered: tuple[int, ...] | list[int]) -> tuple[int | None, str]:
    """(the suite the server picked, "accepted") or (None, why the hello was not accepted)."""
    hello = flight.server_hello
    if hello is None:
        if flight.end is FlightEnd.ALERT and flight.alert is not None:
            return None, f"alert_{flight.alert.name}"
        return None, flight.end.value
    if hello.version != version:
        try:
            return None, f"answered_{ProtocolVersion(hello.version).label}"
        except ValueError:
            return None, f"answered_{hello.version:#06x}"
    if hello.cipher_code not in offered:
        return None, "suite_not_offered"
    return hello.cipher_code, "accepted"


def _tls13_answer(flight: ServerFlight, offered: tuple[int, ...]) -> tuple[tls13.Answer, str]:
    """The answer to a TLS 1.3 hello for tls13.observe, and answer_to's reason."""
    version = ProtocolVersion.TLS1_3
    code, reason = answer_to(flight, version, offered)
    if code is None:
        return tls13.Answer(None, says_other_version=_says_other_version(flight, version)), reason
    assert flight.server_hello is not None
    return tls13.Answer(code, flight.server_hello.key_share_group), reason


@dataclasses.dataclass
class _VersionProgress:
    """The enumeration of one version below TLS 1.3 so far."""

    accepted: list[int] = dataclasses.field(default_factory=list)
    first_reason: str | None = None     # answer_to's reason for the version's first hello
    order_tested: bool = False          # the order test hello (at most one per version) was answered
    silent: bool = False                # a hello got no complete answer in time: the suites may not all be known


class _ScanRun:
    """The state of one scan, filled in as it goes so that a failure keeps what was learnt."""

    def __init__(self, target: Target, module: Module, min_delay: float):
        self.target = target
        self.module = module
        self.min_delay = min_delay
        self.handshake_name = module.tls.server_name or target.host
        self.server_name = sni_name(self.handshake_name)
        self.connector: Connector | None = None
        self.address: str | None = None
        self.failure: FailureReason | None = None
        self.failure_detail = ""
        self.versions: list[VersionSupport] = []
        self.accepted: dict[ProtocolVersion, list[int]] = {}
        # Per version: (the suites a hello offered, the one the server picked), for order.py.
        self.picks: dict[ProtocolVersion, list[Pick]] = {v: [] for v in TLS_VERSIONS}
        self.sslv2_kinds: tuple[int, ...] = ()
        self.server_cipher_order: list[tuple[ProtocolVersion, bool]] = []
        self.groups: list[GroupSupport] = []
        self.tls13_working_groups: list[int] = []    # every group a TLS 1.3 answer named
        # A TLS 1.2 answer named a curve already seen although the unseen ones came first.
        self.tls12_repeated_curve = False
        self.longest_answered_hello = 0          # suites in the longest hello answered with a ServerHello
        self.closes_on_refusal = False           # a hello was refused by a bare close
        self.refused_versions: set[ProtocolVersion] = set()   # refused on suites a higher version accepted
        # Every suite valid in a version below TLS 1.3 that the server supports and that was
        # enumerated without a silent hello: whether it serves each is known (for a server
        # with one cipher list, in every version).
        self.asked: set[int] = set()
        self.protocol_errors = 0
        # Facts gathered from every flight along the way.
        self.dh_parameters: list[DHParameters] = []
        self.renegotiation_seen: list[bool] = []
        self.ems_seen: list[bool] = []
        self.ocsp_seen: list[bool] = []
        self.compression_seen: list[bool] = []
        self.staple: StapledResponse | None = None    # the first stapled OCSP response
        self.starttls_injection: bool | None = None
        self.fallback_scsv: bool | None = None
        self.session_resumption: SessionResumption | None = None
        self.client_renegotiation: ClientRenegotiation | None = None
        self.leaf_ders: dict[bytes, None] = {}   # insertion-ordered set
        # The group an ordinary client's hello gets, per version (TLS 1.3 key share, TLS 1.2 curve).
        self.normal_groups: dict[ProtocolVersion, int] = {}

    # --- the steps -----------------------------------------------------------------------

    async def execute(self, dns: DNSClient) -> None:
        try:
            addresses = await dns.resolve_addresses(self.target.host)
        except DNSError as exc:
            raise DialogueError(FailureReason.DNS_ERROR, str(exc)) from None
        self.address = addresses[0]
        self.connector = Connector(self.address, self.target.port, self.module,
                                   connection_timeout=self.module.timeout, min_delay=self.min_delay)
        # TLS 1.2 first: its ECDHE picks show curves, which TLS 1.3 then need not ask about.
        await self._scan_version(ProtocolVersion.TLS1_2)
        await self._scan_tls13()
        for version in TLS_VERSIONS[2:]:
            await self._scan_version(version)
        await self._scan_sslv2()
        for version in TLS_VERSIONS:
            await self._settle_cipher_order(version)
        await self._scan_tls12_groups()
        await self._find_normal_client_curve()
        await self._find_tls13_certificate()
        await self._check_fallback_scsv()
        self.starttls_injection = await check_starttls_injection(self.connector, self.module, self.handshake_name)
        await self._check_sessions()
        if not any(v.supported for v in self.versions) and self.protocol_errors:
            self.fail(FailureReason.PROTOCOL_ERROR, "the server answered hellos with bytes that are not TLS")

    async def _scan_tls13(self) -> None:
        """Step 2 of the module docstring: the hellos tls13.py's state machine asks for."""
        version = ProtocolVersion.TLS1_3
        state = tls13.start(offer_order(version), TLS13_GROUPS, seen_groups=self._groups_seen())
        # The first hello is an ordinary client's (its groups, an X25519 key share): the group
        # it gets is what the grade rates, and the suite it gets starts the enumeration.
        normal = tls13.Offer(tuple(offer_order(version)), NORMAL_CLIENT_GROUPS, NORMAL_CLIENT_KEY_SHARE_GROUPS)
        flight = await self._hello(version, list(normal.suites), groups=list(normal.groups),
                                   key_share_groups=normal.key_share_groups)
        answer, first_reason = _tls13_answer(flight, normal.suites)
        if answer.suite is not None and answer.group in NORMAL_CLIENT_GROUPS:
            self.normal_groups[version] = answer.group
        found_before = len(state.found_groups)
        state = tls13.observe_first(state, normal, answer)
        self._record_groups(version, state.found_groups[found_before:])
        while (offer := tls13.next_hello(state)) is not None:
            flight = await self._hello(version, list(offer.suites), groups=list(offer.groups),
                                       key_share_groups=offer.key_share_groups)
            answer, reason = _tls13_answer(flight, offer.suites)
            first_reason = first_reason or reason
            found_before = len(state.found_groups)
            state = tls13.observe(state, answer)
            self._record_groups(version, state.found_groups[found_before:])
        self.picks[version] = list(state.picks)
        self.tls13_working_groups = list(state.working_groups)
        self._record_version(version, list(state.accepted), first_reason)

    async def _scan_version(self, version: ProtocolVersion) -> None:
        """TLS 1.2 and below (steps 1 and 3 of the module docstring)."""
        progress = _VersionProgress()
        known_good = self._accepted_above(version)
        if known_good and not await self._offer_known_good(version, known_good, progress):
            self._record_version(version, progress.accepted, progress.first_reason)
            return
        below_range = self.closes_on_refusal and any(higher > version for higher in self.refused_versions)
        pending = self._version_lists(version, known_good, progress.accepted, below_range)
        while pending:
            pending[:0] = await self._enumerate(version, pending.pop(0), progress, split=not below_range)
        if progress.accepted and not progress.silent:
            self.asked.update(offer_order(version))
        self._record_version(version, progress.accepted, progress.first_reason)

    def _version_lists(self, version: ProtocolVersion, known_good: list[int], accepted: list[int],
                       below_range: bool) -> list[list[int]]:
        """The suite lists to enumerate for `version` after its known-good hello.

        The servers that refuse by a bare close are OpenSSL's (Dovecot): one cipher list for
        every version, and versions that form one range (OpenSSL drops the versions below a
        disabled one). So on such a server, in a version that served a known-good suite, only
        the other known-good suites and those no higher version was asked about can be served:
        the latter first, then the former, so that a server following our order shows, with
        each known-good suite it picks, that it skips them (order.passed_over). Else a server
        seen refusing by a bare close would close on the mixed list too, and it would be
        offered again family by family: the families go at once. Unless a higher version was
        refused on suites the server serves: this one is below the server's range; one hello
        of the whole list checks that."""
        full_list = [code for code in offer_order(version) if code not in accepted]
        if self.closes_on_refusal and accepted and known_good:
            plan = [code for code in full_list if code not in self.asked] + [
                code for code in known_good if code not in accepted]
            return [plan] if plan else []
        if self.closes_on_refusal and not below_range:
            return _key_exchange_families(full_list)
        return [full_list]

    async def _offer_known_good(self, version: ProtocolVersion, known_good: list[int],
                                progress: _VersionProgress) -> bool:
        """The first hello of a version below a supported one: the suites that one accepted.
        False when the answer shows the version is not supported at all."""
        flight = await self._hello(version, known_good)
        code, progress.first_reason = answer_to(flight, version, known_good)
        if code is None:
            if _refuses_version(flight):
                self.refused_versions.add(version)
                return False
            return True
        progress.accepted.append(code)
        self.picks[version].append((tuple(known_good), code))
        return True

    async def _enumerate(self, version: ProtocolVersion, remaining: list[int],
                         progress: _VersionProgress, *, split: bool = True) -> list[list[int]]:
        """Offer `remaining` again without each suite the server picks, until a refusal; the
        lists to offer instead of the refused one when the refusal may hide accepted suites.
        The version's order test (once answered) stands in for one of these hellos."""
        while remaining:
            test = None if progress.order_tested else self._order_test(version, remaining, progress.accepted)
            offered = remaining if test is None else list(test)
            flight = await self._hello(version, offered)
            code, reason = answer_to(flight, version, offered)
            progress.first_reason = progress.first_reason or reason
            progress.silent = progress.silent or flight.end is FlightEnd.TIMEOUT
            if code is None and split and _may_hide_accepted_suites(flight):
                # Refused although it listed accepted suites, the test too: the server picked a
                # suite of `remaining` it cannot serve, and would again. The test is still to come.
                return self._smaller_hellos(version, remaining, progress.accepted)
            progress.order_tested = progress.order_tested or test is not None
            if code is None:
                if test is not None:
                    continue            # no verdict from the test; the plain list comes next
                return []
            self.picks[version].append((tuple(offered), code))
            if code in remaining:
                progress.accepted.append(code)
                remaining.remove(code)
            elif test is not None and code == offered[-2]:
                break                   # it follows our order and skipped every suite left
            remaining = self._still_pickable(version, remaining, progress.accepted)
        return []

    def _still_pickable(self, version: ProtocolVersion, remaining: list[int], accepted: list[int]) -> list[int]:
        """`remaining` without the suites a server shown to follow our order skipped in some
        hello of `version` (order.passed_over): it has none of them, so they can neither be
        accepted nor hide anything when a hello is refused."""
        if not self._follows_our_order(version, accepted):
            return remaining
        skipped = passed_over(self.picks[version])
        return [code for code in remaining if code not in skipped]

    def _follows_our_order(self, version: ProtocolVersion, accepted: list[int]) -> bool:
        """Whether the server is shown to pick the first suite of a hello that it has: by the
        picks of `version`, or, while they show nothing, on a server that refuses by a bare
        close (OpenSSL's: one order setting for every version), by those of a higher version."""
        verdict = server_order_verdict(self.picks[version], set(accepted))
        if verdict is None and self.closes_on_refusal:
            verdict = next((shown for higher in TLS_VERSIONS if ProtocolVersion.TLS1_3 > higher > version
                            if (shown := server_order_verdict(self.picks[higher], set(self.accepted.get(higher, ()))))
                            is not None), None)
        return verdict is False

    def _record_version(self, version: ProtocolVersion, accepted: list[int], first_reason: str | None) -> None:
        self.accepted[version] = accepted
        self.versions.append(VersionSupport(version, bool(accepted), "accepted" if accepted else first_reason or "closed"))

    def _accepted_above(self, version: ProtocolVersion) -> list[int]:
        """The suites a higher TLS <= 1.2 version accepted that `version` can use, in offer order."""
        above = {code for higher, codes in self.accepted.items()
                 if ProtocolVersion.TLS1_3 > higher > version for code in codes}
        return [code for code in offer_order(version) if code in above]

    def _order_test(self, version: ProtocolVersion, remaining: list[int], accepted: list[int]) -> tuple[int, ...] | None:
        """A hello that shows the order while it goes on enumerating, while the picks of `version`
        do not show it: order.order_test once three suites are found. On a server that refuses
        by a bare close, already after the first pick p1 when `remaining` holds suites a higher
        version accepted (such a server serves them too, see `_version_lists`): `remaining`,
        then p1. Following our order, it picks the first suite of `remaining` it has, which
        the first hello listed after p1, so the two picks show the order (no reverse hello at
        the end); with its own, p1 again, or a suite it prefers."""
        picks = self.picks[version]
        if server_order_verdict(picks, set(accepted)) is not None:
            return None
        if len(accepted) >= 3:
            return order_test(picks, remaining)
        if len(accepted) == 1 and self.closes_on_refusal and set(remaining) & set(self._accepted_above(version)):
            return (*remaining, accepted[0])
        return None

    def _smaller_hellos(self, version: ProtocolVersion, refused: list[int], accepted: list[int]) -> list[list[int]]:
        """The suite lists to offer instead of `refused`, when its refusal may hide accepted suites
        (see `_may_hide_accepted_suites`): one per key-exchange family if it mixes families,
        else chunks of 64 if it is longer than any hello answered so far, else none.

        Refusing a list no longer than one it answered, the server picked a suite it cannot
        serve or found none; a family with a suite served does not fail, so the suite it
        picked is in a family not shown to work, which serves nothing. See
        `_families_that_may_hide`."""
        families = _key_exchange_families(refused)
        if len(families) > 1 and len(refused) <= self.longest_answered_hello:
            return self._families_that_may_hide(version, families, accepted)
        if len(families) > 1:
            return families
        if len(refused) > max(DEFAULT_CIPHERS_PER_HELLO, self.longest_answered_hello):
            return [list(chunk) for chunk in split_cipher_codes(refused)]
        return []

    def _families_that_may_hide(self, version: ProtocolVersion, families: list[list[int]],
                                accepted: list[int]) -> list[list[int]]:
        """The lists to offer after a refused hello of `families` that may hide accepted suites
        (`_smaller_hellos`). With every family shown to work, none was left. A server shown to
        follow our order stopped at the first suite it has: the families before the first one
        not shown to work hold nothing, and only those after it can hide anything (offered
        together). Otherwise, with one family not shown to work, that one serves nothing either
        way and the working families are offered together; with more, each of those alone too."""
        working = {_family(code) for code in accepted}
        unproven = [index for index, family in enumerate(families) if _family(family[0]) not in working]
        if not unproven:
            return []
        if self._follows_our_order(version, accepted):
            rest = [code for family in families[unproven[0] + 1:] for code in family]
            return [rest] if rest else []
        served = [code for family in families if _family(family[0]) in working for code in family]
        return ([served] if served else []) + ([families[index] for index in unproven] if len(unproven) > 1 else [])

    async def _scan_sslv2(self) -> None:
        assert self.connector is not None
        offered = tuple(SSL2_CIPHER_KINDS)
        flight = await self.connector.exchange(build_sslv2_client_hello(offered), sslv2=True)
        hello = flight.sslv2_hello
        if hello is None:
            if flight.alert is not None:       # a TLS alert: the server does not speak SSL 2.0
                reason = f"alert_{flight.alert.name}"
            else:
                reason = "alert_sslv2_error" if flight.end is FlightEnd.ALERT else flight.end.value
            self.versions.append(VersionSupport(ProtocolVersion.SSL2, False, reason))
            return
        self.sslv2_kinds = tuple(kind for kind in hello.cipher_kinds if kind in SSL2_CIPHER_KINDS)
        supported = bool(self.sslv2_kinds)
        self.versions.append(VersionSupport(ProtocolVersion.SSL2, supported,
                                            "accepted" if supported else "suite_not_offered"))
        if hello.certificate:
            self.leaf_ders.setdefault(hello.certificate)

    async def _settle_cipher_order(self, version: ProtocolVersion) -> None:
        """The order verdict from the picks; when they do not show it, offer the accepted suites
        in reverse of how they were found, then in that order, until they do."""
        accepted = self.accepted.get(version, [])
        if len(accepted) < 2:
            return
        picks = self.picks[version]
        for offered in (accepted[::-1], accepted):
            if server_order_verdict(picks, set(accepted)) is not None:
                break
            code, _ = answer_to(await self._hello(version, offered, groups=self._groups_for_order(version)), version, offered)
            if code is None:
                return          # the server refused what it accepted before: no verdict
            picks.append((tuple(offered), code))
        verdict = server_order_verdict(picks, set(accepted))
        if verdict is not None:
            self.server_cipher_order.append((version, verdict))

    def _groups_for_order(self, version: ProtocolVersion) -> list[int] | None:
        """TLS 1.3 order hellos offer the groups seen to work; older versions their default."""
        if version is not ProtocolVersion.TLS1_3:
            return None
        return self.tls13_working_groups or None

    async def _scan_tls12_groups(self) -> None:
        version = ProtocolVersion.TLS1_2
        ecdhe = [code for code in self.accepted.get(version, [])
                 if CIPHER_SUITES[code].key_exchange is KeyExchange.ECDHE]
        if not ecdhe:
            return
        tls12_curves = [support.group for support in self.groups if support.version is version]
        if len(tls12_curves) >= 2 and self.tls12_repeated_curve:
            # It takes the client's curve order (two curves, each picked while the other was
            # offered) and once named a seen curve though the unseen came first: none is left.
            return
        seen = self._groups_seen()
        remaining = [group for group in TLS12_EC_GROUPS if group not in seen]
        while remaining:
            flight = await self._hello(version, ecdhe, groups=remaining)
            parameters = flight.key_exchange.parameters if flight.key_exchange else None
            if not isinstance(parameters, ECDHParameters) or parameters.named_curve not in remaining:
                return
            self._record_groups(version, (parameters.named_curve,))
            remaining.remove(parameters.named_curve)

    async def _find_normal_client_curve(self) -> None:
        """The TLS 1.2 curve an ordinary client gets, which is what the grade rates
        (docs/tls-grading.md): the first ECDHE pick usually showed it (`_note_normal_curve`),
        else one hello of the accepted ECDHE suites with its curves. (TLS 1.3: the first hello
        of `_scan_tls13`.)"""
        version = ProtocolVersion.TLS1_2
        ecdhe = [code for code in self.accepted.get(version, []) if CIPHER_SUITES[code].key_exchange is KeyExchange.ECDHE]
        if ecdhe and version not in self.normal_groups:
            flight = await self._hello(version, ecdhe, groups=list(NORMAL_CLIENT_GROUPS))
            parameters = flight.key_exchange.parameters if flight.key_exchange else None
            if isinstance(parameters, ECDHParameters) and parameters.named_curve in NORMAL_CLIENT_GROUPS:
                self.normal_groups[version] = parameters.named_curve

    async def _check_fallback_scsv(self) -> None:
        """RFC 7507: a hello of the second-best version the server accepts, with its suites and
        TLS_FALLBACK_SCSV, must be refused with an inappropriate_fallback alert (a client that
        fell back because of an attacker). Needs two supported TLS versions."""
        supported = sorted((v.version for v in self.versions if v.supported and v.version > ProtocolVersion.SSL2),
                           reverse=True)
        if len(supported) < 2 or not self.accepted.get(supported[1]):
            return
        version = supported[1]
        hello = build_client_hello(version, self.accepted[version], server_name=self.server_name,
                                   groups=list(TLS12_EC_GROUPS), fallback_scsv=True,
                                   with_extensions=version is not ProtocolVersion.SSL3)
        assert self.connector is not None
        flight = await self.connector.exchange(hello)
        self.fallback_scsv = fallback_verdict(flight, version)

    async def _check_sessions(self) -> None:
        """Steps 11 and 12: session resumption (resumption.py), then client-initiated
        renegotiation (renegotiation.py) unless no real handshake completed. Their clients
        (OpenSSL's) speak TLS 1.2 and 1.3 only."""
        supported = tuple(v.version for v in self.versions if v.supported)
        if ProtocolVersion.TLS1_2 not in supported and ProtocolVersion.TLS1_3 not in supported:
            return
        assert self.connector is not None
        self.session_resumption = await check_session_resumption(self.connector, self.module, self.handshake_name, supported)
        if self.session_resumption.handshake_completed:
            self.client_renegotiation = await check_client_renegotiation(
                self.connector, self.module, self.handshake_name, supported)

    async def _find_tls13_certificate(self) -> None:
        """A server that only speaks TLS 1.3 showed no certificate (it is encrypted): complete one
        real TLS 1.3 handshake to get it, so that its key and signature are graded too."""
        assert self.connector is not None
        if self.leaf_ders or not self.accepted.get(ProtocolVersion.TLS1_3):
            return
        settings = dataclasses.replace(self.module.tls, min_version="TLSv1.3", max_version="TLSv1.3")
        chain = await self.connector.presented_chain(client_context(settings), self.handshake_name)
        if chain:
            self.leaf_ders.setdefault(chain[0])

    # --- one hello -----------------------------------------------------------------------

    async def _hello(self, version: ProtocolVersion, codes: list[int], *, groups: list[int] | None = None,
                     key_share_groups: tuple[int, ...] = DEFAULT_KEY_SHARE_GROUPS) -> ServerFlight:
        assert self.connector is not None
        if version is ProtocolVersion.TLS1_3:
            hello = build_client_hello(version, codes, server_name=self.server_name,
                                       groups=groups if groups is not None else DEFAULT_GROUPS,
                                       key_share_groups=key_share_groups)
        else:
            hello = build_client_hello(version, codes, server_name=self.server_name,
                                       groups=groups if groups is not None else self._tls12_curve_order(version),
                                       compression_methods=_TLS12_HELLO_COMPRESSION,
                                       # SSL 3.0 servers may choke on an extension block
                                       with_extensions=version is not ProtocolVersion.SSL3)
        flight = await self.connector.exchange(hello)
        self._observe(flight, len(codes))
        parameters = flight.key_exchange.parameters if flight.key_exchange is not None else None
        if (version is ProtocolVersion.TLS1_2 and isinstance(parameters, ECDHParameters)
                and flight.server_hello is not None and flight.server_hello.version == version
                and parameters.named_curve in TLS12_EC_GROUPS):
            if not self._groups_seen() and groups is None:
                self._note_normal_curve(parameters.named_curve)
            if parameters.named_curve not in self._groups_seen():
                self._record_groups(version, (parameters.named_curve,))
            elif groups is None:
                self.tls12_repeated_curve = True
        return flight

    def _note_normal_curve(self, curve: int) -> None:
        """The curve of the first ECDHE pick in TLS 1.2, offered TLS12_EC_GROUPS (an ordinary
        client's curves first, in its order). A curve of an ordinary client's is the one it gets:
        a server following the client's order takes the first it has of those; one with its own
        order, its favourite of all, hence of those. Any other curve tells nothing."""
        if curve in NORMAL_CLIENT_GROUPS:
            self.normal_groups[ProtocolVersion.TLS1_2] = curve

    def _groups_seen(self) -> set[int]:
        return {support.group for support in self.groups}

    def _record_groups(self, version: ProtocolVersion, groups: Sequence[int]) -> None:
        self.groups += [GroupSupport(version, group, grade_group(group)) for group in groups]

    def _tls12_curve_order(self, version: ProtocolVersion) -> list[int]:
        """Every EC curve, in TLS 1.2 those not seen yet first: a server that takes the client's
        preference shows a new curve with each ECDHE suite it picks, for free."""
        if version is not ProtocolVersion.TLS1_2:
            return list(TLS12_EC_GROUPS)
        seen = self._groups_seen()
        return sorted(TLS12_EC_GROUPS, key=lambda group: group in seen)

    def _observe(self, flight: ServerFlight, offered_count: int) -> None:
        """Collect the facts every flight can show, whichever step sent the hello."""
        if flight.end is FlightEnd.PROTOCOL_ERROR:
            self.protocol_errors += 1
        hello = flight.server_hello
        if hello is None:
            self.closes_on_refusal = self.closes_on_refusal or flight.end is FlightEnd.CLOSED
            return
        self.longest_answered_hello = max(self.longest_answered_hello, offered_count)
        if hello.version >= ProtocolVersion.TLS1_3 or hello.is_hello_retry_request:
            return          # the rest of a TLS 1.3 flight is encrypted; no renegotiation, no compression
        self.renegotiation_seen.append(hello.secure_renegotiation)
        if hello.version > ProtocolVersion.SSL3:      # SSL 3.0 hellos carry no extensions to answer
            self.ems_seen.append(hello.extended_master_secret)
        staple = _staple(flight)
        self.ocsp_seen.append(staple is not None)
        if staple is not None and self.staple is None:
            self.staple = staple
        self.compression_seen.append(hello.compression_method == COMPRESSION_DEFLATE)
        if flight.certificate is not None and flight.certificate.chain:
            self.leaf_ders.setdefault(flight.certificate.chain[0])
        if flight.key_exchange is not None and isinstance(flight.key_exchange.parameters, DHParameters):
            self.dh_parameters.append(flight.key_exchange.parameters)

    # --- the result ----------------------------------------------------------------------

    def fail(self, reason: FailureReason, detail: str) -> None:
        self.failure = reason
        self.failure_detail = detail

    def result(self, observed_at: float, duration: float) -> TLSScanResult:
        """What the scan found so far, graded by grade.grade_scan."""
        ciphers = self._accepted_ciphers()
        certificates = _certificates(self.leaf_ders)
        dh_grade = _worst_dh_grade(self.dh_parameters)
        renegotiation = _all_or_none(self.renegotiation_seen)
        compression = _any_or_none(self.compression_seen)
        versions = sorted(self.versions, key=lambda v: v.version, reverse=True)
        ems = _all_or_none(self.ems_seen)
        normal_groups = tuple(GroupSupport(version, group, grade_group(group))
                              for version, group in sorted(self.normal_groups.items(), reverse=True))
        order_violation = cipher_order_violation(ciphers, self.server_cipher_order)
        return TLSScanResult(
            success=self.failure is None,
            failure=self.failure,
            failure_detail=self.failure_detail,
            observed_at=observed_at,
            duration_seconds=duration,
            connections=self.connector.connections if self.connector else 0,
            address=self.address,
            versions=tuple(versions),
            ciphers=ciphers,
            server_cipher_order=tuple(self.server_cipher_order),
            groups=tuple(self.groups),
            dh_min_size=min((p.p_bits for p in self.dh_parameters), default=None),
            dh_grade=dh_grade,
            secure_renegotiation=renegotiation,
            compression=compression,
            extended_master_secret=ems,
            ocsp_stapling=_any_or_none(self.ocsp_seen),
            ocsp_staple=self.staple,
            starttls_injection=self.starttls_injection,
            fallback_scsv=self.fallback_scsv,
            session_resumption=self.session_resumption,
            client_renegotiation=self.client_renegotiation,
            certificates=certificates,
            normal_client_groups=normal_groups,
            cipher_order_violation=order_violation,
            grade=grade_scan(versions=[v.version for v in versions if v.supported], ciphers=ciphers,
                             normal_client_groups=normal_groups, dh_grade=dh_grade, certificates=certificates,
                             compression=compression, secure_renegotiation=renegotiation,
                             extended_master_secret=ems, cipher_order_violation=order_violation),
        )

    def _accepted_ciphers(self) -> tuple[AcceptedCipher, ...]:
        """Per version in TLS_VERSIONS order, then SSLv2, each in the order found."""
        tls = [AcceptedCipher(version, code, CIPHER_SUITES[code].name, grade_cipher_suite(code))
               for version in TLS_VERSIONS for code in self.accepted.get(version, [])]
        sslv2 = [AcceptedCipher(ProtocolVersion.SSL2, kind, SSL2_CIPHER_KINDS[kind].name, Class.INSUFFICIENT)
                 for kind in self.sslv2_kinds]
        return (*tls, *sslv2)


def fallback_verdict(flight: ServerFlight, version: ProtocolVersion) -> bool | None:
    """True: refused with inappropriate_fallback; False: answered with a ServerHello of the
    fallback version; None: anything else (another alert, a close) says nothing."""
    if flight.alert is not None and flight.alert.description == AlertDescription.INAPPROPRIATE_FALLBACK:
        return True
    if flight.server_hello is not None and flight.server_hello.version == version:
        return False
    return None


def _staple(flight: ServerFlight) -> StapledResponse | None:
    """The OCSP response the flight's CertificateStatus staples, if it holds one that parses."""
    status = flight.certificate_status
    if status is None or status.status_type != 1:       # 1: ocsp (RFC 6066 8)
        return None
    return parse_stapled_response(status.ocsp_response)


def _all_or_none(seen: list[bool]) -> bool | None:
    """Whether every flight showed it; None when no flight could."""
    return all(seen) if seen else None


def _any_or_none(seen: list[bool]) -> bool | None:
    """Whether some flight showed it; None when no flight could."""
    return any(seen) if seen else None


def _worst_dh_grade(parameters: list[DHParameters]) -> Class | None:
    """The class of the weakest DH parameters seen; None when no DHE suite was picked."""
    return worst(*(grade_dh_parameters(p.p, p.g) for p in parameters)) if parameters else None


def _certificates(leaf_ders: dict[bytes, None]) -> tuple[CertificateInfo, ...]:
    infos = []
    for der in leaf_ders:
        try:
            infos.append(certificate_info(der))
        except ValueError:
            continue        # an unparsable certificate says nothing about key sizes
    return tuple(infos)
