"""/probe of a module with deep_scan: the scan is served from a cache, refreshed in the
background, one scan per target however many scrapes arrive."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter_process import running_app, sample_value

pytestmark = pytest.mark.integration


def parse(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


async def test_deep_scan_is_served_from_cache_and_run_once(tmp_path, mail_endpoints):
    endpoint = mail_endpoints["smtp-good"]
    config = tmp_path / "config.yml"
    config.write_text(
        "probe:\n  allowed_targets: ['127.0.0.0/8']\n"
        "modules:\n"
        f"  mx: {{protocol: smtp, tls: {{ca_file: {endpoint.ca_file}, server_name: {endpoint.server_name}}},"
        " deep_scan: {interval: 1h}}\n"
    )
    params = {"target": f"{endpoint.host}:{endpoint.port}", "module": "mx"}
    async with running_app(config) as (exporter, client):
        first = parse(await (await client.get("/probe", params=params)).text())
        assert sample_value(first, "probe_success") == 1
        assert sample_value(first, "mailsec_tls_scan_success") is None     # not scanned yet
        # Scrapes while the scan runs must not start more scans.
        for _ in range(5):
            await client.get("/probe", params=params)
        for _ in range(200):
            samples = parse(await (await client.get("/probe", params=params)).text())
            if sample_value(samples, "mailsec_tls_scan_success") is not None:
                break
            await asyncio.sleep(0.1)
        scans = exporter.registry.get_sample_value(
            "mailsec_exporter_probes_total", {"kind": "deep_scan", "module": "mx", "result": "success"}
        )
        scrape = await (await client.get("/metrics")).text()
    assert sample_value(samples, "mailsec_tls_scan_success") == 1
    assert sample_value(samples, "mailsec_tls_protocol_supported", version="TLSv1.3") == 1
    assert sample_value(samples, "mailsec_tls_protocol_supported", version="TLSv1.0") == 0
    assert scans == 1
    # A /probe scan belongs to the /probe answer, not to /metrics.
    assert "mailsec_tls_scan_success" not in scrape
