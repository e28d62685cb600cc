"""The domain checks against real DNS: Knot serving the zones of tests/dnsfixtures/zones.py
and Unbound validating them. Each expectation restates what those zones hold."""

from __future__ import annotations

import pytest

from exporter.config import DNSSettings, Domain, Nameserver
from exporter.dnsclient import DNSClient, LookupCache
from exporter.domains.bimi import BIMIStatus, check_bimi
from exporter.domains.check import check_domain
from exporter.domains.common import CheckFailureReason
from exporter.domains.dkim import SelectorSource, check_dkim
from exporter.domains.dmarc import check_dmarc, organizational_domain
from exporter.domains.dnssec import DNSSECStatus, dnssec_status
from exporter.domains.mx import check_mx
from exporter.domains.spf import SPFOutcome, check_spf
from exporter.records.dmarc import Policy
from exporter.records.spf import Qualifier
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, MX1_GOOD_V6, MX2_GOOD

# Knot, Unbound, nginx or hostile DNS servers on privileged loopback ports: started as root.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def lab():
    return running_dns_lab()


@pytest.fixture
def dns(lab) -> LookupCache:
    return LookupCache(DNSClient(lab.resolver))


def codes(findings) -> set[str]:
    return {finding.code for finding in findings}


# --- MX ------------------------------------------------------------------------------

async def test_mx_hosts_with_addresses(dns):
    result = await check_mx("good.test", dns)
    assert result.failure is None and not result.null_mx
    assert [(h.name, h.preference, h.addresses) for h in result.hosts] == [
        ("mx1.good.test", 10, (MX1_GOOD, MX1_GOOD_V6)), ("mx2.good.test", 20, (MX2_GOOD,))]
    # IPv6 present on mx1: no mx_no_ipv6. The lab's addresses are loopback ones, which no
    # sender on the Internet can reach: that finding is right, and the only one.
    assert codes(result.findings) == {"mx_address_not_public"}
    assert {f.message for f in result.findings} >= {
        f"MX mx1.good.test has the loopback address {MX1_GOOD_V6}: senders on the Internet cannot reach it"}


async def test_null_mx(dns):
    result = await check_mx("nullmx.test", dns)
    assert result.null_mx and result.hosts == ()
    assert [(f.severity.value, f.code) for f in result.findings] == [("info", "null_mx")]


async def test_mx_without_address_alias_and_ip_literal(dns):
    result = await check_mx("mxbad.test", dns)
    by_name = {host.name: host for host in result.hosts}
    assert by_name["noaddr.mxbad.test"].addresses == ()
    assert by_name["alias.mxbad.test"].is_alias
    assert by_name["127.77.1.9"].is_ip_literal
    assert codes(result.findings) == {"mx_no_address", "mx_cname", "mx_ip_literal", "mx_address_not_public"}


async def test_no_mx(dns):
    result = await check_mx("sub.good.test", dns)
    assert result.hosts == () and codes(result.findings) == {"mx_missing"}


# --- SPF -----------------------------------------------------------------------------

async def test_spf_valid_through_include(dns):
    # "v=spf1 mx include:_spf.good.test -all" -> _spf: "ip4:... a:mx1.good.test ~all"
    result = await check_spf("good.test", dns)
    assert (result.outcome, result.records, result.dns_lookups, result.void_lookups) == (SPFOutcome.VALID, 1, 3, 0)
    assert result.all_qualifier is Qualifier.FAIL


async def test_spf_redirect_takes_the_final_all_of_the_target(dns):
    result = await check_spf("spf-redirect.test", dns)
    assert (result.outcome, result.dns_lookups, result.all_qualifier) == (SPFOutcome.VALID, 2, Qualifier.SOFTFAIL)


async def test_domain_macro_is_expanded_and_followed_sender_macros_are_not(dns):
    result = await check_spf("spf-macro.test", dns)
    assert (result.outcome, result.dns_lookups, result.void_lookups) == (SPFOutcome.VALID, 2, 0)
    assert [f.code for f in result.findings] == ["spf_macro_not_followed"]
    assert "%{i}" in result.findings[0].message


async def test_a_void_lookup_within_the_limit_is_a_warning_not_an_error(dns):
    result = await check_spf("spf-onevoid.test", dns)
    assert (result.outcome, result.void_lookups) == (SPFOutcome.VALID, 1)
    assert [(f.code, f.severity.value) for f in result.findings] == [("spf_mechanism_no_records", "warning")]


@pytest.mark.parametrize("domain, error_part, lookups, voids", [
    ("spf-many.test", "more than 10 DNS-querying terms", 11, 0),
    ("spf-two.test", "2 SPF records", 0, 0),
    ("spf-loop.test", "loop: spf-loop.test -> loop-b.test -> spf-loop.test", 2, 0),
    ("spf-noinclude.test", "include target nothing.test has no SPF record", 1, 0),
    ("spf-redirect-missing.test", "redirect target nothing.test has no SPF record", 1, 0),
    ("spf-void.test", "more than 2 lookups found nothing", 3, 3),
    ("spf-syntax.test", "syntax error", 0, 0),
])
async def test_spf_permerrors(dns, domain, error_part, lookups, voids):
    result = await check_spf(domain, dns)
    assert result.failure is None and result.outcome is SPFOutcome.PERMERROR
    assert error_part in result.error
    assert (result.dns_lookups, result.void_lookups) == (lookups, voids)
    assert "spf_permerror" in codes(result.findings)


async def test_spf_plus_all_and_ptr_flagged(dns):
    result = await check_spf("spf-plusall.test", dns)
    assert result.outcome is SPFOutcome.VALID and result.all_qualifier is Qualifier.PASS
    assert {"spf_pass_all", "spf_ptr_used"} <= codes(result.findings)


async def test_spf_missing(dns):
    result = await check_spf("mxbad.test", dns)
    assert (result.outcome, result.records, codes(result.findings)) == (SPFOutcome.NONE, 0, {"spf_missing"})


async def test_spf_temperror_is_a_check_failure(dns):
    result = await check_spf("spf.bogus.test", dns)
    assert result.failure is not None and result.failure.reason is CheckFailureReason.DNS_SERVFAIL


# --- DMARC ---------------------------------------------------------------------------

async def test_dmarc_record_and_authorized_external_reports(dns):
    result = await check_dmarc("good.test", dns)
    record = result.record
    assert (record.policy, record.subdomain_policy, record.percent) == (Policy.REJECT, Policy.QUARANTINE, 50)
    assert {(d.uri, d.external, d.authorized) for d in result.destinations} == {
        ("mailto:agg@good.test", False, True),
        ("mailto:agg@reports.test", True, True),
        ("mailto:ruf@reports.test", True, True),
    }
    assert result.rua_configured and result.rua_authorized and not result.inherited


async def test_dmarc_external_report_without_authorization(dns):
    result = await check_dmarc("dmarc-ext.test", dns)
    assert result.rua_configured and not result.rua_authorized
    assert "dmarc_report_unauthorized" in codes(result.findings)


async def test_dmarc_inherited_from_organizational_domain(dns):
    result = await check_dmarc("sub.good.test", dns)
    assert result.inherited and result.lookup.name == "_dmarc.good.test"
    assert result.record.policy is Policy.REJECT


async def test_dmarc_subdomain_policy_none_tag_order_and_report_domains_without_mx(dns):
    checked = await check_dmarc("dmarc-sp.test", dns)
    assert codes(checked.findings) == {"dmarc_subdomain_policy_none", "dmarc_p_not_second"}
    # reports.test, an authorized external destination of good.test, has no MX record.
    good = await check_dmarc("good.test", dns)
    no_mx = [f for f in good.findings if f.code == "dmarc_report_domain_no_mx"]
    assert sorted(f.message.split(": ")[0] for f in no_mx) == ["mailto:agg@reports.test", "mailto:ruf@reports.test"]


@pytest.mark.parametrize("domain, count", [("dmarc-bad.test", 1), ("dmarc-two.test", 2)])
async def test_dmarc_invalid(dns, domain, count):
    result = await check_dmarc(domain, dns)
    assert result.record is None and result.lookup.count == count
    assert codes(result.findings) == {"dmarc_invalid"}


def test_organizational_domain_uses_the_public_suffix_list():
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("mail.example.com") == "example.com"
    assert organizational_domain("co.uk") == "co.uk"


# --- DKIM, BIMI ----------------------------------------------------------------------

async def test_dkim_selectors(dns):
    result = await check_dkim("good.test", ("rsa2048", "rsa1024", "ed", "revoked", "sha1", "absent"), dns)
    facts = {
        s.selector: (s.present, s.key and s.key.key_type, s.key and s.key.key_bits, s.key and s.key.testing,
                     s.key and s.key.sha1_only)
        for s in result.selectors
    }
    assert facts == {
        "rsa2048": (True, "rsa", 2048, False, False),
        "rsa1024": (True, "rsa", 1024, True, False),
        "ed": (True, "ed25519", 256, False, False),
        "revoked": (False, "rsa", None, False, False),
        "sha1": (True, "rsa", 1024, False, True),
        "absent": (False, None, None, None, None),
    }
    assert {"dkim_rsa_key_short", "dkim_testing", "dkim_key_revoked", "dkim_sha1_only", "dkim_key_missing"} == codes(
        result.findings)


async def test_a_reported_selector_without_key_is_a_retired_one_not_an_error(dns):
    """Selectors seen in DMARC reports signed mail once; keys are rotated, so a missing one is
    information. A broken key record at a reported selector is still an error."""
    result = await check_dkim("good.test", ("absent", "gone", "rsa2048"), dns, reported=("gone", "rsa2048"))
    sources = {s.selector: s.source for s in result.selectors}
    assert sources == {"absent": SelectorSource.CONFIGURED, "gone": SelectorSource.REPORTED,
                       "rsa2048": SelectorSource.REPORTED}
    assert {(f.code, f.severity.value) for f in result.findings} == {
        ("dkim_key_missing", "error"), ("dkim_reported_key_missing", "info")}


@pytest.mark.parametrize("domain, status", [
    ("good.test", BIMIStatus.VALID), ("nullmx.test", BIMIStatus.DECLINED), ("mxbad.test", BIMIStatus.ABSENT),
])
async def test_bimi(dns, domain, status):
    assert (await check_bimi(domain, dns)).status is status


# --- DNSSEC and the whole run --------------------------------------------------------

@pytest.mark.parametrize("name, rdtype, status", [
    ("signed.test", "MX", DNSSECStatus.SECURE),
    ("mx.signed.test", "A", DNSSECStatus.SECURE),
    ("unsigned.test", "MX", DNSSECStatus.INSECURE),
    ("bogus.test", "MX", DNSSECStatus.BOGUS),
    ("nothing.test", "MX", DNSSECStatus.SECURE),       # a validated NXDOMAIN
])
async def test_dnssec_status(dns, name, rdtype, status):
    assert (await dnssec_status(dns, name, rdtype)).status is status


async def test_dnssec_without_answer_is_a_failure_not_a_status():
    unreachable = DNSClient(DNSSettings(nameservers=(Nameserver("127.77.0.99", 53),), timeout=0.3, retries=0))
    result = await dnssec_status(unreachable, "good.test", "MX")
    assert result.status is None and result.failure is not None


async def test_check_domain_good(lab):
    result = await check_domain(Domain("good.test", ("rsa2048",)), DNSClient(lab.resolver))
    assert [(n.name, n.status) for n in result.dnssec] == [
        ("good.test", DNSSECStatus.SECURE), ("mx1.good.test", DNSSECStatus.SECURE),
        ("mx2.good.test", DNSSECStatus.SECURE)]
    assert {(r.mx, r.address, r.forward_confirmed) for r in result.reverse_dns} == {
        ("mx1.good.test", MX1_GOOD, True), ("mx1.good.test", MX1_GOOD_V6, True), ("mx2.good.test", MX2_GOOD, False)}
    assert result.tlsrpt.lookup.valid and result.mta_sts.lookup.valid
    assert "fcrdns_failed" in codes(result.findings)


async def test_check_domain_bogus_reports_failures_not_facts(lab):
    result = await check_domain(Domain("bogus.test"), DNSClient(lab.resolver))
    assert [(n.name, n.status) for n in result.dnssec] == [("bogus.test", DNSSECStatus.BOGUS)]
    assert result.mx.failure.reason is CheckFailureReason.DNS_SERVFAIL
    assert result.spf.failure.reason is CheckFailureReason.DNS_SERVFAIL
