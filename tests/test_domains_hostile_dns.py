"""Every domain check against a hostile DNS server (tests/dnsfixtures/hostile.py): each run
ends within its time limit, with labelled failures or findings, in bounded memory, and no
exception escapes check_domain."""

from __future__ import annotations

import re
import time
import tracemalloc

import pytest

from exporter.config import DNSSettings, Domain, Nameserver
from exporter.dnsclient import DNSClient
from exporter.domains.check import check_domain
from exporter.domains.common import CheckFailureReason
from exporter.domains.spf import SPFOutcome
from tests.dnsfixtures.hostile import HOSTILE_ADDRESS, PORT, HostileDNS, huge_spf_record

# Knot, Unbound, nginx or hostile DNS servers on privileged loopback ports: started as root.
pytestmark = pytest.mark.integration

DNS_TIMEOUT = 1.0
# The checks run in three rounds (records, MX hosts, DANE): each round's lookups are
# concurrent, but an SPF evaluation is a chain of lookups. A run may take a few timeouts.
RUN_LIMIT_SECONDS = 4 * DNS_TIMEOUT
MEMORY_LIMIT_BYTES = 20 * 1024 * 1024

DNS_CHECKS = ("mx", "spf", "dmarc", "mta_sts", "tlsrpt", "bimi", "dnssec")


@pytest.fixture(scope="module")
def server():
    with HostileDNS() as running:
        yield running


async def run(domain: str):
    client = DNSClient(DNSSettings(nameservers=(Nameserver(HOSTILE_ADDRESS, PORT),), timeout=DNS_TIMEOUT, retries=1))
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = await check_domain(Domain(domain, ("s1",)), client)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < RUN_LIMIT_SECONDS
    assert peak < MEMORY_LIMIT_BYTES
    return result


@pytest.mark.parametrize("behaviour, reason", [
    ("truncated", CheckFailureReason.DNS_TIMEOUT),   # TC over UDP, then a TCP side that never answers
    ("silent", CheckFailureReason.DNS_TIMEOUT),
    ("garbage", CheckFailureReason.DNS_TIMEOUT),     # unparsable answers are dropped, like spoofs
    ("cname-loop", CheckFailureReason.DNS_ERROR),
])
async def test_unanswerable_names_fail_every_check_with_a_reason(server, behaviour, reason):
    result = await run(f"{behaviour}.hostile.test")
    failures = result.check_failures()
    assert {check: failures[check].reason for check in DNS_CHECKS} == {check: reason for check in DNS_CHECKS}
    assert not result.success and result.dane == () and result.mx.hosts == ()
    # Nothing usable came back: the run counts as one the exporter could not do
    # (mailsec_exporter_probes_total); a loop's DNS_ERROR cannot be told from a broken resolver.
    assert result.checked is False


async def test_huge_txt_over_tcp_is_read_whole(server):
    result = await run("huge.hostile.test")
    assert result.spf.failure is None and result.spf.outcome is SPFOutcome.VALID and result.spf.records == 1
    assert ("huge.hostile.test", "TXT") in server.queries
    assert len(huge_spf_record()) > 60000      # the record really did not fit in UDP


async def test_spf_include_loop_is_a_permerror(server):
    result = await run("spf-loop.hostile.test")
    assert result.spf.outcome is SPFOutcome.PERMERROR
    assert "loop: spf-loop.hostile.test -> back.spf-loop.hostile.test -> spf-loop.hostile.test" in result.spf.error


async def test_a_100_deep_include_chain_stops_at_the_lookup_limit(server):
    server.queries.clear()
    result = await run("spf-deep.hostile.test")
    assert result.spf.outcome is SPFOutcome.PERMERROR and result.spf.dns_lookups == 11
    assert "more than 10 DNS-querying terms" in result.spf.error
    chain_queries = {name for name, rdtype in server.queries if rdtype == "TXT" and re.match(r"d[0-9]+\.", name)}
    assert chain_queries == {f"d{n}.spf-deep.hostile.test" for n in range(1, 11)}   # d11 is never looked up
