"""Hostile servers next to a real one, probed by the real exporter process: each hostile
probe ends as a labelled failure, the real endpoint is probed as usual, and the exporter
stays healthy."""

from __future__ import annotations

import asyncio

import pytest

from exporter_process import ExporterProcess, sample_value
from hostile import FakeServer, drips, sends, silent

pytestmark = pytest.mark.integration

TEN_MEGABYTES_WITHOUT_NEWLINE = b"220 " + b"x" * (10 * 1024 * 1024)


async def test_hostile_servers_do_not_disturb_the_exporter(tmp_path, mail_endpoints):
    good = mail_endpoints["smtp-good"]
    async with (
        FakeServer(silent) as mute,
        FakeServer(sends(TEN_MEGABYTES_WITHOUT_NEWLINE)) as flood,
        FakeServer(drips(b"220 never ends")) as drip,
        FakeServer(sends(b"SSH-2.0-OpenSSH_9.2\r\n")) as garbage,
    ):
        hostile = {"mute": mute.port, "flood": flood.port, "drip": drip.port, "garbage": garbage.port}
        targets = [f"  - {{host: 127.0.0.1, port: {port}, module: smtp, labels: {{fake: {name}}}}}"
                   for name, port in hostile.items()]
        targets.append(f"  - {{host: {good.host}, port: {good.port}, module: good, labels: {{fake: good}}}}")
        config = tmp_path / "config.yml"
        config.write_text(
            "global: {interval: 5m, timeout: 2s, jitter: 0s, per_host_concurrency: 4}\n"
            "modules:\n"
            f"  good: {{protocol: smtp, timeout: 10s, tls: {{ca_file: {good.ca_file}, server_name: {good.server_name}}}}}\n"
            "targets:\n" + "\n".join(targets) + "\n"
        )
        exporter = await asyncio.to_thread(ExporterProcess, config)
        try:
            samples = await asyncio.to_thread(
                exporter.wait_for,
                lambda s: len([x for x in s if x.name == "mailsec_probe_success"]) == 5 and s,
            )
            status = await asyncio.to_thread(exporter.get, "/-/healthy")
        finally:
            await asyncio.to_thread(exporter.stop)

    def reason(name):
        found = [s.labels["reason"] for s in samples if s.name == "mailsec_probe_failure_info" and s.labels["fake"] == name]
        return found[0] if found else None

    assert reason("mute") == "timeout"
    assert reason("flood") == "protocol_error"
    assert reason("drip") == "timeout"
    assert reason("garbage") == "protocol_error"
    for name in hostile:
        assert sample_value(samples, "mailsec_probe_duration_seconds", fake=name) < 2 + 0.5
    assert sample_value(samples, "mailsec_probe_success", fake="good") == 1
    assert sample_value(samples, "mailsec_cert_chain_valid", fake="good") == 1
    assert status[0] == 200
