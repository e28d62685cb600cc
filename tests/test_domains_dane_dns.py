"""DANE per MX host against the real DNS lab: TLSA records of tests/dnsfixtures/zones.py,
validated by Unbound, judged against zones.dane_chain() (the chain the tests say mx1.good.test
presents) or another chain."""

from __future__ import annotations

import pytest

from exporter.config import Domain
from exporter.dnsclient import DNSClient, LookupCache
from exporter.domains.check import check_domain
from exporter.domains.dane import DANEStatus, check_dane
from exporter.domains.dnssec import DNSSECStatus, NameDNSSEC
from exporter.domains.mx import MXHost, MXResult
from exporter.records.tlsa import Usage
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, MX1_GOOD_V6, dane_chain, make_chain

# Knot, Unbound, nginx or hostile DNS servers on privileged loopback ports: started as root.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab():
    return running_dns_lab()


def by_mx(result) -> dict:
    return {host.mx: host for host in result.dane}


async def test_tlsa_records_matching_and_not_matching_the_presented_chain(lab):
    result = await check_domain(Domain("good.test"), DNSClient(lab.resolver), chain_for=lambda host: {MX1_GOOD: [dane_chain()]})
    mx1, mx2 = by_mx(result)["mx1.good.test"], by_mx(result)["mx2.good.test"]
    assert (mx1.dnssec, mx1.tlsa_records, mx1.evaluation.status) == (DNSSECStatus.SECURE, 2, DANEStatus.MATCH)
    assert {record.usage for record in mx1.evaluation.matching} == {Usage.DANE_EE, Usage.DANE_TA}
    # mx2's only record is the CA's (DANE-TA), but the chain's leaf names mx1, not mx2.
    assert (mx2.tlsa_records, mx2.evaluation.status) == (1, DANEStatus.NO_MATCH)
    assert {f.code for f in result.findings if f.code.startswith("dane_")} == {"dane_no_match"}
    assert result.check_failures()["dane"] is None


async def test_another_certificate_matches_no_record(lab):
    other = make_chain("mx1.good.test")
    result = await check_domain(Domain("good.test"), DNSClient(lab.resolver), chain_for=lambda host: {MX1_GOOD: [other]})
    assert by_mx(result)["mx1.good.test"].evaluation.status is DANEStatus.NO_MATCH


@pytest.mark.parametrize("order", [(MX1_GOOD, MX1_GOOD_V6), (MX1_GOOD_V6, MX1_GOOD)])
async def test_every_address_is_judged_and_the_host_passes_only_when_all_do(lab, order):
    """One address of mx1 serves the chain its TLSA records name, the other a self-signed
    one: whatever order the chains come in, the host fails DANE and the finding names the
    failing address (a verdict that followed the first address would flap)."""
    chains = {MX1_GOOD: [dane_chain()], MX1_GOOD_V6: [make_chain("mx1.good.test")]}
    ordered = {address: chains[address] for address in order}
    result = await check_domain(Domain("good.test"), DNSClient(lab.resolver), chain_for=lambda host: ordered)
    mx1 = by_mx(result)["mx1.good.test"]
    assert mx1.evaluation.status is DANEStatus.NO_MATCH
    assert [(address, outcome.status) for address, outcome in mx1.by_address] == [
        (MX1_GOOD, DANEStatus.MATCH), (MX1_GOOD_V6, DANEStatus.NO_MATCH)]
    [finding] = [f for f in result.findings if f.code == "dane_no_match" and "mx1" in f.message]
    assert f"at {MX1_GOOD_V6}:" in finding.message and MX1_GOOD not in finding.message


async def test_without_a_chain_records_and_dnssec_are_reported_but_not_evaluated(lab):
    result = await check_domain(Domain("good.test"), DNSClient(lab.resolver), chain_for=lambda host: None)
    mx1 = by_mx(result)["mx1.good.test"]
    assert (mx1.tlsa_records, mx1.dnssec, mx1.evaluation) == (2, DNSSECStatus.SECURE, None)
    assert not any(f.code.startswith("dane_") for f in result.findings)


@pytest.mark.parametrize("domain, mx, dnssec, status, records", [
    ("signed.test", "mx.signed.test", DNSSECStatus.SECURE, DANEStatus.MATCH, 1),       # DANE-EE ignores the name
    ("unsigned.test", "mx.unsigned.test", DNSSECStatus.INSECURE, DANEStatus.INSECURE, 1),
    ("dane-pkix.test", "mx.dane-pkix.test", DNSSECStatus.SECURE, DANEStatus.UNUSABLE, 2),
    ("nullmx.test", None, None, None, None),
])
async def test_dane_status_by_zone(lab, domain, mx, dnssec, status, records):
    result = await check_domain(Domain(domain), DNSClient(lab.resolver), chain_for=lambda host: {MX1_GOOD: [dane_chain()]})
    if mx is None:
        assert result.dane == ()
        return
    host = by_mx(result)[mx]
    assert (host.dnssec, host.evaluation.status, host.tlsa_records) == (dnssec, status, records)


async def test_malformed_tlsa_records_are_counted_and_reported(lab):
    result = await check_domain(Domain("dane-pkix.test"), DNSClient(lab.resolver))
    host = by_mx(result)["mx.dane-pkix.test"]
    assert len(host.records) == 1 and len(host.malformed) == 1 and "matching type=7" in host.malformed[0]
    assert {"dane_tlsa_malformed", "dane_tlsa_unusable"} <= {f.code for f in result.findings}


async def test_secure_tlsa_under_an_insecure_mx_rrset_is_insecure(lab):
    # RFC 7672 §2.2.1: senders look for TLSA only when the MX RRset is secure.
    mx = MXResult(failure=None, hosts=(MXHost("mx1.good.test", 10, (), False, False),))
    dnssec = (NameDNSSEC("example", DNSSECStatus.INSECURE), NameDNSSEC("mx1.good.test", DNSSECStatus.SECURE))
    (host,) = await check_dane(LookupCache(DNSClient(lab.resolver)), mx, dnssec, lambda host: dane_chain())
    assert (host.dnssec, host.evaluation.status) == (DNSSECStatus.INSECURE, DANEStatus.INSECURE)


async def test_bogus_tlsa(lab):
    mx = MXResult(failure=None, hosts=(MXHost("mx.bogus.test", 10, (), False, False),))
    dnssec = (NameDNSSEC("bogus.test", DNSSECStatus.SECURE), NameDNSSEC("mx.bogus.test", DNSSECStatus.SECURE))
    (host,) = await check_dane(LookupCache(DNSClient(lab.resolver)), mx, dnssec, lambda host: dane_chain())
    # The records are read with checking disabled, reported, and judged bogus.
    assert (host.dnssec, host.evaluation.status, host.tlsa_records) == (DNSSECStatus.BOGUS, DANEStatus.BOGUS, 1)
