"""The exporter process checks configured domains through a real validating resolver
(Unbound in front of Knot) and /metrics shows what the zones say."""

from __future__ import annotations

import asyncio
import json

import pytest

from exporter.config import Domain
from exporter.dnsclient import DNSClient
from exporter.domains.check import check_domain
from exporter_process import ExporterProcess, sample_value
from tests.dnsfixtures.zones import MX1_GOOD, MX1_GOOD_V6, MX2_GOOD
from tests.dnsfixtures import running_dns_lab
from tests.httpsfixtures import running_https_lab

pytestmark = pytest.mark.integration


def test_configured_domains_are_checked_on_schedule(tmp_path):
    resolver = running_dns_lab().resolver.nameservers[0]
    https = running_https_lab()
    config = tmp_path / "config.yml"
    config.write_text(
        "global: {interval: 5m, timeout: 10s, jitter: 0s}\n"
        f"dns: {{nameservers: ['{resolver.address}:{resolver.port}'], timeout: 3s}}\n"
        f"domain_checks: {{mta_sts_ca_file: '{https.ca_file}'}}\n"
        "domains:\n"
        "  - {name: good.test, dkim_selectors: [rsa2048, missing], labels: {team: mail}}\n"
        "  - {name: bogus.test}\n"
    )
    exporter = ExporterProcess(config)
    try:
        samples = exporter.wait_for(
            lambda s: {x.labels.get("domain") for x in s if x.name == "mailsec_domain_check_last_run_timestamp_seconds"}
            == {"good.test", "bogus.test"}
            and sample_value(s, "mailsec_probe_success", target="mx2.good.test:25") is not None
            and sample_value(s, "mailsec_exporter_backoff_seconds", target="mx2.good.test:25") is not None
            and s
        )
        status = json.loads(exporter.get("/api/v1/status")[2])
        page = exporter.get("/")[2]
    finally:
        exporter.stop()
    good = {"domain": "good.test", "team": "mail"}
    assert sample_value(samples, "mailsec_dns_mx_records", **good) == 2
    assert sample_value(samples, "mailsec_dmarc_policy", **good) == 2
    assert sample_value(samples, "mailsec_dkim_key_present", selector="rsa2048", **good) == 1
    assert sample_value(samples, "mailsec_dkim_key_present", selector="missing", **good) == 0
    assert sample_value(samples, "mailsec_dkim_key_size", selector="rsa2048", key_type="rsa", **good) == 2048
    assert sample_value(samples, "mailsec_dnssec_status", zone="good.test", **good) == 1
    assert sample_value(samples, "mailsec_domain_check_success", check="spf", domain="bogus.test") == 0
    assert sample_value(samples, "mailsec_exporter_targets", kind="domain") == 2

    # The status page tells the same story, with findings and their fixes.
    domains = {d["domain"]: d for d in status["domains"]}
    assert domains["good.test"]["last_result"]["success"] is True
    direct = asyncio.run(check_domain(
        Domain("good.test", ("rsa2048", "missing")), DNSClient(running_dns_lab().resolver), https_ca_file=https.ca_file
    ))
    shown = domains["good.test"]["last_result"]["findings"]
    assert [(f["code"], f["message"]) for f in shown] == [(f.code, f.message) for f in direct.findings]
    assert all(f["fix"] for f in shown)
    assert direct.mta_sts.policy is not None
    assert sample_value(samples, "mailsec_mta_sts_mode", **good) == {"none": 0, "testing": 1, "enforce": 2}[
        direct.mta_sts.policy.mode.value
    ]

    # The MX hosts of good.test are discovered and probed on port 25. Nothing listens on
    # their loopback addresses: refused, so their next runs back off (one interval more).
    # Every address of each is probed: mx1's A and its AAAA (::1), mx2's A.
    for mx, address in (("mx1.good.test:25", MX1_GOOD), ("mx1.good.test:25", MX1_GOOD_V6),
                        ("mx2.good.test:25", MX2_GOOD)):
        assert sample_value(samples, "mailsec_probe_failure_info", target=mx, module="smtp",
                            address=address, reason="connection_refused") == 1
    assert sample_value(samples, "mailsec_host_addresses", target="mx1.good.test:25", module="smtp") == 2
    assert sample_value(samples, "mailsec_exporter_backoff_seconds", kind="endpoint",
                        target="mx2.good.test:25", module="smtp") == 300
    assert sample_value(samples, "mailsec_exporter_targets", kind="endpoint") == 2
    assert {e["target"] for e in status["endpoints"]} == {"mx1.good.test:25", "mx2.good.test:25"}
    assert "spf" in domains["bogus.test"]["last_result"]["failed_checks"]
    assert 'id="domain-table"' in page and "bogus.test" in page
