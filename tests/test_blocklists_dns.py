"""The blocklist checks against real DNS: test lists served by Knot (tests/dnsfixtures/zones.py)
through the validating Unbound, and slow or silent lists from the hostile DNS server. Each
expectation restates what those zones hold; no query leaves loopback."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time

import pytest

from exporter.config import (
    Blocklist,
    BlocklistKind,
    BlocklistSettings,
    DNSSettings,
    Domain,
    ListingMeaning,
    Nameserver,
    ReturnCodes,
    Target,
)
from exporter.dnsclient import DNSClient
from exporter.records.dnsbl import ListProblem
from exporter.reputation.blocklists import run_blocklist
from exporter.reputation.subjects import OriginKind
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.hostile import HOSTILE_ADDRESS, PORT, SLOW_SECONDS, HostileDNS
from tests.dnsfixtures.zones import (
    BL_REASON,
    MX1_GOOD,
    MX1_GOOD_V6,
    MX2_GOOD,
    SPF_LISTED,
    SPF_OTHER_CODE,
)

pytestmark = pytest.mark.integration

A = ipaddress.IPv4Address
M = ListingMeaning


def codes(*rows: tuple[str, str, ListingMeaning]) -> tuple[ReturnCodes, ...]:
    return tuple(ReturnCodes(A(first), A(last), meaning) for first, last, meaning in rows)


ZEN_CODES = codes(("127.0.0.2", "127.0.0.2", M.SPAM), ("127.0.0.3", "127.0.0.3", M.SNOWSHOE),
                  ("127.0.0.4", "127.0.0.7", M.EXPLOITED), ("127.0.0.10", "127.0.0.11", M.POLICY))
REFUSALS = ((A("127.255.255.252"), A("127.255.255.252")), (A("127.255.255.254"), A("127.255.255.255")))
DOMAINS = (Domain("good.test"), Domain("blspf.test", blocklist_spf=True))
TARGET = Target("127.77.1.7", 25, "smtp")


def ip_list(zone: str, **extra) -> Blocklist:
    return Blocklist(zone.split(".")[0], zone, BlocklistKind.IP, ZEN_CODES, REFUSALS, **extra)


@pytest.fixture(scope="module")
def dns() -> DNSClient:
    return DNSClient(running_dns_lab().resolver)


async def run(blocklist: Blocklist, dns: DNSClient, domains=DOMAINS, targets=(TARGET,), concurrency=8):
    return await run_blocklist(blocklist, BlocklistSettings((blocklist,), concurrency=concurrency), domains, targets,
                               dns, lambda name: None)


async def test_an_ip_list_reports_each_listing_with_its_meaning_reason_and_origins(dns):
    result = await run(ip_list("bl.test"), dns)
    assert result.usable and result.errors == ()
    assert {listing.subject: listing.meanings for listing in result.listings} == {
        MX1_GOOD: (M.SPAM,),
        MX2_GOOD: (M.POLICY,),              # distinguishable: normal for an MX that only receives
        MX1_GOOD_V6: (M.EXPLOITED,),        # asked in the nibble format
        SPF_LISTED: (M.SNOWSHOE,),
        SPF_OTHER_CODE: (M.OTHER,),         # 127.0.0.99 is in no row of the table
    }
    by_subject = {listing.subject: listing for listing in result.listings}
    assert by_subject[MX1_GOOD].reason == BL_REASON.format(address=MX1_GOOD)
    assert by_subject[MX1_GOOD].removal_url == f"https://bl.test/lookup?ip={MX1_GOOD}"
    assert by_subject[MX1_GOOD].codes == ("127.0.0.2",)
    origins = {subject.value: subject.origins for subject in result.subjects}
    # mx1.good.test is the MX of both domains, and blspf.test's SPF authorises it through `mx`.
    assert {(o.kind, o.domain) for o in origins[MX1_GOOD]} == {
        (OriginKind.MX_ADDRESS, "good.test"), (OriginKind.MX_ADDRESS, "blspf.test"),
        (OriginKind.SPF_ADDRESS, "blspf.test")}
    assert {(o.kind, o.via) for o in origins["127.77.1.7"]} == {(OriginKind.TARGET_ADDRESS, "127.77.1.7")}


async def test_spf_ranges_are_expanded_within_limits_and_skipped_beyond(dns):
    result = await run(ip_list("bl.test"), dns, domains=(Domain("blspf.test", blocklist_spf=True),), targets=())
    spf = {s.value for s in result.subjects if any(o.kind is OriginKind.SPF_ADDRESS for o in s.origins)}
    assert spf == {
        *(f"127.77.3.{n}" for n in range(8, 16)),        # ip4:127.77.3.8/29: each of its 8 addresses
        *(str(ipaddress.ip_address("fd00::") + n) for n in range(8)),   # ip6:fd00::/125
        "127.77.3.30", "127.77.3.31",                    # a:out.blspf.test/31
        MX1_GOOD, MX1_GOOD_V6,                           # mx
        "127.77.3.20",                                   # include:_spf.blspf.test, the domain's own
    }
    assert "127.77.5.5" not in spf                       # ~ip4: a softfail authorises nothing
    assert any("ip4:127.77.0.0/16" in note and "65536 addresses" in note for note in result.notes)
    assert any("include:_spf.good.test" in note and "another organization" in note for note in result.notes)
    # Without the SPF setting, only the MX addresses.
    plain = await run(ip_list("bl.test"), dns, domains=(Domain("blspf.test"),), targets=())
    assert {s.value for s in plain.subjects} == {MX1_GOOD, MX1_GOOD_V6}


async def test_a_domain_list_checks_the_domain_its_mx_names_and_rua_hosts(dns):
    dbl = Blocklist("dbl", "dbl.test", BlocklistKind.DOMAIN,
                    codes(("127.0.1.2", "127.0.1.2", M.SPAM), ("127.0.1.4", "127.0.1.4", M.PHISHING)), REFUSALS)
    result = await run(dbl, dns, domains=(Domain("good.test"),))
    assert result.usable
    assert {s.value for s in result.subjects} == {"good.test", "mx1.good.test", "mx2.good.test", "reports.test"}
    assert {listing.subject: listing.meanings for listing in result.listings} == {
        "good.test": (M.SPAM,), "reports.test": (M.PHISHING,)}
    reports = next(s for s in result.subjects if s.value == "reports.test")
    assert [(o.kind, o.via) for o in reports.origins] == [(OriginKind.RUA_HOST, "mailto:agg@reports.test")]


@pytest.mark.parametrize("zone, problem", [
    ("refusing.test", ListProblem.REFUSED_BY_LIST),     # 127.255.255.254 for everything
    ("dead.test", ListProblem.LIST_DEAD),               # 127.0.0.2 is NXDOMAIN
    ("all.test", ListProblem.LISTS_EVERYTHING),         # 127.0.0.1 is listed
    ("nxhijack.test", ListProblem.UNEXPECTED_ANSWER),   # an answer outside 127.0.0.0/8
])
async def test_a_list_failing_its_test_entries_is_unusable_and_lists_nothing(dns, zone, problem):
    result = await run(ip_list(zone), dns)
    assert result.problem is problem and not result.usable and not result.success
    assert result.listings == () and result.problem_detail
    assert len(result.subjects) > 10        # they were gathered, not asked


async def test_a_refusal_to_a_subject_makes_the_list_unusable(dns):
    # bl.test answers its test entries; a refusal table that makes 127.0.0.10 (MX2's code) a
    # "you may not query" answer must turn the whole run into an error, not a listing.
    blocklist = Blocklist("bl", "bl.test", BlocklistKind.IP, ZEN_CODES[:3], ((A("127.0.0.10"), A("127.0.0.11")),))
    result = await run(blocklist, dns)
    assert result.problem is ListProblem.REFUSED_BY_LIST and result.listings == ()
    assert MX2_GOOD in {error.subject for error in result.errors}


@pytest.fixture(scope="module")
def hostile():
    with HostileDNS() as server:
        yield server


def hostile_client(timeout: float) -> DNSClient:
    return DNSClient(DNSSettings(nameservers=(Nameserver(HOSTILE_ADDRESS, PORT),), timeout=timeout, retries=0))


async def test_a_silent_list_times_out_within_the_dns_timeout_and_never_shows_its_key(hostile):
    blocklist = ip_list("silent.hostile.test", query_key="sekrit")
    started = time.monotonic()
    result = await run(blocklist, hostile_client(0.5), domains=(), targets=(TARGET,))
    assert time.monotonic() - started < 2.0
    assert result.problem is ListProblem.TIMEOUT
    assert "sekrit" not in result.problem_detail and "<key>" in result.problem_detail
    assert ("2.0.0.127.sekrit.silent.hostile.test", "A") in hostile.queries   # the key is in the query


async def test_queries_to_a_slow_list_are_bounded_in_concurrency(hostile):
    targets = tuple(Target(f"127.0.10.{n}", 25, "smtp") for n in range(1, 17))
    hostile.arrivals.clear()
    started = time.monotonic()
    result = await run(ip_list("slow-list.hostile.test"), hostile_client(3.0), domains=(), targets=targets,
                       concurrency=4)
    elapsed = time.monotonic() - started
    assert result.usable and result.errors == () and result.listings == () and len(result.subjects) == 16
    subject_queries = sorted(at for at, name in hostile.arrivals if name.endswith(".10.0.127.slow-list.hostile.test"))
    assert len(subject_queries) == 16
    # Each answer takes SLOW_SECONDS: the queries in flight at an arrival are those that
    # arrived less than SLOW_SECONDS before it.
    in_flight = max(sum(1 for other in subject_queries if at - SLOW_SECONDS < other <= at) for at in subject_queries)
    assert in_flight == 4
    # The test entries (one round), then 16 subjects 4 at a time (4 rounds).
    assert 5 * SLOW_SECONDS <= elapsed < 5 * SLOW_SECONDS + 1.0


def test_check_command_shows_the_listings_of_the_configured_lists(tmp_path):
    resolver = running_dns_lab().resolver.nameservers[0]
    config = tmp_path / "config.yml"
    config.write_text(
        f"dns: {{nameservers: ['{resolver.address}:{resolver.port}'], timeout: 3s}}\n"
        "blocklists:\n  spf_addresses: true\n  lists:\n"
        "    - {name: bl, zone: bl.test, kind: ip, codes: {127.0.0.2: spam, 127.0.0.3: snowshoe, "
        "127.0.0.4-127.0.0.7: exploited, 127.0.0.10-127.0.0.11: policy}}\n"
        "    - {name: refusing, zone: refusing.test, kind: ip, refusal_codes: [127.255.255.254]}\n"
    )
    command = [sys.executable, "-m", "exporter", "check", "blspf.test", "--config.file", str(config)]
    text = subprocess.run(command, capture_output=True, text=True, timeout=120)
    report = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120).stdout)
    assert text.returncode == 2                    # the refusing list could not be used
    assert f"{MX1_GOOD} (address of MX mx1.good.test of blspf.test;" in text.stdout
    assert "is listed by bl as spam" in text.stdout and BL_REASON.format(address=MX1_GOOD) in text.stdout
    assert f"{SPF_LISTED} (authorised by ip4:127.77.3.8/29 (SPF of blspf.test) of blspf.test)" in text.stdout
    assert "blocklist refusing: COULD NOT RUN: refused_by_list" in text.stdout
    entry = report["domains"][0]
    listed = [f for f in entry["checks"]["blocklists"] if f["code"] == "blocklist_listed"]
    assert {f["message"].split(" ")[0] for f in listed} == {MX1_GOOD, MX1_GOOD_V6, SPF_LISTED, SPF_OTHER_CODE}
    assert "ip4:127.77.0.0/16" in " ".join(f["message"] for f in entry["checks"]["blocklists"])
    assert set(entry["failed_checks"]) == {"blocklist refusing"}
