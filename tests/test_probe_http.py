"""/probe: parameters, the timeout budget, the SSRF guard, the answer's metrics and debug report,
in-process against scripted mail servers and end to end against the real exporter process."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Module, MailProtocol, StartTLS, Target, parse_target_pattern
from exporter.dnsclient import DNSError, DNSErrorKind
from exporter.probes.report import debug_report
from exporter.web.probe import BadRequest, parse_debug, parse_target, probe_budget
from exporter.dnsclient import PinnedResolver
from exporter.service.guard import TargetRefused, admit
from exporter.results import FailureReason

from exporter_process import ExporterProcess, running_app, sample_value
from hostile import FakeServer, Script, closed_port, issue, server_tls_context, smtp_server, write_pem
from results_factory import failed_result, host_result, tls_result

# --------------------------------------------------------------------------------------
# Parameters and budget
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mx.example.org", ("mx.example.org", 25)),
        ("MX.Example.org.:2525", ("mx.example.org", 2525)),
        ("192.0.2.1:465", ("192.0.2.1", 465)),
        ("[2001:DB8::1]:587", ("2001:db8::1", 587)),
        ("[2001:db8::1]", ("2001:db8::1", 25)),
        ("2001:db8::1", ("2001:db8::1", 25)),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text, 25) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("mx.example.org:0", "the port must be an integer from 1 to 65535"),
        ("mx.example.org:smtp", "the port must be an integer from 1 to 65535"),
        ("[2001:db8::1]25", "expected ':port' after ']'"),
        ("mx_1.example.org", "has an invalid part 'mx_1'"),
        ("http://mx.example.org/", "the port must be an integer from 1 to 65535"),
    ],
)
def test_parse_target_refuses(text, reason):
    with pytest.raises(BadRequest, match=f"target '.*': .*{re.escape(reason)}"):
        parse_target(text, 25)


@pytest.mark.parametrize(
    "header, offset, module_timeout, budget",
    [
        (None, 0.5, 10.0, 10.0),         # no header: the module's timeout
        ("10", 0.5, 30.0, 9.5),          # the scrape timeout minus the offset
        ("10", 0.5, 5.0, 5.0),           # never more than the module's timeout
        ("2.5", 0.0, 10.0, 2.5),
    ],
)
def test_probe_budget(header, offset, module_timeout, budget):
    assert probe_budget(header, offset, module_timeout) == budget


@pytest.mark.parametrize(
    "header, reason",
    [("abc", "must be a positive number"), ("-1", "must be a positive number"), ("nan", "must be a positive number"),
     ("0.5", "leaves no time for the probe")],
)
def test_probe_budget_refuses(header, reason):
    with pytest.raises(BadRequest, match=reason):
        probe_budget(header, 0.5, 10.0)


@pytest.mark.parametrize("value, debug", [(None, False), ("true", True), ("1", True), ("false", False),
                                          ("FALSE", False), ("0", False)])
def test_parse_debug(value, debug):
    assert parse_debug(value) is debug


def test_parse_debug_refuses_other_values():
    with pytest.raises(BadRequest, match="debug must be true or false"):
        parse_debug("yes please")


# --------------------------------------------------------------------------------------
# The SSRF guard
# --------------------------------------------------------------------------------------


class FakeDNS:
    """Answers every name with the addresses in `answers` (which a test may change: rebinding)."""

    def __init__(self, *answers: str, error: DNSErrorKind | None = None):
        self.answers = list(answers)
        self.error = error
        self.lookups = 0

    async def resolve_addresses(self, host):
        self.lookups += 1
        if self.error:
            raise DNSError(self.error, host, "A")
        return list(self.answers)


def patterns(*texts):
    return tuple(parse_target_pattern(text) for text in texts)


async def test_guard_refuses_everything_without_patterns():
    with pytest.raises(TargetRefused, match="no probe.allowed_targets"):
        await admit("127.0.0.1", 25, (), FakeDNS())


@pytest.mark.parametrize(
    "host, port, allowed",
    [
        ("192.0.2.7", 25, True),
        ("192.0.2.7", 587, False),         # the pattern has a port
        ("198.51.100.7", 25, False),
        ("2001:db8::25", 993, True),
        ("2001:db9::25", 993, False),
    ],
)
async def test_guard_checks_ip_literals_against_networks(host, port, allowed):
    dns = FakeDNS()
    allowed_targets = patterns("192.0.2.0/24:25", "2001:db8::/32", "*")   # "*" never matches an address
    if allowed:
        assert await admit(host, port, allowed_targets, dns) is dns
    else:
        with pytest.raises(TargetRefused, match="is not allowed by probe.allowed_targets"):
            await admit(host, port, allowed_targets, dns)
    assert dns.lookups == 0


async def test_guard_lets_a_name_matching_a_glob_through_to_the_normal_resolver():
    dns = FakeDNS("10.0.0.1")
    assert await admit("mx1.example.org", 25, patterns("*.example.org"), dns) is dns
    assert dns.lookups == 0
    with pytest.raises(TargetRefused):
        await admit("mx1.example.org.evil.test", 25, patterns("*.example.org"), dns)


async def test_guard_pins_the_checked_addresses_of_a_name_allowed_by_network():
    dns = FakeDNS("192.0.2.10", "192.0.2.11")
    pinned = await admit("mx.example.net", 25, patterns("192.0.2.0/24"), dns)
    assert isinstance(pinned, PinnedResolver)
    dns.answers = ["10.0.0.1"]    # the name now points inside the network: DNS rebinding
    assert await pinned.resolve_addresses("mx.example.net") == ["192.0.2.10", "192.0.2.11"]
    with pytest.raises(DNSError):
        await pinned.resolve_addresses("other.example.net")


@pytest.mark.parametrize(
    "dns, reason",
    [
        (FakeDNS("192.0.2.10", "10.0.0.1"), "resolves to 10.0.0.1, outside the allowed networks"),
        (FakeDNS(error=DNSErrorKind.NXDOMAIN), "could not be checked: .*NXDOMAIN"),
    ],
)
async def test_guard_refuses_a_name_with_an_address_outside_the_networks(dns, reason):
    with pytest.raises(TargetRefused, match=reason):
        await admit("mx.example.net", 25, patterns("192.0.2.0/24"), dns)


# --------------------------------------------------------------------------------------
# The debug report
# --------------------------------------------------------------------------------------


def test_debug_report_of_a_tls_success_and_of_a_failure():
    module = Module("smtp", MailProtocol.SMTP, 25, StartTLS.REQUIRED, timeout=9.5, interval=60)
    target = Target("127.0.0.1", 25, "smtp")
    text = debug_report(target, module, host_result(tls_result()))
    assert "Probe of 127.0.0.1:25 with module smtp (protocol smtp, STARTTLS required, timeout 9.5s)" in text
    assert "Result: success" in text and "TLS: TLSv1.3, cipher TLS_AES_256_GCM_SHA384" in text
    assert "Chain valid: no (self-signed certificate)" in text
    assert "Certificate valid for mail.example.test: yes" in text
    assert "Certificate 0: subject CN=mail.example.test" in text
    failed = debug_report(target, module, host_result(failed_result(FailureReason.CONNECTION_REFUSED)))
    assert "Result: failure: connection_refused (test)" in failed
    assert "TLS: no handshake completed" in failed and "(nothing was exchanged)" in failed


# --------------------------------------------------------------------------------------
# In process: the handler with a real probe against scripted servers
# --------------------------------------------------------------------------------------

SERVER_NAME = "mail.probe.test"


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory() as directory:
        root = issue("Probe Test Root", is_ca=True)
        leaf = issue(SERVER_NAME, issuer=root, dns_names=(SERVER_NAME,))
        yield server_tls_context(leaf), write_pem(directory, "root.pem", root)


def config_file(tmp_path: Path, allowed: str, ca_file: str = "", extra_modules: str = "") -> Path:
    tls = f"\n    tls: {{ca_file: '{ca_file}', server_name: {SERVER_NAME}}}" if ca_file else ""
    path = tmp_path / "config.yml"
    path.write_text(
        f"probe:\n  allowed_targets: {allowed}\n  timeout_offset: 250ms\n"
        f"modules:\n  mx:\n    protocol: smtp\n    timeout: 5s{tls}\n{extra_modules}"
    )
    return path


def parse(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


async def test_probe_of_a_starttls_server_answers_blackbox_and_mailsec_families(tmp_path, pki):
    tls_context, ca_file = pki
    async with FakeServer(smtp_server(Script(tls_context=tls_context))) as server:
        async with running_app(config_file(tmp_path, "['127.0.0.0/8']", ca_file)) as (exporter, client):
            response = await client.get("/probe", params={"target": f"127.0.0.1:{server.port}", "module": "mx"})
            assert response.status == 200
            samples = parse(await response.text())
    assert sample_value(samples, "probe_success") == 1
    assert 0 < sample_value(samples, "probe_duration_seconds") < 5
    target = f"127.0.0.1:{server.port}"
    assert sample_value(samples, "mailsec_probe_success", target=target, module="mx") == 1
    assert sample_value(samples, "mailsec_starttls_offered") == 1
    assert sample_value(samples, "mailsec_cert_chain_valid") == 1
    assert sample_value(samples, "mailsec_cert_hostname_valid") == 1
    assert [s.labels["version"] for s in samples if s.name == "mailsec_tls_version_info"] in (["TLSv1.3"], ["TLSv1.2"])
    # /probe does not store anything: /metrics knows nothing of the target.
    assert exporter.results.endpoints.get(Target("127.0.0.1", server.port, "mx").key) is None
    assert exporter.registry.get_sample_value("mailsec_exporter_probe_requests_total", {"result": "success"}) == 1


async def test_debug_shows_the_dialogue_of_a_refused_starttls(tmp_path, pki):
    tls_context, ca_file = pki
    script = Script(tls_context=tls_context, starttls_reply="454 4.7.0 TLS not available due to local problem")
    async with FakeServer(smtp_server(script)) as server:
        async with running_app(config_file(tmp_path, "['127.0.0.1']", ca_file)) as (_, client):
            response = await client.get("/probe", params={"target": f"127.0.0.1:{server.port}", "module": "mx",
                                                          "debug": "true"})
            text = await response.text()
    assert response.status == 200 and response.content_type == "text/plain"
    assert "Result: failure: starttls_refused" in text
    assert "C: STARTTLS" in text and "S: 454 4.7.0 TLS not available due to local problem" in text
    assert "STARTTLS offered: yes" in text


async def test_the_scrape_timeout_header_bounds_the_probe(tmp_path):
    seen = []

    async def recording_probe(target, module, dns):
        seen.append(module.timeout)
        return tls_result()

    async with running_app(config_file(tmp_path, "['127.0.0.1']"), probe=recording_probe) as (_, client):
        params = {"target": "127.0.0.1", "module": "mx"}
        assert (await client.get("/probe", params=params, headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"})).status == 200
        assert (await client.get("/probe", params=params, headers={"X-Prometheus-Scrape-Timeout-Seconds": "60"})).status == 200
        assert (await client.get("/probe", params=params)).status == 200
    assert seen[0] == pytest.approx(3 - 0.25, abs=0.05)   # minus probe.timeout_offset
    assert seen[1] == pytest.approx(5, abs=0.05)          # capped by the module's 5s
    assert seen[2] == pytest.approx(5, abs=0.05)


async def test_a_probe_waiting_for_a_busy_host_gives_up_within_its_budget(tmp_path):
    release = asyncio.Event()

    async def slow_probe(target, module, dns):
        await release.wait()
        return tls_result()

    async with running_app(config_file(tmp_path, "['127.0.0.1']"), probe=slow_probe) as (_, client):
        params = {"target": "127.0.0.1", "module": "mx"}
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "0.75"}
        first = asyncio.create_task(client.get("/probe", params={**params, "target": "127.0.0.1:2525"}))
        await asyncio.sleep(0.1)   # the first holds the only slot for 127.0.0.1 (per_host_concurrency 1)
        response = await client.get("/probe", params=params, headers=headers)
        samples = parse(await response.text())
        release.set()
        assert (await first).status == 200
    assert sample_value(samples, "probe_success") == 0
    assert sample_value(samples, "mailsec_probe_failure_info", reason="timeout") == 1


@pytest.mark.parametrize(
    "params, status, reason, counted",
    [
        ({"target": "127.0.0.1", "module": "mx", "domain": "example.org"}, 400,
         "unknown parameter module, target; accepted: domain, dkim_selector, debug", "invalid"),
        ({"target": "127.0.0.1", "module": "mx", "dkim_selector": "s1"}, 400,
         "unknown parameter dkim_selector; accepted: target, module, debug", "invalid"),
        ({"module": "mx"}, 400, "the target parameter is required", "invalid"),
        ({"target": "127.0.0.1"}, 400, "the module parameter is required", "invalid"),
        ({"target": "127.0.0.1", "module": "nosuch"}, 400, "unknown module 'nosuch'; configured: smtp,", "invalid"),
        ({"target": "127.0.0.2", "module": "mx"}, 400,
         "target 127.0.0.2:25 is not allowed by probe.allowed_targets", "refused"),
        ({"target": "127.0.0.1:70000", "module": "mx"}, 400, "the port must be an integer", "invalid"),
    ],
)
async def test_refusals_are_400_with_a_reason_and_counted(tmp_path, params, status, reason, counted):
    async def never_called(target, module, dns):
        raise AssertionError("a refused request must not probe")

    async with running_app(config_file(tmp_path, "['127.0.0.1']"), probe=never_called) as (exporter, client):
        response = await client.get("/probe", params=params)
        assert response.status == status
        assert reason in await response.text()
        assert exporter.registry.get_sample_value(
            "mailsec_exporter_probe_requests_total", {"result": counted}) == 1


async def test_probe_is_refused_until_allowed_targets_are_configured(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("targets: []\n")
    async with running_app(path) as (_, client):
        response = await client.get("/probe", params={"target": "127.0.0.1", "module": "smtp"})
        assert response.status == 400
        assert "no probe.allowed_targets" in await response.text()


# --------------------------------------------------------------------------------------
# End to end: the real exporter process
# --------------------------------------------------------------------------------------


def test_probe_through_the_real_exporter(tmp_path):
    port = closed_port()
    config = tmp_path / "config.yml"
    config.write_text("probe:\n  allowed_targets: ['127.0.0.0/8', 'localhost:" f"{port}']\n")
    process = ExporterProcess(config)
    try:
        status, content_type, body = process.get(f"/probe?target=127.0.0.1:{port}&module=smtp",
                                                 headers={"X-Prometheus-Scrape-Timeout-Seconds": "5"})
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        samples = parse(body)
        assert sample_value(samples, "probe_success") == 0
        assert sample_value(samples, "mailsec_probe_failure_info", reason="connection_refused",
                            target=f"127.0.0.1:{port}") == 1

        status, _, report = process.get(f"/probe?target=127.0.0.1:{port}&module=smtp&debug=true")
        assert status == 200 and "Result: failure: connection_refused" in report
        assert f"*: connecting to 127.0.0.1 port {port}" in report

        status, _, body = process.get("/probe?target=10.1.2.3&module=smtp")
        assert status == 400 and "not allowed by probe.allowed_targets" in body
        counts = process.samples()
        assert sample_value(counts, "mailsec_exporter_probe_requests_total", result="failure") == 2
        assert sample_value(counts, "mailsec_exporter_probe_requests_total", result="refused") == 1
    finally:
        process.stop()
