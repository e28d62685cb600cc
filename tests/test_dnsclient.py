"""DNSClient against real servers: Knot (authoritative) and Unbound (validating)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from exporter.config import DNSSettings, Nameserver
from exporter.dnsclient import (
    DNSClient, DNSError, DNSErrorKind, LookupCache, addresses_of, mx_records, ptr_names, txt_records,
)
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import BIG_TXT_STRINGS, MX1_GOOD, MX1_GOOD_V6, MX2_GOOD

# Knot, Unbound, nginx or hostile DNS servers on privileged loopback ports: started as root.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def lab():
    return running_dns_lab()


@pytest.fixture
def resolver(lab) -> DNSClient:
    return DNSClient(lab.resolver)


async def test_txt_joins_strings_of_a_record_and_keeps_records_apart_over_tcp_fallback(resolver):
    # The answer is larger than the 1232-byte EDNS buffer: only TCP can carry it.
    records = await txt_records(resolver, "bigtxt.test")
    assert sorted(records) == sorted(["".join(BIG_TXT_STRINGS[:5]), "".join(BIG_TXT_STRINGS[5:])])


async def test_mx_records_sorted_by_preference_and_null_mx(resolver):
    assert [(r.preference, r.exchange) for r in await mx_records(resolver, "good.test")] == [
        (10, "mx1.good.test"), (20, "mx2.good.test")]
    assert [(r.preference, r.exchange) for r in await mx_records(resolver, "nullmx.test")] == [(0, "")]
    assert await mx_records(resolver, "nothing.test") == []


@pytest.mark.parametrize("name, rdtype, kind", [
    ("nothing.test", "A", DNSErrorKind.NXDOMAIN),
    ("good.test", "A", DNSErrorKind.NODATA),
    ("mx.bogus.test", "A", DNSErrorKind.SERVFAIL),
])
async def test_error_kinds(resolver, name, rdtype, kind):
    with pytest.raises(DNSError) as caught:
        await resolver.lookup(name, rdtype)
    assert caught.value.kind is kind


async def test_timeout_when_the_nameserver_never_answers():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        settings = DNSSettings(nameservers=(Nameserver("127.0.0.1", silent.getsockname()[1]),), timeout=0.3, retries=1)
        with pytest.raises(DNSError) as caught:
            await DNSClient(settings).lookup("good.test", "MX")
    assert caught.value.kind is DNSErrorKind.TIMEOUT


@pytest.mark.parametrize("name, rdtype, authenticated", [
    ("good.test", "MX", True),             # in the signed `test.` zone
    ("mx.signed.test", "A", True),         # a signed child with a matching DS
    ("mx.unsigned.test", "A", False),      # an unsigned child
])
async def test_ad_bit_reflects_validation(resolver, name, rdtype, authenticated):
    assert (await resolver.lookup(name, rdtype)).authenticated is authenticated


async def test_negative_answers_carry_the_ad_bit(resolver):
    with pytest.raises(DNSError) as signed:
        await resolver.lookup("nothing.test", "A")
    with pytest.raises(DNSError) as unsigned:
        await resolver.lookup("nothing.unsigned.test", "A")
    assert signed.value.authenticated and not unsigned.value.authenticated


async def test_authoritative_server_alone_never_authenticates(lab):
    assert not (await DNSClient(lab.authoritative).lookup("good.test", "MX")).authenticated


async def test_checking_disabled_returns_bogus_data(resolver):
    answer = await resolver.lookup("mx.bogus.test", "A", checking_disabled=True)
    assert not answer.authenticated and answer.records


async def test_cname_is_detected(resolver):
    answer = await resolver.lookup("alias.mxbad.test", "A")
    assert answer.is_alias and answer.canonical_name == "mx1.good.test"
    assert [r.address for r in answer.records] == [MX1_GOOD]
    assert not (await resolver.lookup("mx1.good.test", "A")).is_alias


async def test_addresses_and_ptr(resolver):
    assert await addresses_of(resolver, "mx1.good.test") == [MX1_GOOD, MX1_GOOD_V6]
    assert await resolver.resolve_addresses("mx2.good.test") == [MX2_GOOD]
    assert await ptr_names(resolver, MX1_GOOD_V6) == ["mx1.good.test"]
    assert await ptr_names(resolver, MX2_GOOD) == ["elsewhere.test"]
    with pytest.raises(DNSError) as caught:
        await addresses_of(resolver, "noaddr.mxbad.test")
    assert caught.value.kind is DNSErrorKind.NODATA


async def test_lookup_cache_asks_each_question_once(resolver):
    asked: list[tuple[str, str]] = []

    class CountingClient(DNSClient):
        def pending(self, key):
            asked.append(key[:2])
            return super().pending(key)

    cache = LookupCache(CountingClient(resolver.settings))
    answers = await asyncio.gather(*(cache.lookup("good.test", "MX") for _ in range(3)))
    with pytest.raises(DNSError):
        await cache.lookup("nothing.test", "TXT")
    with pytest.raises(DNSError):
        await cache.lookup("NOTHING.test.", "TXT")   # same question, other spelling
    assert answers[0] is answers[1] is answers[2]
    assert asked == [("good.test", "MX"), ("nothing.test", "TXT")]


async def test_answers_and_negative_answers_are_reused_failures_are_not():
    from tests.dnsfixtures.hostile import HOSTILE_ADDRESS, PORT, HostileDNS

    with HostileDNS() as server:
        client = DNSClient(DNSSettings(nameservers=(Nameserver(HOSTILE_ADDRESS, PORT),), timeout=1.0, retries=0))
        for _ in range(3):
            assert (await client.lookup("spf-deep.hostile.test", "TXT")).records
            with pytest.raises(DNSError) as nxdomain:
                await client.lookup("nothing.example.test", "MX")
            assert nxdomain.value.kind is DNSErrorKind.NXDOMAIN
            with pytest.raises(DNSError) as timeout:
                await client.lookup("x.silent.hostile.test", "A")
            assert timeout.value.kind is DNSErrorKind.TIMEOUT
        asked = list(server.queries)
    assert asked.count(("spf-deep.hostile.test", "TXT")) == 1       # kept for its TTL
    assert asked.count(("nothing.example.test", "MX")) == 1          # NXDOMAIN kept too
    assert asked.count(("x.silent.hostile.test", "A")) == 3          # a timeout is asked again


async def test_concurrent_askers_share_one_query():
    from tests.dnsfixtures.hostile import HOSTILE_ADDRESS, PORT, HostileDNS

    with HostileDNS() as server:
        client = DNSClient(DNSSettings(nameservers=(Nameserver(HOSTILE_ADDRESS, PORT),), timeout=1.0, retries=0))
        answers = await asyncio.gather(*(client.lookup("spf-loop.hostile.test", "TXT") for _ in range(20)))
        asked = list(server.queries)
    assert all(answer.records for answer in answers)
    assert asked.count(("spf-loop.hostile.test", "TXT")) == 1


async def test_an_unreachable_or_silent_nameserver_is_passed_over(lab):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        closed.bind(("127.0.0.1", 0))
        silent.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()   # queries to it come back as ICMP port unreachable
        (resolver,) = lab.resolver.nameservers
        settings = DNSSettings(nameservers=(Nameserver("127.0.0.1", closed_port),
                                            Nameserver("127.0.0.1", silent.getsockname()[1]), resolver),
                               timeout=4.0, retries=3)   # 1 s per attempt: 2 lost, the third answers
        records = await mx_records(DNSClient(settings), "good.test")
    assert [r.exchange for r in records] == ["mx1.good.test", "mx2.good.test"]
