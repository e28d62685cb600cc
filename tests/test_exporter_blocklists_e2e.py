"""The exporter runs each configured blocklist on its own schedule through the real resolver
(Unbound in front of Knot's test lists) and shows what they answer on /metrics, in
/probe?domain=, on the status page; "listed since" survives a reload."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter_process import running_app, sample_value
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, MX1_GOOD_V6, MX2_GOOD

pytestmark = pytest.mark.integration


def config_text(bl_interval: str) -> str:
    resolver = running_dns_lab().resolver.nameservers[0]
    return (
        "global: {interval: 5m, timeout: 10s, jitter: 0s}\n"
        f"dns: {{nameservers: ['{resolver.address}:{resolver.port}'], timeout: 3s}}\n"
        "domain_checks: {probe_mx: false}\n"
        "probe: {allowed_domains: ['*.test']}\n"
        "domains:\n  - {name: good.test}\n  - {name: nullmx.test}\n"
        "blocklists:\n  lists:\n"
        f"    - name: bl\n      zone: bl.test\n      kind: ip\n      interval: {bl_interval}\n"
        "      codes: {127.0.0.2: spam, 127.0.0.4-127.0.0.7: exploited, 127.0.0.10-127.0.0.11: policy}\n"
        "      refusal_codes: [127.255.255.254]\n"
        "    - {name: refusing, zone: refusing.test, kind: ip, refusal_codes: [127.255.255.254]}\n"
        "    - {name: dbl, zone: dbl.test, kind: domain, removal_url: 'https://bl.test/remove'}\n"
    )


def samples_of(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


async def wait_for_runs(exporter, names: set[str], after: float = 0.0, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        entries = {name: exporter.results.blocklists.get(name) for name in names}
        if all(entry is not None and entry.result.observed_at > after for entry in entries.values()):
            return
        assert time.monotonic() < deadline, f"lists not run: {entries}"
        await asyncio.sleep(0.1)


async def test_lists_run_on_schedule_and_are_shown_everywhere(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(config_text("1h"))
    async with running_app(path) as (exporter, client):
        await wait_for_runs(exporter, {"bl", "refusing", "dbl"})
        samples = samples_of(await (await client.get("/metrics")).text())
        probe = samples_of(await (await client.get("/probe?domain=good.test")).text())
        debug = await (await client.get("/probe?domain=good.test&debug=true")).text()
        status = json.loads(await (await client.get("/api/v1/status")).text())
        page = await (await client.get("/")).text()

        # A reload that changes the list restarts its job: it runs again at once (no jitter).
        first_run = exporter.results.blocklists.get("bl").result.observed_at
        path.write_text(config_text("2h"))
        exporter.reload()
        await wait_for_runs(exporter, {"bl"}, after=first_run)
        reloaded = samples_of(await (await client.get("/metrics")).text())

    listed = {(s.labels["address"], s.labels["meaning"]): s.value for s in samples
              if s.name == "mailsec_blocklist_listed" and s.labels["list"] == "bl"}
    assert listed == {(MX1_GOOD, "spam"): 1, (MX1_GOOD_V6, "exploited"): 1, (MX2_GOOD, "policy"): 1}
    assert sample_value(samples, "mailsec_blocklist_usable", list="bl") == 1
    assert sample_value(samples, "mailsec_blocklist_subjects", list="bl") == 3
    assert sample_value(samples, "mailsec_blocklist_interval_seconds", list="bl") == 3600
    since = sample_value(samples, "mailsec_blocklist_listed_since_timestamp_seconds", list="bl", address=MX1_GOOD)
    assert since == sample_value(samples, "mailsec_blocklist_last_run_timestamp_seconds", list="bl")
    # The refusing list is an error, never a listing of everything.
    assert sample_value(samples, "mailsec_blocklist_usable", list="refusing") == 0
    assert sample_value(samples, "mailsec_blocklist_failure_info", list="refusing", reason="refused_by_list") == 1
    assert not [s for s in samples if s.name == "mailsec_blocklist_listed" and s.labels["list"] == "refusing"]
    # Domain lists: the domain, its MX names, its rua hosts (reports.test); not listed is 0.
    names = {(s.labels["name"], s.labels["meaning"]): s.value for s in samples
             if s.name == "mailsec_blocklist_listed" and s.labels["list"] == "dbl"}
    assert names == {("good.test", "other"): 1, ("reports.test", "other"): 1, ("mx1.good.test", "none"): 0,
                     ("mx2.good.test", "none"): 0, ("nullmx.test", "none"): 0}

    # /probe?domain= answers from the latest results, narrowed to the domain's subjects.
    assert sample_value(probe, "mailsec_blocklist_listed", list="bl", address=MX1_GOOD, meaning="spam") == 1
    assert not [s for s in probe if s.name == "mailsec_blocklist_listed" and s.labels.get("name") == "nullmx.test"]
    assert [s.value for s in probe if s.name == "mailsec_blocklist_listed" and s.labels.get("name") == "good.test"] == [1]
    assert sample_value(probe, "mailsec_blocklist_interval_seconds", list="bl") is None
    assert "listed by bl as spam" in debug and "https://bl.test/lookup?ip=127.77.1.1" in debug

    # The status page has the TXT reason and the removal link; labels never do.
    lists = {item["list"]: item for item in status["blocklists"]}
    listing = next(l for l in lists["bl"]["last_result"]["listings"] if l["subject"] == MX1_GOOD)
    assert listing["reason"] == f"Listed for spam, see https://bl.test/lookup?ip={MX1_GOOD}"
    assert listing["origins"] == ["address of MX mx1.good.test of good.test"]
    assert lists["refusing"]["last_result"]["problem"] == "refused_by_list"
    assert 'id="listings"' in page and f"https://bl.test/lookup?ip={MX1_GOOD}" in page
    assert "https://bl.test/remove" in page          # the list's own removal_url, for a TXT without link
    assert all("http" not in value for s in samples if s.name.startswith("mailsec_blocklist")
               for value in s.labels.values())

    # After the reload: a new run, the same "listed since".
    assert sample_value(reloaded, "mailsec_blocklist_interval_seconds", list="bl") == 7200
    assert sample_value(reloaded, "mailsec_blocklist_last_run_timestamp_seconds", list="bl") > since
    assert sample_value(reloaded, "mailsec_blocklist_listed_since_timestamp_seconds",
                        list="bl", address=MX1_GOOD) == since
