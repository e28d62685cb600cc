"""What one domain can make a check run cost (MX hosts, DNS questions), and MX addresses no
sender can reach: pure parts and scripted resolvers (no network)."""

from __future__ import annotations

import asyncio

import pytest

from exporter.dnsclient import DNSAnswer, DNSError, DNSErrorKind, LookupCache
from exporter.dnswire import AddressRecord, MXRecord
from exporter.domains.mx import MAX_MX_HOSTS, check_mx, non_public_kind


@pytest.mark.parametrize("address, kind", [
    ("8.8.8.8", None),
    ("2a00:1450:4001::1", None),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("::ffff:10.0.0.1", "private"),            # IPv4-mapped: judged as the IPv4 address
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fd12:3456::1", "unique-local"),
    ("192.0.2.5", "documentation"),
    ("2001:db8::25", "documentation"),
    ("100.64.1.1", "shared (carrier-grade NAT)"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
])
def test_non_public_kind(address, kind):
    assert non_public_kind(address) == kind


class ManyMX:
    """A domain with `count` MX records, each host with one public address."""

    def __init__(self, count: int):
        self.count = count
        self.asked: list[tuple[str, str]] = []

    async def lookup(self, name: str, rdtype: str, **_) -> DNSAnswer:
        self.asked.append((name, rdtype))
        if rdtype == "MX":
            records = tuple(MXRecord(n, f"mx{n:04}.big.test") for n in range(self.count))
            return DNSAnswer(name, rdtype, records, name, False)
        if rdtype == "A":
            return DNSAnswer(name, rdtype, (AddressRecord("198.51.100.1"),), name, False)
        raise DNSError(DNSErrorKind.NODATA, name, rdtype, "no such record")


async def test_a_domain_with_a_thousand_mx_records_costs_ten_hosts():
    resolver = ManyMX(1000)
    result = await check_mx("big.test", resolver)
    assert [host.name for host in result.hosts] == [f"mx{n:04}.big.test" for n in range(MAX_MX_HOSTS)]
    assert len(resolver.asked) == 1 + 2 * MAX_MX_HOSTS          # the MX set, then A and AAAA of ten
    [too_many] = [f for f in result.findings if f.code == "mx_too_many"]
    assert "1000 MX records" in too_many.message and "mx0010.big.test" in too_many.message


async def test_ten_mx_records_are_all_checked():
    result = await check_mx("big.test", ManyMX(MAX_MX_HOSTS))
    assert len(result.hosts) == MAX_MX_HOSTS and "mx_too_many" not in {f.code for f in result.findings}


class CountingClient:
    """A DNS client that answers every question with NODATA and counts them."""

    def __init__(self):
        self.asked = 0

    def remembered(self, key):
        return None

    def pending(self, key):
        self.asked += 1
        outcome = asyncio.get_running_loop().create_future()
        outcome.set_result(DNSError(DNSErrorKind.NODATA, key[0], key[1], "no such record"))
        return outcome


async def test_a_check_run_asks_at_most_its_budget_of_questions():
    client = CountingClient()
    cache = LookupCache(client, budget=3)
    for name in ("a.test", "b.test", "c.test", "a.test", "b.test"):     # repeats cost nothing
        with pytest.raises(DNSError) as answer:
            await cache.lookup(name, "TXT")
        assert answer.value.kind is DNSErrorKind.NODATA
    with pytest.raises(DNSError) as refused:
        await cache.lookup("d.test", "TXT")
    assert refused.value.kind is DNSErrorKind.ERROR and "budget" in str(refused.value)
    assert client.asked == 3
