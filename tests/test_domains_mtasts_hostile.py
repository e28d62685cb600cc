"""The MTA-STS policy fetch against hostile HTTPS servers nginx cannot play: endless or
oversized heads, endless and absurd chunks, stalls, early closes, bytes past the promised
length; and the address guard, the order of addresses and the DNS-before-TLS rule.

The policy host mta-sts.hostile.test is resolved by a table (StaticDNS) to in-process
servers on port 443 of their own loopback addresses (binding 443 needs root).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.dnsclient import DNSAnswer, DNSError, DNSErrorKind
from exporter.dnswire import AddressRecord, TXTRecord
from exporter.domains import policy_fetch
from exporter.domains.common import CheckFailureReason
from exporter.domains.mtasts import check_mta_sts
from exporter.httpclient import CLOSE_GRACE_SECONDS, HEADER_COUNT_LIMIT, LINE_LIMIT
from exporter.domains.policy_fetch import (
    POLICY_PATH,
    POLICY_SIZE_LIMIT,
    USER_AGENT,
    PolicyFetchError,
    fetch_policy,
)
from tests.hostile import FakeServer, issue, server_tls_context, write_pem

pytestmark = pytest.mark.integration     # servers on port 443: started as root

DOMAIN = "hostile.test"
HOST = f"mta-sts.{DOMAIN}"
SERVER_ADDRESS = "127.77.0.20"     # the hostile policy server of each test
CANARY_ADDRESS = "127.77.0.21"     # listens, and must never be contacted
CLOSED_ADDRESS = "127.77.0.22"     # nothing listens: connections are refused
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.hostile.test\r\nmax_age: 604800\r\n"
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


class StaticDNS:
    """A resolver answering A and AAAA from a table (NXDOMAIN for a name not in it)."""

    def __init__(self, addresses: dict[str, list[str]]):
        self.addresses = addresses

    async def lookup(self, name: str, rdtype: str, *, checking_disabled: bool = False) -> DNSAnswer:
        if name not in self.addresses:
            raise DNSError(DNSErrorKind.NXDOMAIN, name, rdtype)
        found = [address for address in self.addresses[name] if (":" in address) == (rdtype == "AAAA")]
        if not found:
            raise DNSError(DNSErrorKind.NODATA, name, rdtype)
        return DNSAnswer(name, rdtype, tuple(AddressRecord(a) for a in found), name, False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = issue("MTA-STS hostile test CA", is_ca=True)
    leaf = issue(HOST, issuer=ca, dns_names=(HOST,))
    return write_pem(str(tmp_path_factory.mktemp("pki")), "ca.pem", ca), server_tls_context(leaf)


def responds(*parts: bytes, stall: bool = False, requests: list[bytes] | None = None):
    """A handler that reads the request head, writes `parts` in turn, then closes (or stalls)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if requests is not None:
            requests.append(request)
        for part in parts:
            writer.write(part)
            await writer.drain()
        if stall:
            await asyncio.sleep(3600)

    return handler


async def fetch(pki, handler, timeout: float = 5.0, **kwargs) -> tuple[bytes | PolicyFetchError, float]:
    """Fetch from a server running `handler`: the body or the error, and the seconds it took."""
    ca_file, context = pki
    async with FakeServer(handler, context, host=SERVER_ADDRESS, port=443):
        started = time.monotonic()
        try:
            outcome = await fetch_policy(DOMAIN, StaticDNS({HOST: [SERVER_ADDRESS]}), ca_file=ca_file,
                                         timeout=timeout, **kwargs)
        except PolicyFetchError as exc:
            outcome = exc
        return outcome, time.monotonic() - started


def assert_failure(outcome, reason: CheckFailureReason, detail_part: str) -> None:
    assert isinstance(outcome, PolicyFetchError), outcome
    assert outcome.failure.reason is reason
    assert detail_part in outcome.failure.detail and outcome.failure.detail.startswith(f"https://{HOST}/")


async def test_the_request_is_one_plain_get(pki):
    requests: list[bytes] = []
    body, _ = await fetch(pki, responds(OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(POLICY) + POLICY,
                                        requests=requests))
    assert body == POLICY
    assert requests[0].decode().split("\r\n") == [
        f"GET {POLICY_PATH} HTTP/1.1", f"Host: {HOST}", f"User-Agent: {USER_AGENT}", "Accept-Encoding: identity",
        "Connection: close", "", ""]


@pytest.mark.parametrize("answer, body", [
    # Framed by the end of the connection: what came before it is the body.
    (OK_HEAD + b"\r\n" + POLICY, POLICY),
    # Chunked, with an extension and a trailer field.
    (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10;x=y\r\n" + POLICY[:16] + b"\r\n"
     + b"%x\r\n" % (len(POLICY) - 16) + POLICY[16:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n", POLICY),
    # An interim answer first, then the real one; bare LF line ends.
    (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK_HEAD.replace(b"\r\n", b"\n") + b"\n" + POLICY, POLICY),
    # Bytes after the promised length are not part of the policy (nor read).
    (OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(POLICY) + POLICY + b"mx: evil.test\r\n" * 1000, POLICY),
])
async def test_bodies_read_as_framed(pki, answer, body):
    outcome, _ = await fetch(pki, responds(answer))
    assert outcome == body


@pytest.mark.parametrize("answer, reason, detail", [
    (OK_HEAD + b"X-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", CheckFailureReason.HTTPS_ERROR,
     f"header line over {LINE_LIMIT} bytes"),
    (b"HTTP/1.1 200 " + b"OK" * 10_000 + b"\r\n\r\n", CheckFailureReason.HTTPS_ERROR,
     f"status line over {LINE_LIMIT} bytes"),
    (OK_HEAD + b"X-N: v\r\n" * 10_000 + b"\r\n", CheckFailureReason.HTTPS_ERROR,
     f"over {HEADER_COUNT_LIMIT} header lines"),
    (OK_HEAD + (b"X-Long: " + b"b" * 7900 + b"\r\n") * 9 + b"\r\n",      # 9 lines under 8 KiB, 71 KB
     CheckFailureReason.HTTPS_ERROR, "header over 65536 bytes"),
    (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n" + b"x" * 100,
     CheckFailureReason.TOO_LARGE, f"body over {POLICY_SIZE_LIMIT} bytes"),
    (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 20_000 + b"\r\n",
     CheckFailureReason.HTTPS_ERROR, f"chunk size line over {LINE_LIMIT} bytes"),
    (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10\r\n" + POLICY[:20] + b"\r\n0\r\n\r\n",
     CheckFailureReason.HTTPS_ERROR, "a chunk is longer than its size line says"),
    (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n40\r\n" + POLICY[:30],
     CheckFailureReason.HTTPS_ERROR, "connection closed after 30 of 64 chunk bytes"),
    (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n10\r\n" + POLICY[:16] + b"\r\n",
     CheckFailureReason.HTTPS_ERROR, "connection closed in a chunk size line"),
    (OK_HEAD + b"Content-Length: 500\r\n\r\n" + POLICY, CheckFailureReason.HTTPS_ERROR,
     f"connection closed after {len(POLICY)} of 500 body bytes"),
    (OK_HEAD + b"\r\n" + b"p" * (POLICY_SIZE_LIMIT + 1), CheckFailureReason.TOO_LARGE,
     f"body over {POLICY_SIZE_LIMIT} bytes"),
    (OK_HEAD, CheckFailureReason.HTTPS_ERROR, "connection closed in a header line"),
    (b"", CheckFailureReason.HTTPS_ERROR, "connection closed in a status line"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", CheckFailureReason.HTTPS_ERROR, "not an HTTP/1.x status line"),
    (OK_HEAD + b" folded: header\r\n\r\n", CheckFailureReason.HTTPS_ERROR, "malformed header line"),
])
async def test_hostile_answers_fail_fast_with_their_reason(pki, answer, reason, detail):
    outcome, elapsed = await fetch(pki, responds(answer))
    assert_failure(outcome, reason, detail)
    assert elapsed < 2.0


async def test_an_endless_chunked_body_stops_at_the_limit(pki):
    chunk = b"1000\r\n" + b"x" * 0x1000 + b"\r\n"

    async def endless(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(chunk)
            await writer.drain()

    outcome, elapsed = await fetch(pki, endless)
    assert_failure(outcome, CheckFailureReason.TOO_LARGE, f"body over {POLICY_SIZE_LIMIT} bytes")
    assert elapsed < 2.0


@pytest.mark.parametrize("answer", [
    OK_HEAD + b"Content-Length: 100\r\n\r\n",         # the head, then nothing
    OK_HEAD + b"X-Slow: ",                           # half a header line
    b"",                                             # TLS up, not a byte of HTTP
])
async def test_a_server_that_stalls_is_a_timeout(pki, answer):
    outcome, elapsed = await fetch(pki, responds(answer, stall=True), timeout=0.5)
    assert_failure(outcome, CheckFailureReason.HTTPS_TIMEOUT, "no complete answer within 0.5s")
    assert 0.5 <= elapsed < 1.5


async def test_a_complete_answer_then_a_stall_is_the_policy(pki):
    # The body is complete at its Content-Length: the fetch neither times out nor waits
    # longer than CLOSE_GRACE_SECONDS for a close the server never sends.
    answer = OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(POLICY) + POLICY
    outcome, elapsed = await fetch(pki, responds(answer, stall=True), timeout=0.5)
    assert outcome == POLICY
    assert elapsed < 0.5 + CLOSE_GRACE_SECONDS + 0.5


async def test_the_guard_refusing_every_address_means_no_connection(pki):
    ca_file, _ = pki
    async with FakeServer(responds(b""), host=CANARY_ADDRESS, port=443) as canary:
        with pytest.raises(PolicyFetchError) as refused:
            await fetch_policy(DOMAIN, StaticDNS({HOST: [CANARY_ADDRESS]}), ca_file=ca_file, timeout=2,
                               address_allowed=lambda address: address != CANARY_ADDRESS)
        await asyncio.sleep(0.1)
    assert refused.value.failure.reason is CheckFailureReason.ADDRESS_NOT_ALLOWED
    assert CANARY_ADDRESS in refused.value.failure.detail
    assert canary.connections == 0


async def test_the_guard_skips_refused_addresses_and_the_check_passes_it_on(pki):
    ca_file, context = pki
    asked: list[str] = []

    def allowed(address: str) -> bool:
        asked.append(address)
        return address != CANARY_ADDRESS

    dns = StaticDNS({HOST: [CANARY_ADDRESS, SERVER_ADDRESS], f"_mta-sts.{DOMAIN}": []})
    async with (FakeServer(responds(b""), host=CANARY_ADDRESS, port=443) as canary,
                FakeServer(responds(OK_HEAD + b"\r\n" + POLICY), context, host=SERVER_ADDRESS, port=443)):
        body = await fetch_policy(DOMAIN, dns, ca_file=ca_file, timeout=2, address_allowed=allowed)
        assert body == POLICY
        assert asked == [CANARY_ADDRESS, SERVER_ADDRESS]
        # check_mta_sts hands the guard down to the fetch.
        assert await _policy_failure_of_check(dns, ca_file, lambda address: False) is (
            CheckFailureReason.ADDRESS_NOT_ALLOWED)
    assert canary.connections == 0


async def _policy_failure_of_check(dns: StaticDNS, ca_file: str, guard) -> CheckFailureReason | None:
    class WithRecord(StaticDNS):
        async def lookup(self, name, rdtype, *, checking_disabled=False):
            if (name, rdtype) == (f"_mta-sts.{DOMAIN}", "TXT"):
                return DNSAnswer(name, rdtype, (dns_txt("v=STSv1; id=1"),), name, False)
            return await super().lookup(name, rdtype)

    result = await check_mta_sts(DOMAIN, WithRecord(dns.addresses), ca_file=ca_file, timeout=2, address_allowed=guard)
    return result.policy_failure.reason if result.policy_failure else None


def dns_txt(text: str) -> TXTRecord:
    return TXTRecord((text.encode(),))


async def test_addresses_are_tried_in_order_until_one_connects(pki):
    ca_file, context = pki
    dns = StaticDNS({HOST: [CLOSED_ADDRESS, SERVER_ADDRESS]})
    async with FakeServer(responds(OK_HEAD + b"\r\n" + POLICY), context, host=SERVER_ADDRESS, port=443):
        assert await fetch_policy(DOMAIN, dns, ca_file=ca_file, timeout=2) == POLICY
    with pytest.raises(PolicyFetchError) as refused:
        await fetch_policy(DOMAIN, StaticDNS({HOST: [CLOSED_ADDRESS]}), ca_file=ca_file, timeout=2)
    assert refused.value.failure.reason is CheckFailureReason.HTTPS_ERROR
    assert f"cannot connect: {CLOSED_ADDRESS}: " in refused.value.failure.detail


@pytest.mark.parametrize("addresses, reason", [
    ({}, CheckFailureReason.HTTPS_NO_ADDRESS),                 # NXDOMAIN
    ({HOST: []}, CheckFailureReason.HTTPS_NO_ADDRESS),         # NODATA
])
async def test_no_tls_work_for_a_host_without_an_address(pki, monkeypatch, addresses, reason):
    contexts: list[str | None] = []
    monkeypatch.setattr(policy_fetch, "tls_context", lambda ca_file: contexts.append(ca_file))
    with pytest.raises(PolicyFetchError) as refused:
        await fetch_policy(DOMAIN, StaticDNS(addresses), ca_file=pki[0], timeout=2)
    assert refused.value.failure.reason is reason
    assert contexts == []
