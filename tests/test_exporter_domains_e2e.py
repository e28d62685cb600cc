"""The exporter process checks configured domains through a real validating resolver
(Unbound in front of Knot) and /metrics shows what the zones say."""

from __future__ import annotations

import pytest

from exporter_process import ExporterProcess, sample_value
from tests.dnsfixtures import running_dns_lab

pytestmark = pytest.mark.integration


def test_configured_domains_are_checked_on_schedule(tmp_path):
    resolver = running_dns_lab().resolver.nameservers[0]
    config = tmp_path / "config.yml"
    config.write_text(
        "global: {interval: 5m, timeout: 10s, jitter: 0s}\n"
        f"dns: {{nameservers: ['{resolver.address}:{resolver.port}'], timeout: 3s}}\n"
        "domains:\n"
        "  - {name: good.test, dkim_selectors: [rsa2048, missing], labels: {team: mail}}\n"
        "  - {name: bogus.test}\n"
    )
    exporter = ExporterProcess(config)
    try:
        samples = exporter.wait_for(
            lambda s: {x.labels.get("domain") for x in s if x.name == "mailsec_domain_check_last_run_timestamp_seconds"}
            == {"good.test", "bogus.test"} and s
        )
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
