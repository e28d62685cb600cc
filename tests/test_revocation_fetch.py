"""The revocation fetches against hostile in-process HTTP servers (huge bodies, stalls,
garbage, answers signed by the wrong key or about another certificate): each is a
labelled failure, never a crash and never "good". Then the cache, and the scheduler
running the checks beside the probe without waiting for them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import dns.rdata
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry

from exporter.certs import certificate_info
from exporter.config import Config, GlobalSettings, Target
from exporter.dnsclient import DNSAnswer, DNSError, DNSErrorKind
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.revocation.check import CRL_SIZE_LIMIT, OCSP_SIZE_LIMIT, Fetcher, check_chains
from exporter.revocation.results import RevocationFailure, RevocationMethod, RevocationStatus
from exporter.service import revocation as service_revocation
from exporter.service.revocation import ExpiringCache, RevocationChecks, refresh_after
from exporter.service.runs import Probes
from exporter.service.scheduler import Scheduler
from exporter.service.store import ResultStores
from tests.hostile import FakeServer, closed_port
from tests.revocation_pki import crl_der, make_ca, make_crl, make_leaf, make_ocsp

from results_factory import tls_result
from test_scheduler import make_config

F = RevocationFailure
CA = make_ca()
OTHER_CA = make_ca("another CA")


_LEAVES: dict[int, object] = {}     # the leaves the in-process responders answer for, by serial


def _leaf_for(request):
    return _LEAVES[request.serial_number]


def http_answer(body: bytes, content_type: bytes = b"application/ocsp-response", *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: %d\r\n\r\n" % size + body


class Responder:
    """An in-process HTTP server: `answer(request_body)` gives the bytes it sends (None: stall)."""

    def __init__(self, answer, host: str = "127.0.0.1"):
        self.answer, self.host = answer, host
        self.requests: list[tuple[bytes, bytes]] = []   # (head, body)
        self.server = FakeServer(self._handle, host=host)

    async def _handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        answer = self.answer(body)
        if answer is None:
            await asyncio.sleep(3600)
        if callable(answer):
            await answer(writer)
        else:
            writer.write(answer)
            await writer.drain()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.server.port}{path}"

    async def __aenter__(self):
        await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self.server.__aexit__(*exc)


async def flood(writer):
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")      # framed by the end of the connection
    chunk = b"\x00" * 65536
    while True:
        writer.write(chunk)
        await writer.drain()


class StaticDNS:
    """A resolver answering A queries from a table (NXDOMAIN for a name not in it)."""

    def __init__(self, addresses: dict[str, str]):
        self.addresses = addresses
        self.asked: list[str] = []

    async def lookup(self, name, rdtype, *, checking_disabled=False):
        self.asked.append(name)
        if name not in self.addresses:
            raise DNSError(DNSErrorKind.NXDOMAIN, name, rdtype)
        if rdtype != "A":
            raise DNSError(DNSErrorKind.NODATA, name, rdtype)
        return DNSAnswer(name, rdtype, (dns.rdata.from_text("IN", "A", self.addresses[name]),), name, False)


async def test_a_good_answer_by_post():
    def answer(body):
        return http_answer(make_ocsp(_leaf_for(ocsp.load_der_ocsp_request(body)), CA))

    async with Responder(answer) as server:
        leaf = make_leaf(CA, "mail.good.test", ocsp_url=server.url("/ocsp"))
        _LEAVES[leaf.cert.serial_number] = leaf.cert
        [check] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(StaticDNS({}), timeout=2))
    assert check.verdict.status is RevocationStatus.GOOD, check.verdict
    assert (check.position, check.method, check.url) == (0, RevocationMethod.OCSP, server.url("/ocsp"))
    head, _ = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /ocsp HTTP/1.1" and f"Host: 127.0.0.1:{server.server.port}" in lines
    assert "Content-Type: application/ocsp-request" in lines


def crl_answer(crl) -> bytes:
    return http_answer(crl_der(crl), b"application/pkix-crl")


async def test_a_crl_by_get_good_and_revoked():
    revoked = make_leaf(CA, "revoked.test")
    async with Responder(lambda body: crl_answer(make_crl(CA, (revoked.cert,)))) as server:
        good = make_leaf(CA, "good.test", crl_url=server.url("/ca.crl"))
        bad = make_leaf(CA, "revoked.test", crl_url=server.url("/ca.crl"))
        revoked_listed = make_crl(CA, (bad.cert,))
        server.answer = lambda body: crl_answer(revoked_listed)
        checks = await check_chains({"192.0.2.1": (good.der, CA.der), "192.0.2.2": (bad.der, CA.der)}, (),
                                    Fetcher(StaticDNS({}), timeout=2))
    assert [c.verdict.status for c in checks] == [RevocationStatus.GOOD, RevocationStatus.REVOKED]
    assert server.requests[0][0].startswith(b"GET /ca.crl HTTP/1.1\r\n")


def _wrong_signature(body):
    request = ocsp.load_der_ocsp_request(body)
    return http_answer(make_ocsp(_leaf_for(request), CA, signer=OTHER_CA))


def _other_serial(body):
    return http_answer(make_ocsp(make_leaf(CA, "other.test").cert, CA))


HOSTILE_OCSP = [
    ("huge announced body", lambda body: http_answer(b"", length=10 ** 12), F.TOO_LARGE, "over 65536 bytes"),
    ("endless body", lambda body: flood, F.TOO_LARGE, f"body over {OCSP_SIZE_LIMIT} bytes"),
    ("garbage DER", lambda body: http_answer(b"\x30\x82\x01\x00" + b"\xff" * 200), F.PARSE_ERROR, "not an OCSP response"),
    ("HTML", lambda body: http_answer(b"<html>ocsp</html>", b"text/html"), F.PARSE_ERROR, "not an OCSP response"),
    ("404", lambda body: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", F.HTTP_STATUS, "HTTP 404"),
    ("redirect", lambda body: b"HTTP/1.1 302 Found\r\nLocation: http://evil.test/\r\n\r\n", F.HTTP_STATUS, "HTTP 302"),
    ("not HTTP", lambda body: b"SSH-2.0-OpenSSH_9.2\r\n", F.HTTP_ERROR, "not an HTTP/1.x status line"),
    ("tryLater", lambda body: http_answer(ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(serialization.Encoding.DER)),
     F.RESPONDER_ERROR, "TRY_LATER"),
    ("signed by the wrong key", _wrong_signature, F.SIGNATURE_INVALID, "not signed by the issuer"),
    ("about another serial", _other_serial, F.WRONG_CERTIFICATE, "about serial"),
]


@pytest.mark.parametrize("what, answer, failure, detail", HOSTILE_OCSP, ids=[c[0] for c in HOSTILE_OCSP])
async def test_hostile_ocsp_answers_are_labelled_failures(what, answer, failure, detail):
    async with Responder(answer) as server:
        leaf = make_leaf(CA, "mail.good.test", ocsp_url=server.url())
        _LEAVES[leaf.cert.serial_number] = leaf.cert
        started = time.monotonic()
        [check] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(StaticDNS({}), timeout=2))
    assert check.verdict.status is None
    assert check.verdict.failure is failure and detail in check.verdict.detail, check.verdict
    assert time.monotonic() - started < 1.5


async def test_a_stalling_responder_is_a_timeout():
    async with Responder(lambda body: None) as server:
        leaf = make_leaf(CA, "mail.good.test", ocsp_url=server.url())
        started = time.monotonic()
        [check] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(StaticDNS({}), timeout=0.5))
    assert check.verdict.failure is F.TIMEOUT and "no complete answer within 0.5s" in check.verdict.detail
    assert 0.5 <= time.monotonic() - started < 1.5


@pytest.mark.parametrize("what, answer, failure", [
    ("endless CRL", lambda body: flood, F.TOO_LARGE),
    ("garbage", lambda body: http_answer(b"\x30\x03\x02\x01\x00"), F.PARSE_ERROR),
    ("another issuer's CRL", lambda body: crl_answer(make_crl(OTHER_CA)), F.WRONG_CERTIFICATE),
    ("signed by the wrong key", lambda body: crl_answer(make_crl(CA, signer=OTHER_CA)), F.SIGNATURE_INVALID),
])
async def test_hostile_crls_are_labelled_failures(what, answer, failure):
    async with Responder(answer) as server:
        leaf = make_leaf(CA, "mail.good.test", crl_url=server.url("/ca.crl"))
        started = time.monotonic()
        [check] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(StaticDNS({}), timeout=5))
    assert (check.verdict.status, check.verdict.failure) == (None, failure), check.verdict
    assert time.monotonic() - started < 4
    if failure is F.TOO_LARGE:
        assert f"body over {CRL_SIZE_LIMIT} bytes" in check.verdict.detail


async def test_names_resolve_through_the_exporters_resolver_and_the_guard_holds():
    async with Responder(lambda body: crl_answer(make_crl(CA))) as server:
        url = f"http://crl.ca.test:{server.server.port}/ca.crl"
        leaf = make_leaf(CA, "mail.good.test", crl_url=url)
        resolver = StaticDNS({"crl.ca.test": "127.0.0.1"})
        [check] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(resolver, timeout=2))
        assert check.verdict.status is RevocationStatus.GOOD and "crl.ca.test" in resolver.asked
        [refused] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (),
                                       Fetcher(resolver, timeout=2, address_allowed=lambda a: False))
        assert len(server.requests) == 1
    assert refused.verdict.failure is F.ADDRESS_NOT_ALLOWED
    [unknown] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(StaticDNS({}), timeout=2))
    assert unknown.verdict.failure is F.DNS_ERROR


async def test_a_closed_port_is_an_http_error():
    leaf = make_leaf(CA, "mail.good.test", ocsp_url=f"http://127.0.0.1:{closed_port()}/")
    [check] = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Fetcher(StaticDNS({}), timeout=2))
    assert check.verdict.failure is F.HTTP_ERROR and "cannot connect" in check.verdict.detail


async def test_which_certificates_are_checked():
    intermediate = make_ca("intermediate", parent=CA, ocsp_url="http://127.0.0.1:1/", crl_url="ldap://ca.test/x")
    leaf = make_leaf(intermediate, "mail.good.test", crl_url="ldap://ca.test/crl")
    orphan = make_leaf(OTHER_CA, "orphan.test", ocsp_url="http://127.0.0.1:1/")
    plain = make_leaf(CA, "plain.test")
    checks = await check_chains(
        {"192.0.2.1": (leaf.der, intermediate.der, CA.der), "192.0.2.2": (orphan.der,), "192.0.2.3": (plain.der,)},
        (), Fetcher(StaticDNS({}), timeout=1, address_allowed=lambda a: False))
    outcome = [(c.address, c.position, c.method, c.verdict.failure) for c in checks]
    assert outcome == [
        ("192.0.2.1", 0, RevocationMethod.CRL, F.UNSUPPORTED_URL),
        ("192.0.2.1", 1, RevocationMethod.CRL, F.UNSUPPORTED_URL),
        ("192.0.2.1", 1, RevocationMethod.OCSP, F.ADDRESS_NOT_ALLOWED),   # the root (position 2) is not checked
        ("192.0.2.2", 0, RevocationMethod.OCSP, F.NO_ISSUER),
    ]
    # The issuer from the trust anchors.
    [anchored] = await check_chains({"192.0.2.2": (orphan.der,)}, (OTHER_CA.cert,),
                                    Fetcher(StaticDNS({}), timeout=1, address_allowed=lambda a: False))
    assert anchored.verdict.failure is F.ADDRESS_NOT_ALLOWED


async def test_a_bug_fails_its_own_check_only(caplog):
    class Broken(Fetcher):
        async def ocsp(self, *args):
            raise RuntimeError("a bug")

    leaf = make_leaf(CA, "mail.good.test", ocsp_url="http://127.0.0.1:1/", crl_url="ldap://x/")
    checks = await check_chains({"192.0.2.1": (leaf.der, CA.der)}, (), Broken(StaticDNS({}), timeout=1))
    assert [(c.method, c.verdict.failure) for c in checks] == [
        (RevocationMethod.CRL, F.UNSUPPORTED_URL), (RevocationMethod.OCSP, F.INTERNAL_ERROR)]
    assert "RuntimeError: a bug" in checks[1].verdict.detail and "failed unexpectedly" in caplog.text


# ---- the cache ---------------------------------------------------------------------

@pytest.mark.parametrize("next_update, failed, seconds", [
    (None, True, service_revocation.MIN_REFRESH_SECONDS),
    (1000.0 + 86400, True, service_revocation.MIN_REFRESH_SECONDS),
    (None, False, service_revocation.NO_NEXT_UPDATE_REFRESH_SECONDS),
    (1000.0 + 3600, False, 3600),
    (1000.0 + 10, False, service_revocation.MIN_REFRESH_SECONDS),
    (1000.0 - 10_000, False, service_revocation.MIN_REFRESH_SECONDS),     # already stale
    (1000.0 + 7 * 86400, False, service_revocation.MAX_REFRESH_SECONDS),
])
def test_refresh_after(next_update, failed, seconds):
    assert refresh_after(next_update, failed, 1000.0) == seconds


async def test_the_cache_shares_one_production_expires_and_is_bounded(monkeypatch):
    cache: ExpiringCache[int] = ExpiringCache(2)
    produced: list[str] = []

    def producer(key: str, value: int):
        async def produce():
            produced.append(key)
            await asyncio.sleep(0.05)
            return value
        return produce

    values = await asyncio.gather(*(cache.get("a", producer("a", 1), lambda v: 60) for _ in range(5)))
    assert values == [1] * 5 and produced == ["a"]
    assert await cache.get("b", producer("b", 2), lambda v: 0.0) == 2     # expires at once
    assert await cache.get("b", producer("b", 3), lambda v: 60) == 3
    assert await cache.get("c", producer("c", 4), lambda v: 60) == 4       # "a" is the least recently used
    assert len(cache) == 2
    assert await cache.get("a", producer("a", 5), lambda v: 60) == 5
    assert produced == ["a", "b", "b", "c", "a"]


async def test_cached_answers_are_not_fetched_again():
    async with Responder(lambda body: crl_answer(make_crl(CA))) as server:
        leaves = [make_leaf(CA, f"m{n}.test", crl_url=server.url("/ca.crl")) for n in range(3)]
        cache = RevocationChecks(ResultStores().revocations, ExporterMetrics(CollectorRegistry())).cache
        answers = cache.through(Fetcher(StaticDNS({}), timeout=2))
        for _ in range(2):
            checks = await check_chains({f"192.0.2.{n}": (leaf.der, CA.der) for n, leaf in enumerate(leaves)}, (),
                                        answers)
            assert [c.verdict.status for c in checks] == [RevocationStatus.GOOD] * 3
    assert len(server.requests) == 1        # one CRL for three certificates, twice


# ---- beside the probe ----------------------------------------------------------------

async def test_the_probe_never_waits_for_a_stalling_ca(monkeypatch):
    async with Responder(lambda body: None) as server:
        leaf = make_leaf(CA, "mail.good.test", ocsp_url=server.url())
        endpoint = tls_result()
        chain = (certificate_info(leaf.der), certificate_info(CA.der))
        endpoint = replace(endpoint, tls=replace(endpoint.tls, chain=chain))

        async def probe(target, module, dns_):
            return endpoint

        results = ResultStores()
        scheduler = Scheduler(results, ExporterMetrics(CollectorRegistry()), Probes(endpoint=probe))
        monkeypatch.setattr(service_revocation, "FETCH_TIMEOUT_SECONDS", 0.5)   # as imported there
        try:
            config = make_config([Target("127.0.0.1", 25, "smtp")], interval=60)
            scheduler.apply(config)
            started = time.monotonic()
            result = await scheduler.run_once(config.targets[0], config.modules["smtp"])
            assert time.monotonic() - started < 0.3 and result.success
            assert results.revocations.get(config.targets[0].key) is None     # still asking
            await _until(lambda: results.revocations.get(config.targets[0].key) is not None)
            [check] = results.revocations.get(config.targets[0].key).result.checks
            assert check.verdict.failure is F.TIMEOUT
            assert results.endpoints.get(config.targets[0].key).result.success
            # Switched off: no runs, and the results go at the next reload.
            scheduler.apply(replace(config, global_=replace(config.global_, revocation_checks=False)))
            assert results.revocations.get(config.targets[0].key) is None
        finally:
            await scheduler.stop()


async def _until(condition, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_default_is_on():
    assert GlobalSettings().revocation_checks and Config().global_.revocation_checks


def test_stored_results_carry_the_labels_the_dashboard_selects_on():
    """The endpoint dashboard's revocation panels select on target and module."""
    from results_factory import revocation_result

    results = ResultStores()
    target = Target("mx.example.test", 25, "smtp")
    results.revocations.put(target.key, target, revocation_result())
    text = b"".join(results.exposition_chunks()).decode()
    common = 'address="127.0.0.1",chain_position="0",family="ipv4"'
    target = 'target="mx.example.test:25"'
    assert f'mailsec_cert_revoked{{{common},method="ocsp",module="smtp",{target}}} 1.0' in text
    assert f'mailsec_cert_revocation_failure_info{{{common},method="crl",module="smtp",reason="timeout",{target}}} 1.0' in text


async def test_a_long_presented_chain_costs_at_most_four_positions_of_checks():
    """A server presenting a chain of 8 certificates, each naming a responder: only the leaf
    and the next three are checked (each a quick failure on a closed port here)."""
    url = f"http://127.0.0.1:{closed_port()}/"
    chain = [make_ca("root")]
    for depth in range(7):
        chain.append(make_ca(f"intermediate {depth}", parent=chain[-1], ocsp_url=url))
    leaf = make_leaf(chain[-1], "mail.good.test", ocsp_url=url)
    presented = (leaf.der, *(issued.der for issued in reversed(chain[1:])))
    checks = await check_chains({"192.0.2.1": presented}, (), Fetcher(StaticDNS({}), timeout=2))
    assert sorted(check.position for check in checks) == [0, 1, 2, 3]
