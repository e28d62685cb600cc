"""The status page (/) and its JSON twin (/api/v1/status): content, history, escaping of
what servers send, and the page as a real browser (headless Chromium) renders it."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import shutil
import struct
import tempfile
from pathlib import Path

import pytest

from exporter.results import FailureReason
from exporter.service.store import FAILURES_KEPT, SUCCESSES_KEPT

from exporter_process import running_app
from hostile import FakeServer, Script, smtp_server
from results_factory import failed_result, revocation_result, tls_result

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"

HOSTILE_DETAIL = "greeting: 554 <script>alert('pwned')</script> & \"quotes\""
HOSTILE_SUBJECT = "CN=<img src=x onerror=alert(1)>"


def hostile_tls_result():
    result = tls_result()
    leaf = dataclasses.replace(result.tls.leaf, subject=HOSTILE_SUBJECT)
    tls = dataclasses.replace(result.tls, chain=(leaf,), chain_error="<b>untrusted</b>")
    return dataclasses.replace(result, tls=tls)


def write_config(tmp_path: Path, ports: tuple[int, ...]) -> Path:
    # A long interval and jitter: the scheduler's own runs stay out of the way; tests call run_once.
    targets = "".join(f"  - {{host: 127.0.0.1, port: {port}, module: smtp, labels: {{site: lab}}}}\n"
                      for port in ports)
    path = tmp_path / "config.yml"
    path.write_text(f"global: {{interval: 1d, jitter: 1d}}\ntargets:\n{targets}")
    return path


class ScriptedProbe:
    """Returns, for each port, the next result of its list (the last one repeats)."""

    def __init__(self, results_by_port):
        self.results_by_port = {port: list(results) for port, results in results_by_port.items()}

    async def __call__(self, target, module, dns):
        results = self.results_by_port[target.port]
        return results.pop(0) if len(results) > 1 else results[0]


async def populate(exporter, runs: int = 1) -> None:
    for _ in range(runs):
        for target in exporter.config.targets:
            await exporter.scheduler.run_once(target, exporter.config.modules[target.module])


async def test_json_status_has_every_endpoint_with_findings_and_next_run(tmp_path):
    probe = ScriptedProbe({2501: [tls_result()], 2502: [failed_result(FailureReason.STARTTLS_NOT_OFFERED)]})
    async with running_app(write_config(tmp_path, (2501, 2502, 2503)), probe=probe) as (exporter, client):
        for target in exporter.config.targets[:2]:
            await exporter.scheduler.run_once(target, exporter.config.modules["smtp"])
        await asyncio.sleep(0)   # the loops have recorded their next run
        document = await (await client.get("/api/v1/status")).json()
    endpoints = {endpoint["target"]: endpoint for endpoint in document["endpoints"]}
    assert list(endpoints) == ["127.0.0.1:2501", "127.0.0.1:2502", "127.0.0.1:2503"]
    good = endpoints["127.0.0.1:2501"]
    assert good["module"] == "smtp" and good["labels"] == {"site": "lab"}
    assert good["last_result"]["success"] is True and good["last_result"]["consistent"] is None
    [address] = good["last_result"]["addresses"]
    assert address["address"] == "127.0.0.1" and address["family"] == "ipv4" and address["starttls_offered"] is True
    tls = address["tls"]
    assert tls["version"] == "TLSv1.3" and tls["chain_valid"] is False and tls["hostname_valid"] is True
    assert tls["chain_error"] == "self-signed certificate"
    assert tls["cert_expires_in_days"] == pytest.approx((tls["cert_not_after"] - document["generated_at"]) / 86400, abs=0.1)
    bad = endpoints["127.0.0.1:2502"]["last_result"]
    assert bad["success"] is False and bad["failure"] == "starttls_not_offered" and bad["failure_detail"] == "test"
    assert [address["tls"] for address in bad["addresses"]] == [None]
    assert endpoints["127.0.0.1:2503"]["last_result"] is None                  # configured, not probed yet
    assert all(endpoint["next_run"] > document["generated_at"] for endpoint in endpoints.values())
    assert document["shard"] == {"index": 0, "count": 1} and document["last_reload_error"] is None


async def test_history_keeps_more_failures_than_successes_newest_first(tmp_path):
    results = [dataclasses.replace(failed_result(), observed_at=1000.0 + i, failure_detail=f"run {i}") for i in range(30)]
    results += [dataclasses.replace(tls_result(), observed_at=2000.0 + i) for i in range(8)]
    probe = ScriptedProbe({2501: results})
    async with running_app(write_config(tmp_path, (2501,)), probe=probe) as (exporter, client):
        await populate(exporter, runs=len(results))
        history = (await (await client.get("/api/v1/status")).json())["endpoints"][0]["history"]
        page = await (await client.get("/")).text()
    assert [item["success"] for item in history] == [True] * SUCCESSES_KEPT + [False] * FAILURES_KEPT
    assert [item["observed_at"] for item in history] == sorted((item["observed_at"] for item in history), reverse=True)
    assert history[SUCCESSES_KEPT]["failure_detail"] == "run 29"
    assert history[-1]["failure_detail"] == f"run {30 - FAILURES_KEPT}"
    assert "run 29" in page and f"run {29 - FAILURES_KEPT}" not in page


async def test_html_shows_the_findings_and_escapes_what_servers_send(tmp_path):
    hostile_failure = dataclasses.replace(failed_result(FailureReason.SERVICE_UNAVAILABLE), failure_detail=HOSTILE_DETAIL)
    probe = ScriptedProbe({2501: [hostile_tls_result()], 2502: [hostile_failure]})
    async with running_app(write_config(tmp_path, (2501, 2502)), probe=probe) as (exporter, client):
        await populate(exporter)
        response = await client.get("/")
        page = await response.text()
        json_text = await (await client.get("/api/v1/status")).text()
    assert response.status == 200 and response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert 'href="metrics"' in page and 'href="-/healthy"' in page and 'href="api/v1/status"' in page
    assert "<script" not in page and "<img" not in page and "<b>untrusted" not in page
    assert html.escape(HOSTILE_DETAIL, quote=True) in page
    assert "&lt;b&gt;untrusted&lt;/b&gt;" in page
    assert "Endpoints: 2, failing: 1" in page
    assert "service_unavailable" in page and "TLSv1.3" in page
    assert HOSTILE_DETAIL.replace('"', '\\"') in json_text      # JSON keeps the text as it was


async def test_revocation_checks_are_shown_and_escaped(tmp_path):
    async with running_app(write_config(tmp_path, (2501,)), probe=ScriptedProbe({2501: [tls_result()]})) as (
            exporter, client):
        target = exporter.config.targets[0]
        exporter.results.revocations.put(target.key, target, revocation_result(HOSTILE_DETAIL))
        document = await (await client.get("/api/v1/status")).json()
        page = await (await client.get("/")).text()
    revocation = document["endpoints"][0]["revocation"]
    assert revocation["revoked"] is True and revocation["success"] is False
    assert [(c["method"], c["status"], c["failure"]) for c in revocation["checks"]] == [
        ("ocsp", "revoked", None), ("crl", None, "timeout")]
    assert revocation["checks"][0]["revocation_reason"] == "key_compromise"
    assert 'id="revocation-table"' in page and '<span class="fail">revoked</span>' in page
    assert "<script" not in page and html.escape(HOSTILE_DETAIL, quote=True) in page


async def test_a_real_hostile_greeting_is_escaped(tmp_path):
    greeting = "554 <script>document.title='owned'</script> go away"
    async with FakeServer(smtp_server(Script(greeting=greeting))) as server:
        async with running_app(write_config(tmp_path, (server.port,))) as (exporter, client):
            await populate(exporter)
            page = await (await client.get("/")).text()
            document = await (await client.get("/api/v1/status")).json()
    last = document["endpoints"][0]["last_result"]
    assert last["failure"] == "service_unavailable"
    assert "<script>" in last["failure_detail"]            # the server's words, kept as they were...
    assert "<script" not in page and "&lt;script&gt;document.title=" in page   # ...and shown as text


async def test_a_failed_reload_is_shown_on_the_page(tmp_path):
    config = write_config(tmp_path, (2501,))
    async with running_app(config, probe=ScriptedProbe({2501: [tls_result()]}), lifecycle=True) as (_, client):
        config.write_text("targets: [{host: <bad>, module: smtp}]\n")
        response = await client.post("/-/reload")
        assert response.status == 500
        page = await (await client.get("/")).text()
    assert "The last reload failed" in page and "&lt;bad&gt;" in page


# --------------------------------------------------------------------------------------
# A real browser
# --------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def run_chromium(url: str, *args: str) -> bytes:
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--window-size=1280,900", *args, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0
    return stdout


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package chromium) not installed")
async def test_chromium_renders_the_status_page(tmp_path):
    hostile_failure = dataclasses.replace(failed_result(FailureReason.SERVICE_UNAVAILABLE), failure_detail=HOSTILE_DETAIL)
    probe = ScriptedProbe({2501: [hostile_tls_result()], 2502: [hostile_failure], 2503: [tls_result()]})
    async with running_app(write_config(tmp_path, (2501, 2502, 2503)), probe=probe) as (exporter, client):
        await populate(exporter)
        url = str(client.make_url("/"))
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "status-page.png"
        screenshot.unlink(missing_ok=True)
        await run_chromium(url, f"--screenshot={screenshot}")
        dom = (await run_chromium(url, "--dump-dom")).decode()
    data = screenshot.read_bytes()
    assert png_size(data) == (1280, 900)
    assert len(data) > 20_000, "a blank page compresses to a few kilobytes"
    # The browser built the table, with the server's text as text, and ran no script.
    assert dom.count('<tr class="endpoint">') == 3
    assert "&lt;script&gt;alert('pwned')&lt;/script&gt;" in dom
    assert "<script" not in dom and "<img" not in dom
    assert "Endpoints: 3, failing: 1" in dom
