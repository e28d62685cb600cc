"""/probe?domain=NAME against the real Knot + Unbound fixtures: the same domain families as
/metrics, on a fresh registry; only allowed domains; a readable debug report."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter_process import running_app, sample_value
from tests.dnsfixtures import running_dns_lab
from tests.httpsfixtures import running_https_lab

pytestmark = pytest.mark.integration


def parse(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


@pytest.fixture
def config(tmp_path):
    resolver = running_dns_lab().resolver.nameservers[0]
    path = tmp_path / "config.yml"
    path.write_text(
        f"dns: {{nameservers: ['{resolver.address}:{resolver.port}'], timeout: 3s}}\n"
        # The lab's MTA-STS policy hosts are on loopback: on-demand checks reach them only when
        # allowed (see the last test).
        "probe: {allowed_domains: ['*.test'], allowed_targets: ['127.77.0.0/16']}\n"
        "domains: [{name: good.test, dkim_selectors: [rsa2048], labels: {team: mail}}]\n"
        f"domain_checks: {{probe_mx: false, mta_sts_ca_file: '{running_https_lab().ca_file}'}}\n"
    )
    return path


async def test_domain_probe_answers_domain_families(config):
    async with running_app(config) as (_, client):
        listed = parse(await (await client.get("/probe", params={"domain": "good.test"})).text())
        other = parse(await (await client.get(
            "/probe", params=[("domain", "spf-plusall.test"), ("dkim_selector", "rsa2048")])).text())
    good = {"domain": "good.test", "team": "mail"}        # a listed domain keeps its labels and selectors
    assert sample_value(listed, "probe_success") == 1
    assert sample_value(listed, "mailsec_dmarc_policy", **good) == 2
    assert sample_value(listed, "mailsec_dkim_key_present", selector="rsa2048", **good) == 1
    assert sample_value(other, "mailsec_spf_all_qualifier_info", domain="spf-plusall.test", qualifier="pass") == 1
    assert sample_value(other, "mailsec_dkim_key_present", domain="spf-plusall.test", selector="rsa2048") == 0


async def test_domain_probe_refusals_and_debug(config):
    async with running_app(config) as (exporter, client):
        refused = await client.get("/probe", params={"domain": "example.org"})
        refused_text = await refused.text()
        mixed = await client.get("/probe", params={"domain": "good.test", "module": "smtp"})
        mixed_text = await mixed.text()
        bogus = parse(await (await client.get("/probe", params={"domain": "bogus.test"})).text())
        debug = await client.get("/probe", params={"domain": "spf-plusall.test", "debug": "true"})
        text = await debug.text()
        counts = {result: exporter.registry.get_sample_value("mailsec_exporter_probe_requests_total", {"result": result})
                  for result in ("refused", "invalid", "failure")}
    assert refused.status == 400 and "probe.allowed_domains" in refused_text
    assert mixed.status == 400 and "unknown parameter module" in mixed_text
    assert sample_value(bogus, "probe_success") == 0       # SERVFAIL: checks could not run
    assert debug.status == 200 and "== spf-plusall.test" in text and "fix:" in text
    assert counts == {"refused": 1, "invalid": 1, "failure": 1}


async def test_domain_probes_take_a_concurrency_slot_and_a_bounded_selector_list(config):
    async with running_app(config) as (exporter, client):
        too_many = await client.get("/probe", params=[("domain", "good.test")] +
                                    [("dkim_selector", f"s{n}") for n in range(11)])
        too_many_text = await too_many.text()
        overall = exporter.scheduler.limits.domains
        held = 0
        while not overall.locked():           # every slot busy, as under a flood of probes
            await overall.acquire()
            held += 1
        try:
            starved = parse(await (await client.get(
                "/probe", params={"domain": "good.test"},
                headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})).text())
        finally:
            for _ in range(held):
                overall.release()
        served = parse(await (await client.get("/probe", params={"domain": "good.test"})).text())
    assert too_many.status == 400 and "at most 10 dkim_selector" in too_many_text
    assert sample_value(starved, "probe_success") == 0 and sample_value(starved, "mailsec_dmarc_policy") is None
    assert sample_value(served, "probe_success") == 1


@pytest.mark.parametrize("allowed_targets, reason", [
    ([], "address_not_allowed"),           # mta-sts.good.test is on loopback: refused by default
    (["127.77.0.0/16"], None),             # a network pattern names it: fetched
])
async def test_on_demand_checks_connect_only_to_public_or_allowed_addresses(tmp_path, allowed_targets, reason):
    resolver = running_dns_lab().resolver.nameservers[0]
    path = tmp_path / "config.yml"
    path.write_text(
        f"dns: {{nameservers: ['{resolver.address}:{resolver.port}'], timeout: 3s}}\n"
        f"probe: {{allowed_domains: ['*.test'], allowed_targets: {allowed_targets}}}\n"
        f"domain_checks: {{probe_mx: false, mta_sts_ca_file: '{running_https_lab().ca_file}'}}\n"
    )
    async with running_app(path) as (_, client):
        samples = parse(await (await client.get("/probe", params={"domain": "good.test"})).text())
    failure = [s.labels["reason"] for s in samples
               if s.name == "mailsec_domain_check_failure_info" and s.labels["check"] == "mta_sts_policy"]
    assert failure == ([reason] if reason else [])
    assert (sample_value(samples, "mailsec_mta_sts_mode", domain="good.test") is None) == (reason is not None)
