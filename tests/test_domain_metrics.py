"""Domain metrics from real check results: values, doc sync, promtool."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics.specs import Families
from exporter.config import Domain
from exporter.dnsclient import DNSClient
from exporter.metrics.domain import DOMAIN_METRICS, add_domain_samples
from exporter.domains.check import check_domain
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, MX2_GOOD, dane_chain
from tests.httpsfixtures import running_https_lab

DOC = Path(__file__).parent.parent / "docs" / "metrics.md"
DOMAINS = (
    Domain("good.test", ("rsa2048", "ed", "revoked"), MappingProxyType({"team": "mail"})),
    Domain("nullmx.test"), Domain("bogus.test"), Domain("spf-plusall.test"), Domain("spf-many.test"),
    Domain("dmarc-ext.test"), Domain("unsigned.test"), Domain("sub.good.test"), Domain("sts-uncovered.test"),
    Domain("sts-404.test"), Domain("signed.test"),
)

# Knot, Unbound, nginx or hostile DNS servers on privileged loopback ports: started as root.
pytestmark = pytest.mark.integration
PROBED_MX = {"mx1.good.test", "mx2.good.test"}   # the hosts the "TLS probe" has seen


class _OneScrape:
    def __init__(self, results):
        self.results = results

    def collect(self):
        families = Families(DOMAIN_METRICS)
        for domain, result in self.results:
            add_domain_samples(families, domain, result)
        yield from families


async def _check_all() -> list:
    dns = DNSClient(running_dns_lab().resolver)
    ca_file = running_https_lab().ca_file
    # As the scheduler stores them: with the interval they are checked at.
    return [(domain, replace(await check_domain(domain, dns, chain_for=_chain_for, https_ca_file=ca_file),
                             interval_seconds=600.0))
            for domain in DOMAINS]


def _chain_for(mx: str):
    return {"127.77.1.1": [dane_chain()]} if mx in PROBED_MX else None


@pytest.fixture(scope="module")
def exposition() -> str:
    results = asyncio.run(_check_all())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_OneScrape(results))
    return generate_latest(registry).decode()


@pytest.fixture(scope="module")
def samples(exposition) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_values_follow_the_zone_data(samples):
    good = {"domain": "good.test", "team": "mail"}
    assert value(samples, "mailsec_dns_mx_records", **good) == 2
    assert value(samples, "mailsec_spf_dns_lookups", **good) == 3
    assert value(samples, "mailsec_spf_all_qualifier_info", qualifier="fail", **good) == 1
    assert value(samples, "mailsec_dmarc_policy", **good) == 2
    assert value(samples, "mailsec_dmarc_subdomain_policy", **good) == 1
    assert value(samples, "mailsec_dmarc_pct", **good) == 50
    assert value(samples, "mailsec_dmarc_rua_authorized", **good) == 1
    assert value(samples, "mailsec_dkim_key_size", selector="rsa2048", key_type="rsa", **good) == 2048
    assert value(samples, "mailsec_dkim_key_size", selector="ed", key_type="ed25519", **good) == 256
    assert value(samples, "mailsec_dkim_key_present", selector="revoked", source="configured", **good) == 0
    assert value(samples, "mailsec_fcrdns_valid", mx="mx1.good.test", address=MX1_GOOD, **good) == 1
    assert value(samples, "mailsec_fcrdns_valid", mx="mx2.good.test", address=MX2_GOOD, **good) == 0
    assert value(samples, "mailsec_dnssec_status", zone="mx1.good.test", **good) == 1
    assert value(samples, "mailsec_dns_null_mx", domain="nullmx.test") == 1
    assert value(samples, "mailsec_spf_all_qualifier_info", qualifier="pass", domain="spf-plusall.test") == 1
    assert value(samples, "mailsec_spf_valid", domain="spf-many.test") == 0
    assert value(samples, "mailsec_dmarc_rua_authorized", domain="dmarc-ext.test") == 0
    assert value(samples, "mailsec_dnssec_status", zone="unsigned.test", domain="unsigned.test") == 0
    assert value(samples, "mailsec_dmarc_valid", domain="sub.good.test") == 1
    assert value(samples, "mailsec_mta_sts_mode", **good) == 2
    assert value(samples, "mailsec_mta_sts_max_age_seconds", **good) == 604800
    assert value(samples, "mailsec_mta_sts_mx_covered", **good) == 1
    assert value(samples, "mailsec_mta_sts_mx_covered", domain="sts-uncovered.test") == 0
    assert value(samples, "mailsec_dane_tlsa_records", mx="mx1.good.test", **good) == 2
    assert value(samples, "mailsec_dane_dnssec_status", mx="mx1.good.test", **good) == 1
    assert value(samples, "mailsec_dane_valid", mx="mx1.good.test", address="127.77.1.1", **good) == 1
    assert value(samples, "mailsec_dane_valid", mx="mx2.good.test", address="127.77.1.1", **good) == 0
    assert value(samples, "mailsec_dane_domain_valid", **good) == 0         # mx2 does not match
    assert value(samples, "mailsec_dane_dnssec_status", mx="mx.unsigned.test", domain="unsigned.test") == 0
    # Insecure records: no chain needed for the verdict, so no address either.
    assert value(samples, "mailsec_dane_valid", mx="mx.unsigned.test", address="", domain="unsigned.test") == 0


def test_unprobed_mx_has_dane_facts_but_no_verdict(samples):
    signed = {"domain": "signed.test", "mx": "mx.signed.test"}   # secure TLSA, but no chain seen yet
    assert value(samples, "mailsec_dane_tlsa_records", **signed) == 1
    assert value(samples, "mailsec_dane_dnssec_status", **signed) == 1
    assert value(samples, "mailsec_dane_valid", **signed) is None


def test_policy_fetch_failure_is_a_labelled_check_failure(samples):
    failing = {"domain": "sts-404.test"}
    assert value(samples, "mailsec_domain_check_success", check="mta_sts_policy", **failing) == 0
    assert value(samples, "mailsec_domain_check_failure_info", check="mta_sts_policy", reason="http_status", **failing) == 1
    assert value(samples, "mailsec_domain_check_success", check="mta_sts", **failing) == 1
    assert value(samples, "mailsec_mta_sts_mode", **failing) is None


def test_a_check_that_cannot_run_reports_a_failure_and_no_facts(samples):
    bogus = {"domain": "bogus.test"}
    assert value(samples, "mailsec_dnssec_status", zone="bogus.test", **bogus) == -1
    assert value(samples, "mailsec_domain_check_success", check="spf", **bogus) == 0
    assert value(samples, "mailsec_domain_check_failure_info", check="spf", reason="dns_servfail", **bogus) == 1
    assert value(samples, "mailsec_domain_check_success", check="dnssec", **bogus) == 1
    facts = {name for (name, labels) in samples if ("domain", "bogus.test") in labels}
    assert not facts & {"mailsec_spf_valid", "mailsec_spf_records", "mailsec_dns_mx_records", "mailsec_dmarc_valid"}


def test_every_exposed_family_is_documented_and_vice_versa(exposition):
    exposed = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    documented = set(re.findall(r"^### (mailsec_[a-z0-9_]+)\s*$", DOC.read_text(), re.MULTILINE))
    declared = {spec.name for spec in DOMAIN_METRICS}
    assert exposed == declared
    assert declared <= documented


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_check_metrics_is_clean(exposition):
    run = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stdout.strip() and not run.stderr.strip(), run.stdout + run.stderr
