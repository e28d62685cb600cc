"""A real Prometheus scrapes the exporter, which probes the real Postfix and Dovecot:
every dashboard query returns data, and the broken fixtures fire their alerts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from exporter_process import ExporterProcess
from mail_config import config_for
from tests.realservers import free_port, wait_until_listening

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian package prometheus not installed"),
]

DASHBOARDS = Path(__file__).parent.parent / "dashboards"


class Prometheus:
    def __init__(self, workdir: Path, exporter_port: int, rules: Path):
        self.port = free_port("127.0.0.1")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "mailsec", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_until_listening("127.0.0.1", self.port, time.monotonic() + 30)
        self._wait_until_ready(time.monotonic() + 30)

    def _wait_until_ready(self, deadline: float) -> None:
        """Prometheus answers 503 while it replays its write-ahead log."""
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5):
                    return
            except OSError:   # urllib's HTTPError included
                assert time.monotonic() < deadline, "Prometheus did not become ready"
                time.sleep(0.2)

    def api(self, path: str, **params: str):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def wait_for(self, expr: str, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while not (result := self.query(expr)):
            assert time.monotonic() < deadline, f"no data for {expr}"
            time.sleep(0.5)
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def rules_without_waiting(workdir: Path) -> Path:
    """The shipped alert rules with every `for:` removed, so that a test sees in seconds
    which alerts the current data makes fire."""
    rules = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    path = workdir / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


@pytest.fixture(scope="module")
def prometheus(mail_endpoints, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / "exporter.yml").write_text(config_for(mail_endpoints, interval="30s"))
    exporter = ExporterProcess(workdir / "exporter.yml")
    server = Prometheus(workdir, exporter.port, rules_without_waiting(workdir))
    try:
        server.wait_for(f"count(mailsec_probe_success) == {len(mail_endpoints)}")
        # rate() panels need a few scrapes, including a second probe run of some target.
        server.wait_for('count_over_time(up{job="mailsec"}[5m]) > 5')
        yield server, mail_endpoints
    finally:
        server.stop()
        exporter.stop()


def panel_queries(dashboard: Path) -> list[tuple[str, str]]:
    def panels(items):
        return [p for item in items for p in (item, *panels(item.get("panels", [])))]

    data = json.loads(dashboard.read_text())
    return [
        (f"{dashboard.name}: {panel['title']} ({query['refId']})", query["expr"])
        for panel in panels(data["panels"])
        for query in panel.get("targets", [])
    ]


def as_promql(expr: str, variables: dict[str, str]) -> str:
    expr = re.sub(r"\$__rate_interval\b|\$__interval\b|\$__range\b", "1m", expr)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m.group(1)], expr)


@pytest.mark.parametrize("dashboard", sorted(DASHBOARDS.glob("*.json")), ids=lambda p: p.name)
def test_every_panel_query_returns_data(prometheus, dashboard):
    server, endpoints = prometheus
    # The overview's variables allow "All" (.*). The endpoint dashboard shows one endpoint:
    # each of its panels must show data for a healthy one or for a failing one (failure panels).
    choices = [{"target": ".*", "module": ".*"}]
    if dashboard.name == "mailsec-endpoint.json":
        choices = [
            {"target": f"{endpoints[name].host}:{endpoints[name].port}", "module": name}
            for name in ("smtp-good", "smtp-no-tls")
        ]
    empty = [
        where
        for where, expr in panel_queries(dashboard)
        if not any(server.query(as_promql(expr, variables)) for variables in choices)
    ]
    assert empty == [], "panel queries without data"


def firing(server) -> set[tuple[str, str]]:
    return {
        (alert["labels"]["alertname"], alert["labels"].get("scenario", ""))
        for alert in server.api("alerts")["alerts"]
        if alert["state"] == "firing"
    }


EXPECTED_ALERTS = {
    ("MailsecCertificateExpired", "smtp-expired"),
    ("MailsecCertificateChainInvalid", "smtp-expired"),
    ("MailsecCertificateChainInvalid", "smtp-self-signed"),
    ("MailsecCertificateSelfSigned", "smtp-self-signed"),
    ("MailsecCertificateHostnameMismatch", "smtp-mismatch"),
    ("MailsecStarttlsNotOffered", "smtp-no-tls"),
    ("MailsecPlaintextAuthExposed", "smtp-auth-before-tls"),
    ("MailsecPlaintextAuthExposed", "imap-plaintext-auth"),
    ("MailsecPlaintextAuthExposed", "pop3-plaintext-auth"),
}


def test_broken_fixtures_fire_their_alerts_and_good_ones_stay_silent(prometheus):
    server, endpoints = prometheus
    deadline = time.monotonic() + 30
    while not EXPECTED_ALERTS <= (alerts := firing(server)) and time.monotonic() < deadline:
        time.sleep(1)
    assert EXPECTED_ALERTS - alerts == set(), "expected alerts not firing"
    good = {"smtp-good", "submission-good", "smtps-good", "smtp-ecdsa", "imap-good", "imaps-good", "pop3-good", "pop3s-good"}
    assert {(name, scenario) for name, scenario in alerts if scenario in good} == set()
