"""The deep TLS scan: which hellos to send to an endpoint, and what their answers mean.

Strategy (each hello on a fresh connection, see connection.py; connections are what mail
servers rate-limit, so the scan spends as few as it can):

1. Versions and cipher suites together, TLS 1.3 down to SSLv3: offer every registered suite
   valid for the version in one hello; the suite the server picks is accepted; offer the rest
   again without it; stop at the first refusal. That is (accepted suites + 1) hellos per
   version. A bare close (no alert) or an internal_error alert may not mean "no shared
   suite": the server may have picked a suite it cannot serve (Dovecot without DH parameters
   picks DHE, fails and closes), or the hello may be too long for it. Such a refused list is
   offered again split by key-exchange family (ECDHE, DHE, the rest) when it mixes them, else
   in chunks of 64 (as nmap and internet.nl do) when it is longer than any hello answered so
   far; each part is enumerated the same way. Silence is not retried that way: every silent
   hello costs a whole connection timeout.
   A version is supported when the server answers a hello offering it with a ServerHello of
   that version; an answer with another version (a TLS 1.2 ServerHello to a TLS 1.0 hello),
   an alert, a close or garbage means not supported, and the reason is kept.
2. SSLv2: one SSL 2.0 CLIENT-HELLO offering every cipher kind; the SERVER-HELLO lists the
   kinds the server accepts.
3. Server cipher order, per version with two or more accepted suites. A server that follows
   the client's order picks, from each enumeration hello, the first suite of the list that it
   accepts at all; if it ever picked another one, it has its own order, and that costs no
   hello. Otherwise offer the accepted suites in registry order and in reverse: following the
   client both times means client order, anything else the server's own. The first
   enumeration hello doubles as the registry-order hello when it offered the full list, so
   this costs none, one or two hellos.
4. Groups: TLS 1.2 offers the accepted ECDHE suites with a list of EC groups and reads the
   curve from the ServerKeyExchange; TLS 1.3 offers no key share at all, so the server names
   its group in a HelloRetryRequest. The picked group is removed and the rest offered again,
   until a refusal: (supported groups + 1) hellos per version. In TLS 1.2 the first of them is
   saved: the enumeration hellos of step 1 offer every curve, and their ServerKeyExchange
   already shows the server's first pick.
5. Everything else comes from the flights already read: DHE prime sizes (ServerKeyExchange of
   every DHE suite picked in step 1), secure renegotiation, extended master secret, OCSP
   stapling (the ServerHello extensions of TLS <= 1.2), compression (every TLS <= 1.2 hello
   also offers DEFLATE) and the leaf certificates (the Certificate message of TLS <= 1.2).
6. A server that accepts TLS 1.3 but showed no certificate in any flight (TLS 1.3 only, or
   only anonymous suites below it) gets one real TLS 1.3 handshake, with the same client as
   the core probe, for the certificate to grade.

Connections used, at most: sum over versions of (accepted suites + 1) [+ up to 3 family
hellos and one per 64-suite chunk after a bare-close refusal] + 1 (SSLv2) + at most 2 per
version with two or more suites + (groups + 1) for TLS 1.2 and for TLS 1.3 [+ 1 for the
TLS 1.3 certificate].

Bounds: each connection (connect, mail dialogue, hello, answer) within the module's timeout;
the whole scan within `budget` seconds (default DEFAULT_SCAN_BUDGET_SECONDS); `min_delay`
seconds between the starts of two connections; never two connections at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from ..certs import certificate_info
from ..config import Module, Target
from ..dnsclient import DNSClient, DNSError
from ..probes.mailproto import DialogueError
from ..probes.tlsconn import client_context, sni_name
from ..results import CertificateInfo, FailureReason
from ..tlswire import NamedGroup, ProtocolVersion
from ..tlswire.ciphers import SSL2_CIPHER_KINDS, CIPHER_SUITES, KeyExchange, suites_for_version
from ..tlswire.grading import (
    Class, grade_certificate_key, grade_cipher_suite, grade_dh_parameters, grade_group,
    grade_signature_hash, grade_version, worst,
)
from ..tlswire.hello import (
    COMPRESSION_DEFLATE, DEFAULT_CIPHERS_PER_HELLO, DEFAULT_GROUPS, DEFAULT_KEY_SHARE_GROUPS,
    build_client_hello, build_sslv2_client_hello, split_cipher_codes,
)
from ..tlswire.parse import AlertDescription, DHParameters, ECDHParameters
from .connection import Connector, FlightEnd, ServerFlight
from .results import AcceptedCipher, GroupSupport, TLSScanResult, VersionSupport

log = logging.getLogger(__name__)

DEFAULT_SCAN_BUDGET_SECONDS = 300.0

# Probed from the newest down; SSLv2 needs its own hello format and comes last.
TLS_VERSIONS = (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_1,
                ProtocolVersion.TLS1_0, ProtocolVersion.SSL3)

# Groups a TLS <= 1.2 server may pick for ECDHE: the classic curves. FFDHE groups are left out
# on purpose, so that DHE suites show the parameters the server gives to clients that do not
# know RFC 7919 (the weakest it has); the hybrids and the *tls13 brainpools are TLS 1.3 only.
TLS12_EC_GROUPS: tuple[int, ...] = tuple(
    group for group in NamedGroup
    if not group.finite_field and group < NamedGroup.BRAINPOOLP256R1TLS13)
TLS13_GROUPS: tuple[int, ...] = tuple(NamedGroup)

_TLS12_HELLO_COMPRESSION = (COMPRESSION_DEFLATE, 0)   # DEFLATE first: a server that can compress will


def candidate_suites(version: ProtocolVersion) -> tuple[int, ...]:
    """Every registered suite a server may pick for `version`, in registry order.
    TLS_NULL_WITH_NULL_NULL is left out: no server may ever pick it (RFC 5246 A.5)."""
    return tuple(suite.code for suite in suites_for_version(version) if suite.code != 0x0000)


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


def _key_exchange_families(codes: list[int]) -> tuple[list[int], list[int], list[int]]:
    """`codes` as ECDHE, DHE and all other suites, each in the given order: a server that fails
    on the suite it picked fails on a key exchange it is not set up for (DH parameters, mostly)."""
    ecdhe = [code for code in codes if CIPHER_SUITES[code].key_exchange is KeyExchange.ECDHE]
    dhe = [code for code in codes if CIPHER_SUITES[code].key_exchange is KeyExchange.DHE]
    others = [code for code in codes if CIPHER_SUITES[code].key_exchange not in (KeyExchange.ECDHE, KeyExchange.DHE)]
    return ecdhe, dhe, others


def _picked_against_client_order(picks: list[tuple[tuple[int, ...], int]], accepted: set[int]) -> bool:
    """Whether an enumeration hello got another suite than the first one of its list that the
    server accepts at all: a server that follows the client's order never does that."""
    return any(code != next(c for c in offered if c in accepted) for offered, code in picks)


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
        # Per version: the first hello, offering the full list in registry order, was accepted.
        self.first_hello_accepted: dict[ProtocolVersion, bool] = {}
        # Per version: (the suites an enumeration hello offered, the one the server picked).
        self.picks: dict[ProtocolVersion, list[tuple[tuple[int, ...], int]]] = {v: [] for v in TLS_VERSIONS}
        self.sslv2_kinds: tuple[int, ...] = ()
        self.server_cipher_order: list[tuple[ProtocolVersion, bool]] = []
        self.groups: list[GroupSupport] = []
        self.tls12_full_list_curve: int | None = None   # the curve picked from TLS12_EC_GROUPS in TLS 1.2
        self.longest_answered_hello = 0          # suites in the longest hello answered with a ServerHello
        self.protocol_errors = 0
        # Facts gathered from every flight along the way.
        self.dh_parameters: list[DHParameters] = []
        self.renegotiation_seen: list[bool] = []
        self.ems_seen: list[bool] = []
        self.ocsp_seen: list[bool] = []
        self.compression_seen: list[bool] = []
        self.leaf_ders: dict[bytes, None] = {}   # insertion-ordered set

    # --- the steps -----------------------------------------------------------------------

    async def execute(self, dns: DNSClient) -> None:
        try:
            addresses = await dns.resolve_addresses(self.target.host)
        except DNSError as exc:
            raise DialogueError(FailureReason.DNS_ERROR, str(exc)) from None
        self.address = addresses[0]
        self.connector = Connector(self.address, self.target.port, self.module,
                                   connection_timeout=self.module.timeout, min_delay=self.min_delay)
        for version in TLS_VERSIONS:
            await self._scan_version(version)
        await self._scan_sslv2()
        for version in TLS_VERSIONS:
            await self._find_cipher_order(version)
        await self._scan_tls12_groups()
        await self._scan_tls13_groups()
        await self._find_tls13_certificate()
        if not any(v.supported for v in self.versions) and self.protocol_errors:
            self.fail(FailureReason.PROTOCOL_ERROR, "the server answered hellos with bytes that are not TLS")

    async def _scan_version(self, version: ProtocolVersion) -> None:
        accepted: list[int] = []
        first_reason: str | None = None
        pending = [list(candidate_suites(version))]
        while pending:
            remaining = pending.pop(0)
            while remaining:
                flight = await self._hello(version, remaining)
                code, reason = answer_to(flight, version, remaining)
                first_reason = first_reason or reason
                if code is None:
                    if _may_hide_accepted_suites(flight):
                        pending[:0] = self._smaller_hellos(remaining)
                    break
                accepted.append(code)
                self.picks[version].append((tuple(remaining), code))
                remaining.remove(code)
        self.accepted[version] = accepted
        self.first_hello_accepted[version] = first_reason == "accepted"
        self.versions.append(VersionSupport(version, bool(accepted), "accepted" if accepted else first_reason or "closed"))

    def _smaller_hellos(self, refused: list[int]) -> list[list[int]]:
        """The suite lists to offer instead of `refused`, when its refusal may hide accepted suites
        (see `_may_hide_accepted_suites`): one per key-exchange family if it mixes families,
        else chunks of 64 if it is longer than any hello answered so far, else none."""
        families = [family for family in _key_exchange_families(refused) if family]
        if len(families) > 1:
            return families
        if len(refused) > max(DEFAULT_CIPHERS_PER_HELLO, self.longest_answered_hello):
            return [list(chunk) for chunk in split_cipher_codes(refused)]
        return []

    async def _scan_sslv2(self) -> None:
        assert self.connector is not None
        offered = tuple(SSL2_CIPHER_KINDS)
        flight = await self.connector.exchange(build_sslv2_client_hello(offered), sslv2=True)
        hello = flight.sslv2_hello
        if hello is None:
            reason = "alert_sslv2_error" if flight.end is FlightEnd.ALERT else flight.end.value
            self.versions.append(VersionSupport(ProtocolVersion.SSL2, False, reason))
            return
        self.sslv2_kinds = tuple(kind for kind in hello.cipher_kinds if kind in SSL2_CIPHER_KINDS)
        supported = bool(self.sslv2_kinds)
        self.versions.append(VersionSupport(ProtocolVersion.SSL2, supported,
                                            "accepted" if supported else "suite_not_offered"))
        if hello.certificate:
            self.leaf_ders.setdefault(hello.certificate)

    async def _find_cipher_order(self, version: ProtocolVersion) -> None:
        accepted = self.accepted.get(version, [])
        if len(accepted) < 2:
            return
        if _picked_against_client_order(self.picks[version], set(accepted)):
            self.server_cipher_order.append((version, True))     # the enumeration showed it already
            return
        forward = sorted(accepted, key=candidate_suites(version).index)
        backward = forward[::-1]
        if self.first_hello_accepted[version]:
            forward_pick: int | None = accepted[0]     # the first enumeration hello offered them in this order
        else:
            forward_pick, _ = answer_to(await self._hello(version, forward), version, forward)
        backward_pick, _ = answer_to(await self._hello(version, backward), version, backward)
        if forward_pick is None or backward_pick is None:
            return          # the server refused what it accepted before: no verdict
        follows_client = forward_pick == forward[0] and backward_pick == backward[0]
        self.server_cipher_order.append((version, not follows_client))

    async def _scan_tls12_groups(self) -> None:
        version = ProtocolVersion.TLS1_2
        ecdhe = [code for code in self.accepted.get(version, [])
                 if CIPHER_SUITES[code].key_exchange is KeyExchange.ECDHE]
        if not ecdhe:
            return
        remaining = list(TLS12_EC_GROUPS)
        if self.tls12_full_list_curve in remaining:
            # An enumeration hello, offering every curve, already showed the server's first pick.
            curve = self.tls12_full_list_curve
            self.groups.append(GroupSupport(version, curve, grade_group(curve)))
            remaining.remove(curve)
        while remaining:
            flight = await self._hello(version, ecdhe, groups=remaining)
            parameters = flight.key_exchange.parameters if flight.key_exchange else None
            if not isinstance(parameters, ECDHParameters) or parameters.named_curve not in remaining:
                return
            self.groups.append(GroupSupport(version, parameters.named_curve, grade_group(parameters.named_curve)))
            remaining.remove(parameters.named_curve)

    async def _scan_tls13_groups(self) -> None:
        version = ProtocolVersion.TLS1_3
        suites = self.accepted.get(version, [])
        if not suites:
            return
        remaining = list(TLS13_GROUPS)
        while remaining:
            # No key share at all: the server must name the group it wants in a HelloRetryRequest.
            flight = await self._hello(version, suites, groups=remaining, key_share_groups=())
            hello = flight.server_hello
            group = hello.key_share_group if hello is not None and hello.version == version else None
            if group is None or group not in remaining:
                return
            self.groups.append(GroupSupport(version, group, grade_group(group)))
            remaining.remove(group)

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
                                       groups=groups if groups is not None else TLS12_EC_GROUPS,
                                       compression_methods=_TLS12_HELLO_COMPRESSION,
                                       # SSL 3.0 servers may choke on an extension block
                                       with_extensions=version is not ProtocolVersion.SSL3)
        flight = await self.connector.exchange(hello)
        self._observe(flight, len(codes))
        parameters = flight.key_exchange.parameters if flight.key_exchange is not None else None
        if (version is ProtocolVersion.TLS1_2 and groups is None and isinstance(parameters, ECDHParameters)
                and flight.server_hello is not None and flight.server_hello.version == version):
            self.tls12_full_list_curve = parameters.named_curve
        return flight

    def _observe(self, flight: ServerFlight, offered_count: int) -> None:
        """Collect the facts every flight can show, whichever step sent the hello."""
        if flight.end is FlightEnd.PROTOCOL_ERROR:
            self.protocol_errors += 1
        hello = flight.server_hello
        if hello is None:
            return
        self.longest_answered_hello = max(self.longest_answered_hello, offered_count)
        if hello.version >= ProtocolVersion.TLS1_3 or hello.is_hello_retry_request:
            return          # the rest of a TLS 1.3 flight is encrypted; no renegotiation, no compression
        self.renegotiation_seen.append(hello.secure_renegotiation)
        self.ems_seen.append(hello.extended_master_secret)
        self.ocsp_seen.append(hello.status_request or flight.certificate_status is not None)
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
        ciphers = [AcceptedCipher(version, code, CIPHER_SUITES[code].name, grade_cipher_suite(code))
                   for version in TLS_VERSIONS for code in self.accepted.get(version, [])]
        ciphers += [AcceptedCipher(ProtocolVersion.SSL2, kind, SSL2_CIPHER_KINDS[kind].name, Class.INSUFFICIENT)
                    for kind in self.sslv2_kinds]
        certificates = _certificates(self.leaf_ders)
        dh_grade = worst(*(grade_dh_parameters(p.p, p.g) for p in self.dh_parameters)) if self.dh_parameters else None
        renegotiation = all(self.renegotiation_seen) if self.renegotiation_seen else None
        compression = any(self.compression_seen) if self.compression_seen else None
        versions = sorted(self.versions, key=lambda v: v.version, reverse=True)
        supported = [v.version for v in versions if v.supported]
        grade = None
        if supported:
            grade = worst(
                *(grade_version(v) for v in supported),
                *(c.grade for c in ciphers),
                *(g.grade for g in self.groups),
                *((dh_grade,) if dh_grade is not None else ()),
                *(worst(grade_certificate_key(c.key_type, c.key_bits), grade_signature_hash(c.signature_hash))
                  for c in certificates),
                # NCSC-NL 2025: TLS compression and the lack of secure renegotiation are insufficient.
                Class.INSUFFICIENT if compression else Class.GOOD,
                Class.INSUFFICIENT if renegotiation is False else Class.GOOD,
            )
        return TLSScanResult(
            success=self.failure is None,
            failure=self.failure,
            failure_detail=self.failure_detail,
            observed_at=observed_at,
            duration_seconds=duration,
            connections=self.connector.connections if self.connector else 0,
            address=self.address,
            versions=tuple(versions),
            ciphers=tuple(ciphers),
            server_cipher_order=tuple(self.server_cipher_order),
            groups=tuple(self.groups),
            dh_min_size=min(p.p_bits for p in self.dh_parameters) if self.dh_parameters else None,
            dh_grade=dh_grade,
            secure_renegotiation=renegotiation,
            compression=compression,
            extended_master_secret=all(self.ems_seen) if self.ems_seen else None,
            ocsp_stapling=any(self.ocsp_seen) if self.ocsp_seen else None,
            certificates=certificates,
            grade=grade,
        )


def _certificates(leaf_ders: dict[bytes, None]) -> tuple[CertificateInfo, ...]:
    infos = []
    for der in leaf_ders:
        try:
            infos.append(certificate_info(der))
        except ValueError:
            continue        # an unparsable certificate says nothing about key sizes
    return tuple(infos)
