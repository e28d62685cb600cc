"""The deep scan against model servers (tests/tlsservers/model.py) that negotiate like real
ones from a declared configuration: the findings must equal the declaration, and the
connections stay within the scanner's documented bound, for configurations drawn by
hypothesis as well as for the cases the connection-saving steps were written for."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from exporter.config import DNSSettings, Module, MailProtocol, StartTLS, Target
from exporter.dnsclient import DNSClient
from exporter.tlsscan.order import offer_order
from exporter.tlsscan.results import TLSScanResult
from exporter.tlsscan.scanner import TLS12_EC_GROUPS, TLS13_GROUPS, scan_endpoint
from exporter.tlswire import ProtocolVersion
from exporter.tlswire.ciphers import CIPHER_SUITES, KeyExchange
from exporter.tlswire.grading import Class
from exporter.tlswire.hello import NORMAL_CLIENT_GROUPS
from tests.tlsservers.fake import FakeTLSServer, OfferedHello, Responder
from tests.tlsservers.model import ModelServer

V = ProtocolVersion
LOWER_VERSIONS = (V.TLS1_2, V.TLS1_1, V.TLS1_0, V.SSL3)


async def scan_model(model: ModelServer, respond: Responder | None = None) -> tuple[TLSScanResult, int]:
    async with FakeTLSServer(respond or model.respond) as server:
        module = Module(name="model", protocol=MailProtocol.SMTPS, port=server.port, starttls=StartTLS.NONE,
                        timeout=2.0, interval=300.0)
        result = await scan_endpoint(Target(host="127.0.0.1", port=server.port, module="model"), module,
                                     DNSClient(DNSSettings()))
    return result, server.connections


def key_exchange_family(code: int) -> str:
    key_exchange = CIPHER_SUITES[code].key_exchange
    return key_exchange.value if key_exchange in (KeyExchange.ECDHE, KeyExchange.DHE) else "other"


def tls12_curves(model: ModelServer) -> set[int]:
    """The curves the scan can find below TLS 1.3 (it offers the classic EC groups only)."""
    return set(model.groups if model.tls12_groups is None else model.tls12_groups) & set(TLS12_EC_GROUPS)


def served(model: ModelServer, version: ProtocolVersion) -> set[int]:
    """What a client can get: not the failing suites, nor ECDHE below TLS 1.3 without a curve."""
    suites = set(model.suites.get(version, ())) - model.failing
    if version is not V.TLS1_3 and not tls12_curves(model):
        suites = {code for code in suites if CIPHER_SUITES[code].key_exchange is not KeyExchange.ECDHE}
    return suites


def expected_groups(model: ModelServer) -> set[int]:
    groups: set[int] = set(model.groups) if served(model, V.TLS1_3) else set()
    if any(CIPHER_SUITES[code].key_exchange is KeyExchange.ECDHE for code in served(model, V.TLS1_2)):
        groups |= tls12_curves(model)
    return groups


def assert_findings_match(result: TLSScanResult, model: ModelServer) -> None:
    assert result.success, result.failure_detail
    for version in (V.TLS1_3, *LOWER_VERSIONS):
        assert {c.code for c in result.ciphers_for(version)} == served(model, version), version.label
    assert set(result.supported_versions()) == {v for v in model.suites if served(model, v)}
    assert {g.group for g in result.groups} == expected_groups(model)
    expected_order = {v: model.own_order for v in model.suites if len(served(model, v)) >= 2}
    assert dict(result.server_cipher_order) == expected_order


def connection_bound(model: ModelServer) -> int:
    """The module docstring's bound for a server that refuses with alerts."""
    tls13 = len(served(model, V.TLS1_3))
    bound = tls13 + len(model.groups) + 3 if tls13 else 2
    for version in LOWER_VERSIONS:
        bound += len(served(model, version)) + 1 if served(model, version) else 2
    bound += 1                                                     # SSLv2
    bound += sum(3 for version in model.suites if len(served(model, version)) >= 2)
    # + the ordinary client's TLS 1.3 and TLS 1.2 hellos, the fallback SCSV hello
    return bound + len(TLS12_EC_GROUPS) + 1 + 2 + 1


# --- the cases the connection-saving steps are for --------------------------------------------

MODERN_TLS12 = (0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8)
MODERN_TLS13 = (0x1302, 0x1303, 0x1301)
FIVE_GROUPS = (29, 23, 30, 25, 24)      # Postfix's default: X25519 prime256v1 X448 secp521r1 secp384r1


async def test_client_order_server_costs_one_hello_per_suite_plus_refusals():
    # TLS 1.2: 6 suites + 1 refusal; its ECDHE picks show the 5 curves, the unseen ones being
    # offered first each time, and a pick of a seen curve shows none is left: no group hello.
    # TLS 1.3 (groups chosen by the server, as OpenSSL 3.0 does even for client-order
    # servers): an ordinary client's hello gets a suite; the other suites with the groups
    # TLS 1.2 did not show are refused, and so is the accepted suite with them: no group left;
    # then 2 suites with the groups seen, and a pick of an accepted suite listed after every
    # suite left, which ends the suites: 6. Lower versions: 1 each; SSLv2: 1.
    model = ModelServer({V.TLS1_3: MODERN_TLS13, V.TLS1_2: MODERN_TLS12}, own_order=False, groups=FIVE_GROUPS)
    result, connections = await scan_model(model)
    assert_findings_match(result, model)
    assert {g.version for g in result.groups} == {V.TLS1_2}
    # The first ECDHE pick showed the curve an ordinary client gets; TLS 1.3 needs one hello.
    assert [(g.version, g.group) for g in result.normal_client_groups] == [(V.TLS1_3, 29), (V.TLS1_2, 29)]
    # + the fallback SCSV hello, the real handshake of the session checks (which a model server
    # cannot complete: nothing else is tried)
    assert connections == result.connections == (6 + 1) + 5 + 3 + 1 + 1 + 1 + 1
    assert connections <= len(result.ciphers) + 10


async def test_own_order_server_finds_tls13_suites_and_groups_together():
    # TLS 1.2 shows only the server's favourite curve. TLS 1.3, its own order: 3 suites and 3
    # of the 4 other groups together, a refusal that may be either, the last group with the
    # accepted suites (which shows the suites had run out), a refusal: 6. TLS 1.2 groups: 1.
    model = ModelServer({V.TLS1_3: MODERN_TLS13, V.TLS1_2: MODERN_TLS12}, own_order=True, groups=FIVE_GROUPS)
    result, connections = await scan_model(model)
    assert_findings_match(result, model)
    assert connections == result.connections == (6 + 1) + (3 + 3) + 3 + 1 + 1 + 1 + 1 + 1
    assert connections <= len(result.ciphers) + 10 + 2          # + the fallback SCSV hello, the session checks


async def test_lower_versions_start_with_the_suites_a_higher_one_accepted():
    # The first TLS 1.1 and TLS 1.0 hellos offer what TLS 1.2 accepted and find a suite, so
    # those versions cost (accepted + 1) hellos like TLS 1.2. The 3 ECDHE picks of TLS 1.2
    # showed the 3 curves; 1 refusal shows there is no other.
    cbc = (0xC013, 0xC014, 0x002F, 0x0035)
    model = ModelServer({V.TLS1_2: (0xC02F, *cbc), V.TLS1_1: cbc, V.TLS1_0: cbc})
    result, connections = await scan_model(model)
    assert_findings_match(result, model)
    assert connections == result.connections == 1 + (5 + 1) + 2 * (4 + 1) + 1 + 1 + 1 + 1 + 1


async def test_a_version_with_other_suites_than_the_one_above_is_still_enumerated():
    # TLS 1.0 accepts nothing TLS 1.2 accepted: the first hello's handshake_failure is not
    # taken for "TLS 1.0 unsupported"; the full list follows.
    model = ModelServer({V.TLS1_2: (0xC02F, 0x009C), V.TLS1_0: (0x000A,)})
    result, _ = await scan_model(model)
    assert_findings_match(result, model)


async def test_a_server_that_closes_instead_of_refusing_and_fails_on_dhe():
    # Dovecot without ssl_dh: DHE suites in its list fail; every refusal is a bare close.
    dhe = (0x009E, 0x0033)
    suites = (0xC02F, 0xC030, 0xC013, *dhe)
    model = ModelServer({V.TLS1_3: MODERN_TLS13, V.TLS1_2: suites}, closes=True, failing=frozenset(dhe),
                        groups=(29, 23, 30, 25, 24, 256, 257))
    result, connections = await scan_model(model)
    assert_findings_match(result, model)
    # TLS 1.1, 1.0 and SSL 3.0 cost one hello each: their first hello offers suites TLS 1.2 accepted.
    assert {v.version: v.reason for v in result.versions if not v.supported} == {
        V.TLS1_1: "closed", V.TLS1_0: "closed", V.SSL3: "closed", V.SSL2: "closed"}


async def test_a_closing_server_costs_one_ssl3_hello_below_its_version_range():
    # Like Dovecot: TLS 1.1 and 1.0 refuse (by closing) suites TLS 1.2 serves, so they are
    # not supported; SSL 3.0, for which no accepted suite is valid, is then below the
    # server's range: one hello with its whole list, not one per key-exchange family.
    dhe = (0x009E, 0x0033)
    model = ModelServer({V.TLS1_2: (0xC02F, 0xC013, *dhe)}, closes=True, failing=frozenset(dhe))
    versions: list[int] = []

    def respond(hello: OfferedHello) -> bytes:
        versions.append(hello.version)
        return model.respond(hello)

    result, connections = await scan_model(model, respond)
    assert_findings_match(result, model)
    assert versions.count(V.SSL3) == 1 and versions.count(V.TLS1_1) == versions.count(V.TLS1_0) == 1
    # No TLS 1.3: an ordinary client's hello and one with every group, both closed; and the
    # real handshake of the session checks, which offers TLS 1.3 too.
    assert versions.count(V.TLS1_3) == 2 + 1
    assert connections == result.connections


async def test_a_closing_server_is_asked_below_tls12_only_about_what_tls12_left_open():
    # Like Dovecot with TLS 1.0 still on and no ssl_dh: one cipher list for every version, DHE
    # suites that fail, every refusal a bare close. TLS 1.2 decided every suite valid in it, so
    # TLS 1.1 is asked only about the suites TLS 1.2 served (2 hellos for 2 suites, the second
    # listing the first pick last, which shows the order), TLS 1.0 also about its export suites,
    # one of which this server serves (RSA_EXPORT_WITH_RC4_40_MD5).
    dhe, cbc, export = (0x009E, 0x0033), (0xC013, 0xC014), 0x0003
    model = ModelServer({V.TLS1_3: MODERN_TLS13, V.TLS1_2: (0xC02F, *cbc, *dhe), V.TLS1_1: (*cbc, 0x0033),
                         V.TLS1_0: (*cbc, 0x0033, export)}, closes=True, failing=frozenset(dhe), groups=FIVE_GROUPS)
    versions: list[int] = []

    def respond(hello: OfferedHello) -> bytes:
        versions.append(hello.version)
        return model.respond(hello)

    result, connections = await scan_model(model, respond)
    assert_findings_match(result, model)
    assert {c.code for c in result.ciphers_for(V.TLS1_0)} == {*cbc, export}
    assert versions.count(V.TLS1_1) == 2 and versions.count(V.TLS1_0) <= 4
    assert connections == result.connections <= len(result.ciphers) + 10 + 2     # + the fallback SCSV hello, the session checks


async def test_tls12_only_curves_are_found_beside_the_tls13_groups():
    # secp224r1 is not a TLS 1.3 group; a server that keeps it shows it only in TLS 1.2.
    model = ModelServer({V.TLS1_3: MODERN_TLS13, V.TLS1_2: MODERN_TLS12}, groups=(29, 23),
                        tls12_groups=(29, 23, 21))
    result, _ = await scan_model(model)
    assert_findings_match(result, model)
    assert {(g.version, g.group) for g in result.groups if g.group == 21} == {(V.TLS1_2, 21)}


NORMAL_CLIENT_GROUP_CASES = {
    # groups by the server's preference, own order, TLS 1.2 curves -> (TLS 1.3, TLS 1.2) groups an
    # ordinary client (X25519, P-256, X448, P-521, P-384; X25519 key share) gets, extra hellos.
    "x25519 first, client order": ((29, 23), False, None, (29, 29), 1),
    # No X25519: a HelloRetryRequest for the server's favourite of the client's groups.
    "P-384 favourite": ((24, 23), True, None, (24, 24), 1),
    # Its favourite curve is one an ordinary client does not offer: one more TLS 1.2 hello.
    "brainpool favourite in TLS 1.2": ((29, 23), True, (26, 23), (29, 23), 2),
    # FFDHE accepted in TLS 1.3 when forced, as OpenSSL does: a fact, not the normal group.
    "ffdhe2048 when forced": ((29, 23, 256), True, (29, 23), (29, 29), 1),
}


@pytest.mark.parametrize("groups, own_order, tls12_groups, expected, extra", NORMAL_CLIENT_GROUP_CASES.values(),
                         ids=NORMAL_CLIENT_GROUP_CASES.keys())
async def test_the_groups_an_ordinary_client_gets(groups: tuple[int, ...], own_order: bool,
                                                  tls12_groups: tuple[int, ...] | None,
                                                  expected: tuple[int, int], extra: int):
    model = ModelServer({V.TLS1_3: (0x1302,), V.TLS1_2: (0xC030,)}, own_order=own_order, groups=groups,
                        tls12_groups=tls12_groups)
    hellos: list[OfferedHello] = []

    def respond(hello: OfferedHello) -> bytes:
        hellos.append(hello)
        return model.respond(hello)

    result, connections = await scan_model(model, respond)
    assert_findings_match(result, model)
    assert [(g.version, g.group) for g in result.normal_client_groups] == [(V.TLS1_3, expected[0]), (V.TLS1_2, expected[1])]
    # TLS 1.2 sufficient, the ECDSA P-256 certificate good, the groups an ordinary client gets good:
    # whatever else the server accepts when forced does not lower the grade.
    assert result.grade is Class.SUFFICIENT
    assert {g.group for g in result.groups} >= set(groups)
    assert connections == result.connections <= connection_bound(model)
    assert sum(1 for hello in hellos if hello.groups == NORMAL_CLIENT_GROUPS) == extra


# --- any configuration ------------------------------------------------------------------------

@st.composite
def model_servers(draw) -> ModelServer:
    closes = draw(st.booleans())
    versions = draw(st.sets(st.sampled_from((V.TLS1_3, *LOWER_VERSIONS)), min_size=1))
    if closes:      # the servers that refuse by closing are OpenSSL's: their versions are one range
        versions = {version for version in (V.TLS1_3, *LOWER_VERSIONS) if min(versions) <= version <= max(versions)}
    suites: dict[ProtocolVersion, tuple[int, ...]] = {}
    if V.TLS1_3 in versions:
        suites[V.TLS1_3] = tuple(draw(st.lists(st.sampled_from(offer_order(V.TLS1_3)), min_size=1, max_size=4, unique=True)))
    # One cipher list for every version below TLS 1.3, as OpenSSL and GnuTLS have; a server
    # that refuses with alerts may also have a list per version.
    pool = draw(st.lists(st.sampled_from(offer_order(V.TLS1_2)), min_size=1, max_size=10, unique=True))
    for version in sorted(versions - {V.TLS1_3}, reverse=True):
        if not closes and draw(st.booleans()):
            pool = draw(st.lists(st.sampled_from(offer_order(version)), min_size=1, max_size=6, unique=True))
        usable = tuple(code for code in pool if code in offer_order(version))
        if usable:
            suites[version] = usable
    # A server that fails on a suite it picked fails on its whole key-exchange family (DHE
    # without DH parameters, say): the premise of the scan's retries after a bare close.
    family = draw(st.sampled_from(("ECDHE", "DHE", "other")))
    failing = {code for codes in suites.values() for code in codes if codes is not suites.get(V.TLS1_3)
               and key_exchange_family(code) == family}
    return ModelServer(
        suites=suites,
        own_order=draw(st.booleans()),
        groups=tuple(draw(st.lists(st.sampled_from(TLS13_GROUPS), min_size=1, max_size=6, unique=True))),
        tls12_groups=draw(st.none() | st.lists(st.sampled_from(TLS12_EC_GROUPS), min_size=1, max_size=4, unique=True).map(tuple)),
        tls13_own_group_order=draw(st.booleans()),
        closes=closes,
        failing=frozenset(failing) if closes and draw(st.booleans()) else frozenset(),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=model_servers())
def test_findings_equal_the_declared_configuration(model: ModelServer):
    result, connections = asyncio.run(scan_model(model))
    assert_findings_match(result, model)
    assert connections == result.connections <= connection_bound(model)


@pytest.mark.parametrize("suites, honours, expected", [
    ({V.TLS1_3: (0x1302,), V.TLS1_2: (0xC030,)}, True, True),      # a TLS 1.2 hello with the SCSV
    ({V.TLS1_3: (0x1302,), V.TLS1_2: (0xC030,)}, False, False),
    ({V.TLS1_2: (0xC030, 0xC014), V.TLS1_0: (0xC014,)}, True, True),   # TLS 1.0 is the second best
    ({V.TLS1_2: (0xC030,)}, True, None),                           # one version: nothing to fall back to
])
async def test_fallback_scsv(suites: dict[ProtocolVersion, tuple[int, ...]], honours: bool, expected: bool | None):
    model = ModelServer(suites, honours_fallback_scsv=honours)
    result, _ = await scan_model(model)
    assert_findings_match(result, model)
    assert result.fallback_scsv is expected
