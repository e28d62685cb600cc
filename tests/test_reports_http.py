"""The TLS-RPT receiver: real POSTs to its own listen address, beside the exporter's app;
its own basic auth; bodies refused by size before they are read; every refusal counted."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from prometheus_client import generate_latest

from exporter.service.exporter import Exporter
from exporter.web.app import build_app
from tests.reportfixtures import google_tlsrpt, gzip_bomb, gzipped, json_bytes, microsoft_tlsrpt

PASSWORD_HASH = bcrypt.hashpw(b"sender secret", bcrypt.gensalt(rounds=4)).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(directory: Path, port: int, *, auth: bool = False) -> Path:
    web_config = ""
    if auth:
        (directory / "receiver-web.yml").write_text(f'basic_auth_users:\n  sender: "{PASSWORD_HASH}"\n')
        web_config = "    web_config_file: receiver-web.yml\n"
    config = directory / "config.yml"
    config.write_text(f"""\
dns: {{nameservers: ["127.0.0.1:9"], timeout: 1s, retries: 0}}
domain_checks: {{probe_mx: false}}
domains:
  - name: example.org
reports:
  state_file: state.json
  limits: {{max_compressed_bytes: 64KiB, max_decompressed_bytes: 1MiB}}
  http:
    listen_address: 127.0.0.1:{port}
    path: /v1/tlsrpt
{web_config}""")
    return config


@pytest.fixture
async def receiver(tmp_path, request):
    """(exporter, receiver URL) with the exporter's app started as `serve` starts it."""
    port = free_port()
    exporter = Exporter(str(write_config(tmp_path, port, auth=getattr(request, "param", False))))
    exporter.reload()
    runner = web.AppRunner(build_app(exporter))
    await runner.setup()
    try:
        yield exporter, f"http://127.0.0.1:{port}/v1/tlsrpt"
    finally:
        await runner.cleanup()
        await exporter.stop()


def sample(exporter: Exporter, series: str) -> float:
    for line in generate_latest(exporter.registry).decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def post(url: str, body, content_type: str, credentials: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()


async def test_gzip_and_json_reports_are_counted_once(receiver):
    exporter, url = receiver
    assert await post(url, gzipped(json_bytes(google_tlsrpt())), "application/tlsrpt+gzip") == (200, "counted\n")
    assert await post(url, json_bytes(microsoft_tlsrpt()), "application/tlsrpt+json") == (200, "counted\n")
    # A sender's retry: accepted (so it stops retrying), not counted again.
    assert await post(url, json_bytes(microsoft_tlsrpt()), "application/tlsrpt+json") == (200, "counted before\n")
    assert sample(exporter, 'mailsec_reports_accepted_total{domain="example.org",kind="tlsrpt"}') == 2
    assert sample(exporter, 'mailsec_tlsrpt_successful_sessions_total{domain="example.org",policy_type="no-policy-found",'
                            'reporter="microsoft corporation"}') == 40
    assert sample(exporter, 'mailsec_reports_rejected_total{kind="tlsrpt",reason="duplicate"}') == 1


@pytest.mark.parametrize("body, content_type, status, reason", [
    (json_bytes(google_tlsrpt()), "application/json", 415, "content_type"),
    (json_bytes(google_tlsrpt()), "text/plain", 415, "content_type"),
    (json_bytes(google_tlsrpt()), "application/tlsrpt+gzip", 400, "bad_archive"),     # says gzip, is not
    (gzipped(json_bytes(google_tlsrpt())), "application/tlsrpt+json", 400, "bad_archive"),
    (gzipped(json_bytes(google_tlsrpt()))[:-10], "application/tlsrpt+gzip", 400, "bad_archive"),   # bad gzip
    (b"<feedback/>", "application/tlsrpt+json", 400, "bad_json"),
    (json_bytes({"organization-name": "x"}), "application/tlsrpt+json", 400, "schema"),
    (json_bytes(google_tlsrpt(domain="not-ours.example")), "application/tlsrpt+json", 400, "unknown_domain"),
    (b"x" * (64 * 1024 + 1), "application/tlsrpt+json", 413, "too_large"),                      # Content-Length
    (gzip_bomb(), "application/tlsrpt+gzip", 413, "too_large"),                          # 250 KB: over 64 KiB
    (gzipped(b" " * (2 << 20)), "application/tlsrpt+gzip", 413, "too_large"),            # 2 KB -> 2 MiB > 1 MiB
], ids=["json type", "text type", "not gzip", "gzip as json", "bad gzip", "xml", "schema", "unknown domain",
        "too large", "bomb", "decompresses too large"])
async def test_bad_posts_are_refused_and_counted(receiver, body, content_type, status, reason):
    exporter, url = receiver
    answer_status, _ = await post(url, body, content_type)
    assert answer_status == status
    assert sample(exporter, f'mailsec_reports_rejected_total{{kind="tlsrpt",reason="{reason}"}}') == 1
    assert sample(exporter, 'mailsec_reports_accepted_total{domain="example.org",kind="tlsrpt"}') == 0


async def test_a_chunked_body_is_cut_at_the_limit(receiver):
    exporter, url = receiver

    async def endless():
        for _ in range(10_000):          # 640 MB if it were all read
            yield b"x" * 65536

    status, _ = await post(url, endless(), "application/tlsrpt+json")
    assert status == 413
    assert sample(exporter, 'mailsec_reports_rejected_total{kind="tlsrpt",reason="too_large"}') == 1


async def test_the_receiver_serves_its_path_only_and_not_the_exporter(receiver):
    exporter, url = receiver
    base = url.rsplit("/v1/", 1)[0]
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/metrics") as response:
            assert response.status in (404, 405)
        async with session.post(base + "/metrics", data=b"{}",
                                headers={"Content-Type": "application/tlsrpt+json"}) as response:
            assert response.status == 404


@pytest.mark.parametrize("receiver", [True], indirect=True, ids=["basic auth"])
async def test_the_receiver_has_basic_auth_of_its_own(receiver):
    exporter, url = receiver
    body = json_bytes(google_tlsrpt())
    assert (await post(url, body, "application/tlsrpt+json"))[0] == 401
    assert (await post(url, body, "application/tlsrpt+json", "sender:guess"))[0] == 401
    assert await post(url, body, "application/tlsrpt+json", "sender:sender secret") == (200, "counted\n")
    assert sample(exporter, 'mailsec_reports_accepted_total{domain="example.org",kind="tlsrpt"}') == 1


async def test_no_receiver_without_its_config(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text('dns: {nameservers: ["127.0.0.1:9"]}\ndomains:\n  - name: example.org\n')
    exporter = Exporter(str(config))
    exporter.reload()
    runner = web.AppRunner(build_app(exporter))
    await runner.setup()
    try:
        assert exporter.reports.snapshot() is None
        assert b"mailsec_reports" not in generate_latest(exporter.registry)
    finally:
        await runner.cleanup()
        await exporter.stop()
