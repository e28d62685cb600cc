"""Revocation against real servers: a CA whose CRL nginx serves, a real `openssl ocsp`
responder (signing as a responder the CA delegated to), and `openssl s_server` endpoints
presenting a good and a revoked certificate. The exporter's scheduler probes each endpoint
and checks, beside the probe, by OCSP and by CRL: good is good, revoked is revoked, and
the probe itself succeeds either way."""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry

from exporter.cli import scan as scan_cli
from exporter.cli.check import _revocation_findings
from exporter.config import Config, GlobalSettings, MailProtocol, Module, StartTLS, Target, TLSSettings
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.dnsclient import DNSClient
from exporter.revocation.results import RevocationMethod, RevocationStatus
from exporter.service.scheduler import Scheduler
from exporter.service.store import ResultStores
from tests.dnsfixtures import die_with_parent
from tests.realservers import free_port, stop_process, wait_until_listening
from tests.revocation_pki import (
    crl_der,
    make_ca,
    make_crl,
    make_leaf,
    make_responder,
    openssl_index_line,
    write_key,
    write_pem,
)

pytestmark = pytest.mark.integration

CRL_ADDRESS = "127.78.0.1"        # nginx, serving /ca.crl
GOOD_ADDRESS = "127.78.0.2"       # s_server presenting the good certificate
REVOKED_ADDRESS = "127.78.0.3"    # s_server presenting the revoked one
OCSP_ADDRESS = "127.78.0.4"       # openssl ocsp listens on every address; the URL names this one
GREETING = b"220 mail.good.test ESMTP\r\n250 mail.good.test\r\n"


def _start(command: list[str], directory: Path, name: str, host: str, port: int,
           stdin: int | None = subprocess.DEVNULL, ready_line: str | None = None) -> subprocess.Popen:
    """Start a server; ready when it accepts a connection, or (`ready_line`) when its log
    says so: `openssl ocsp` serves one connection at a time and hangs on one closed unasked."""
    log_file = directory / f"{name}.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=stdin,
                                   preexec_fn=die_with_parent)
    deadline = time.monotonic() + 10
    try:
        if ready_line is None:
            wait_until_listening(host, port, deadline)
        while ready_line is not None and ready_line not in log_file.read_text():
            if time.monotonic() > deadline or process.poll() is not None:
                raise TimeoutError
            time.sleep(0.05)
    except TimeoutError:
        stop_process(process, 1)
        raise RuntimeError(f"{name} did not start: {log_file.read_text()}") from None
    return process


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("revocation")
    crl_port, ocsp_port = free_port(CRL_ADDRESS), free_port(OCSP_ADDRESS)
    urls = {"ocsp_url": f"http://{OCSP_ADDRESS}:{ocsp_port}/", "crl_url": f"http://{CRL_ADDRESS}:{crl_port}/ca.crl"}
    ca = make_ca()
    good, revoked = make_leaf(ca, "mail.good.test", **urls), make_leaf(ca, "mail.good.test", **urls)
    responder = make_responder(ca)
    write_pem(directory / "ca.pem", ca)
    for name, issued in (("good", good), ("revoked", revoked), ("responder", responder)):
        write_pem(directory / f"{name}.pem", issued)
        write_key(directory / f"{name}.key", issued)
    (directory / "index.txt").write_text(openssl_index_line(good.cert, False) + openssl_index_line(revoked.cert, True))
    (directory / "www").mkdir()
    (directory / "www" / "ca.crl").write_bytes(crl_der(make_crl(ca, (revoked.cert,))))
    (directory / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log warn;\n"
        "events { worker_connections 16; }\n"
        f"http {{\n  access_log {directory}/access.log;\n  client_body_temp_path {directory}/tmp;\n"
        f"  proxy_temp_path {directory}/tmp;\n  fastcgi_temp_path {directory}/tmp;\n"
        f"  uwsgi_temp_path {directory}/tmp;\n  scgi_temp_path {directory}/tmp;\n  types {{ }}\n"
        f"  server {{\n    listen {CRL_ADDRESS}:{crl_port};\n"
        f"    location = /ca.crl {{ default_type application/pkix-crl; alias {directory}/www/ca.crl; }}\n  }}\n}}\n")
    (directory / "tmp").mkdir()
    processes = [
        _start(["/usr/sbin/nginx", "-p", str(directory), "-e", str(directory / "error.log"),
                "-c", str(directory / "nginx.conf")], directory, "nginx", CRL_ADDRESS, crl_port),
        _start(["openssl", "ocsp", "-index", "index.txt", "-port", str(ocsp_port), "-CA", "ca.pem",
                "-rsigner", "responder.pem", "-rkey", "responder.key", "-nmin", "60"],
               directory, "ocsp", OCSP_ADDRESS, ocsp_port, ready_line="waiting for OCSP client connections"),
    ]
    endpoints = {}
    for name, address in (("good", GOOD_ADDRESS), ("revoked", REVOKED_ADDRESS)):
        # s_server plays a terse SMTPS server with what it reads on its standard input.
        port = free_port(address)
        process = _start(["openssl", "s_server", "-accept", f"{address}:{port}", "-cert", f"{name}.pem",
                          "-key", f"{name}.key", "-quiet"], directory, f"s_server-{name}", address, port,
                         stdin=subprocess.PIPE)
        processes.append(process)
        endpoints[name] = (Target(address, port, "smtps"), process)
    yield Lab(directory, endpoints)
    for process in processes:
        stop_process(process, 5)


class Lab:
    def __init__(self, directory: Path, endpoints: dict[str, tuple[Target, subprocess.Popen]]):
        self.directory, self.endpoints = directory, endpoints

    def target(self, name: str) -> Target:
        """The endpoint `name`, ready to answer one probe: the greeting and the EHLO reply."""
        target, process = self.endpoints[name]
        process.stdin.write(GREETING)
        process.stdin.flush()
        return target

    def config(self) -> Config:
        module = Module("smtps", MailProtocol.SMTPS, 465, StartTLS.NONE, timeout=5, interval=3600,
                        tls=TLSSettings(ca_file=str(self.directory / "ca.pem")))
        mx_module = Module("smtp", MailProtocol.SMTP, 25, StartTLS.REQUIRED, timeout=5, interval=3600)
        return Config(global_=GlobalSettings(jitter=0.0), modules=MappingProxyType({"smtps": module, "smtp": mx_module}),
                      targets=tuple(target for target, _ in self.endpoints.values()))


async def _probe_and_check(lab: Lab, name: str):
    results = ResultStores()
    scheduler = Scheduler(results, ExporterMetrics(CollectorRegistry()))
    config = lab.config()
    try:
        scheduler.apply(replace(config, targets=()))
        target = lab.target(name)
        probed = await scheduler.run_once(target, config.modules["smtps"])
        deadline = time.monotonic() + 15
        while results.revocations.get(target.key) is None:
            assert time.monotonic() < deadline, "no revocation result"
            await asyncio.sleep(0.05)
        return probed, results.revocations.get(target.key).result, results
    finally:
        await scheduler.stop()


@pytest.mark.parametrize("name, status", [("good", RevocationStatus.GOOD), ("revoked", RevocationStatus.REVOKED)])
async def test_good_and_revoked_by_ocsp_and_by_crl(lab, name, status):
    probed, result, results = await _probe_and_check(lab, name)
    assert probed.success, probed.failure_detail       # the probe is the mail server's verdict alone
    verdicts = {(c.position, c.method): (c.verdict.status, c.verdict.failure, c.verdict.detail) for c in result.checks}
    assert verdicts == {(0, RevocationMethod.CRL): (status, None, status.value),
                        (0, RevocationMethod.OCSP): (status, None, status.value)}
    for check in result.checks:
        assert check.verdict.next_update > time.time()
    text = b"".join(results.exposition_chunks()).decode()
    assert f'mailsec_cert_revoked{{address="{probed.addresses[0].address}",chain_position="0",family="ipv4",' \
           f'method="ocsp",module="smtps",target="{lab.endpoints[name][0].address}"}} ' \
           f'{1.0 if status is RevocationStatus.REVOKED else 0.0}' in text


async def test_check_reports_a_revoked_mx_certificate_as_an_error(lab):
    """`mailsec-exporter check` runs the same checks on the MX hosts it probes."""
    config = lab.config()
    probed = []
    scheduler = Scheduler(ResultStores(), ExporterMetrics(CollectorRegistry()))
    try:
        scheduler.apply(replace(config, targets=()))
        for name in ("good", "revoked"):
            target = lab.target(name)
            probed.append((target, await scheduler.run_once(target, config.modules["smtps"])))
    finally:
        await scheduler.stop()
    findings = await _revocation_findings(tuple(probed), config.modules["smtps"], DNSClient(config.dns))
    assert [(f.severity.value, f.code) for f in findings] == [("error", "certificate_revoked")] * 2
    assert all(f.message.startswith(f"MX {REVOKED_ADDRESS}: {REVOKED_ADDRESS} #0 ") and "REVOKED at" in f.message
               and "(key_compromise)" in f.message for f in findings)


@pytest.mark.parametrize("name, shown", [("good", "good"), ("revoked", "REVOKED at")])
async def test_scan_with_revocation_shows_each_check(lab, name, shown):
    """`mailsec-exporter scan --revocation`: one ordinary handshake with the scanned address,
    then the checks of what it presented, as lines under the scan's table."""
    target = lab.target(name)
    module = lab.config().modules["smtps"]
    dns = DNSClient(lab.config().dns)
    try:
        checks = await scan_cli._revocation_checks(target, module, dns, target.host)
    finally:
        dns.close()
    assert sorted(c.method for c in checks) == [RevocationMethod.CRL, RevocationMethod.OCSP]
    lines = scan_cli._revocation_text(checks).splitlines()
    assert lines[1] == "Revocation (OCSP, CRL):"
    assert [line.split(": ", 1)[0] for line in lines[2:]] == [f"  {target.host} #0 crl", f"  {target.host} #0 ocsp"]
    assert all(line.split(": ", 1)[1].startswith(shown) for line in lines[2:])
