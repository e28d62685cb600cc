"""A real Prometheus scrapes the exporter, which probes the real Postfix and Dovecot, deep-scans
one of them and checks mail domains through the real DNS fixtures (Knot behind a validating
Unbound): every dashboard query returns data, and the broken fixtures fire their alerts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from exporter_process import ExporterProcess
from mail_config import config_for
from tests.dnsfixtures import running_dns_lab
from tests.httpsfixtures import running_https_lab
from tests.realservers import free_port, stop_process, wait_until_listening
from tests.realservers.dovecot import REPORTS_PASSWORD
from tests.reportfixtures import GOOGLE_DMARC, google_dmarc_mail, google_tlsrpt, google_tlsrpt_mail

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
        stop_process(self.process, timeout=15)
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


# Domains of tests/dnsfixtures/zones.py: one in order (with a weak and a revoked DKIM
# selector) and one per broken scenario. A null-MX domain needs no TLS-RPT.
DOMAINS = [
    {"name": "good.test", "dkim_selectors": ["rsa2048", "ed", "rsa1024", "revoked"]},
    {"name": "nullmx.test"},
    {"name": "signed.test"},
    {"name": "bogus.test"},
    {"name": "dmarc-ext.test"},
    {"name": "dmarc-bad.test"},
    {"name": "spf-plusall.test"},
    {"name": "spf-many.test"},
    {"name": "spf-two.test"},
    {"name": "sts-uncovered.test"},
]
# The endpoint whose module also runs the deep TLS scan.
DEEP_SCANNED = "smtp-good"


def exporter_config(mail_endpoints, reports: dict | None = None) -> str:
    """Every real-server scenario, a deep scan of DEEP_SCANNED, and DOMAINS through the DNS lab;
    `reports`: the reports: section."""
    config = yaml.safe_load(config_for(mail_endpoints, interval="30s"))
    config["modules"][DEEP_SCANNED]["deep_scan"] = {"interval": "6h", "min_delay": "0s"}
    # Mail policy: DEEP_SCANNED relays for the exporter (Postfix's mynetworks holds 127.0.0.0/8:
    # the verdict holds from the exporter's vantage point); the two scenarios on the DNS lab's
    # addresses get their PTR compared.
    config["modules"][DEEP_SCANNED]["open_relay_test"] = {"recipient": "canary@example.org"}
    for scenario in ("smtp-names-disagree", "smtp-ptr-unconfirmed"):
        config["modules"][scenario]["check_ptr"] = True
    resolver = running_dns_lab().resolver.nameservers[0]
    config["dns"] = {"nameservers": [f"{resolver.address}:{resolver.port}"], "timeout": "3s"}
    config["domains"] = DOMAINS
    config["domain_checks"] = {"mta_sts_ca_file": running_https_lab().ca_file}   # nginx's test CA
    # The lab's test blocklists: one listing the MX addresses of good.test, one refusing us.
    config["blocklists"] = {"lists": [
        {"name": "bl", "zone": "bl.test", "kind": "ip",
         "codes": {"127.0.0.2": "spam", "127.0.0.4-127.0.0.7": "exploited", "127.0.0.10-127.0.0.11": "policy"}},
        {"name": "refusing", "zone": "refusing.test", "kind": "ip", "refusal_codes": ["127.255.255.254"]},
    ]}
    if reports is not None:
        config["reports"] = reports
    return yaml.safe_dump(config)


def reports_section(workdir: Path, dovecot_server) -> dict:
    """Reports about good.test in the real Dovecot mailbox (a DMARC report from Google with a
    source good.test's SPF authorizes, a TLS-RPT report with failures on mx1.good.test), and
    the TLS-RPT receiver on a port of its own."""
    folder = "E2E"
    dmarc = GOOGLE_DMARC.replace("example.org", "good.test").replace("192.0.2.10", "127.77.1.20")
    dovecot_server.append(folder, google_dmarc_mail(dmarc))
    dovecot_server.append(folder, google_tlsrpt_mail(google_tlsrpt(domain="good.test", mx="mx1.good.test")))
    (workdir / "imap-password").write_text(REPORTS_PASSWORD)
    imaps = dovecot_server.endpoints["imaps-good"]
    return {
        "state_file": str(workdir / "reports-state.json"),
        "imap": {"host": imaps.host, "port": imaps.port, "server_name": imaps.server_name, "ca_file": imaps.ca_file,
                 "username": "reports", "password_file": str(workdir / "imap-password"), "folder": folder},
        "http": {"listen_address": f"127.0.0.1:{free_port('127.0.0.1')}"},
    }


def post_bad_report(reports: dict) -> None:
    """A report the receiver rejects, while Prometheus watches: the rejection counter rises."""
    request = urllib.request.Request(f"http://{reports['http']['listen_address']}/tlsrpt", data=b"{not json",
                                     headers={"Content-Type": "application/tlsrpt+json"}, method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 400


@pytest.fixture(scope="module")
def prometheus(mail_endpoints, dovecot_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus")
    reports = reports_section(workdir, dovecot_server)
    (workdir / "exporter.yml").write_text(exporter_config(mail_endpoints, reports))
    exporter = ExporterProcess(workdir / "exporter.yml")
    server = Prometheus(workdir, exporter.port, rules_without_waiting(workdir))
    try:
        server.wait_for(f"count(mailsec_probe_success{{scenario!=\"\"}}) == {len(mail_endpoints)}")
        server.wait_for(f"count(mailsec_domain_check_last_run_timestamp_seconds) == {len(DOMAINS)}")
        server.wait_for("count(mailsec_blocklist_usable) == 2")
        server.wait_for("count(mailsec_tls_scan_success == 1) == 1", timeout=120)
        # rate() panels need a few scrapes, including a second probe run of some target.
        server.wait_for('count_over_time(up{job="mailsec"}[5m]) > 5')
        server.wait_for("count(mailsec_tlsrpt_failed_sessions_total) > 0")
        post_bad_report(reports)
        server.wait_for("sum(increase(mailsec_reports_rejected_total[5m])) > 0")
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


# Panels whose data needs servers this lab does not run: the revocation panels need a CA's
# CRL and OCSP servers named in the certificates (the lab's have none), the OCSP staple
# columns a server that staples (Postfix and Dovecot do not). Their families, with the labels
# the panels select on, are proven against real nginx and `openssl ocsp` in
# tests/test_revocation_realservers.py and against `openssl s_server -status_file` in
# tests/test_tlsscan_realservers.py; test_dashboards.py checks the queries.
NEEDS_OTHER_SERVERS = {"mailsec-endpoint.json: Revocation (A)",
                       "mailsec-endpoint.json: Revocation checks without a verdict (A)",
                       "mailsec-endpoint.json: Attacks, fallback, OCSP staple (D)",
                       "mailsec-endpoint.json: Attacks, fallback, OCSP staple (E)"}


@pytest.mark.parametrize("dashboard", sorted(DASHBOARDS.glob("*.json")), ids=lambda p: p.name)
def test_every_panel_query_returns_data(prometheus, dashboard):
    server, endpoints = prometheus
    # The overview's variables allow "All" (.*). The endpoint dashboard shows one endpoint:
    # each of its panels must show data for a healthy one or for a failing one (failure panels).
    choices = [{"target": ".*", "module": ".*", "domain": ".*"}]
    if dashboard.name == "mailsec-endpoint.json":
        choices = [
            {"target": f"{endpoints[name].host}:{endpoints[name].port}", "module": name}
            for name in (DEEP_SCANNED, "smtp-no-tls")
        ]
    empty = [
        where
        for where, expr in panel_queries(dashboard)
        if where not in NEEDS_OTHER_SERVERS and not any(server.query(as_promql(expr, variables)) for variables in choices)
    ]
    assert empty == [], "panel queries without data"


def firing(server) -> set[tuple[str, str]]:
    """(alert name, what it is about) of the firing alerts: the endpoint's scenario, or the
    domain followed by the DKIM selector or the failing check when there is one."""
    def subject(labels: dict[str, str]) -> str:
        if "scenario" in labels:
            return labels["scenario"]
        return "/".join(labels[name] for name in ("domain", "selector", "check", "list", "address", "name")
                        if name in labels)

    return {
        (alert["labels"]["alertname"], subject(alert["labels"]))
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
    ("MailsecSubmissionAcceptsMailInClear", "submission-clear"),
    ("MailsecOpenRelay", DEEP_SCANNED),                    # mynetworks trusts the exporter
    ("MailsecNamesDisagree", "smtp-names-disagree"),
    ("MailsecNamesDisagree", "smtp-ptr-unconfirmed"),      # its PTR does not resolve back
    ("MailsecDkimWeakKey", "good.test/rsa1024"),
    ("MailsecDkimKeyMissing", "good.test/revoked"),
    ("MailsecDnssecBogus", "bogus.test"),
    ("MailsecDmarcPolicyNone", "dmarc-ext.test"),
    ("MailsecDmarcMissing", "dmarc-bad.test"),
    ("MailsecSpfMissing", "dmarc-ext.test"),
    ("MailsecSpfPassAll", "spf-plusall.test"),
    ("MailsecSpfTooManyLookups", "spf-many.test"),
    ("MailsecSpfInvalid", "spf-two.test"),
    ("MailsecTlsrptMissing", "spf-plusall.test"),
    ("MailsecMtaStsMxNotCovered", "sts-uncovered.test"),      # its enforced policy omits mx2
    ("MailsecTlsrptFailures", "good.test"),                   # the TLS-RPT report in the mailbox counts 2
    # Real findings of the deep scan: Postfix's default port-25 cipher list
    # (smtpd_tls_ciphers = medium) accepts anonymous DH and legacy suites, with a 1024-bit prime.
    ("MailsecTlsInsufficientCipherAccepted", DEEP_SCANNED),
    ("MailsecTlsWeakDhParameters", DEEP_SCANNED),
    ("MailsecBlocklistNewlyListed", "bl/127.77.1.1"),        # the MX addresses of good.test and others
    ("MailsecBlocklistNewlyListed", "bl/::1"),
    ("MailsecBlocklistUnusable", "refusing"),
}
GOOD_ENDPOINTS = {"smtp-good", "submission-good", "smtps-good", "smtp-ecdsa", "imap-good", "imaps-good", "pop3-good", "pop3s-good"}
# Any of their selectors or checks; good.test's two broken selectors are in EXPECTED_ALERTS.
GOOD_DOMAINS = {"good.test"}
# Alerts that must not fire: each would be a second page for a cause that already has one, or
# a finding that does not apply.
MUST_STAY_SILENT = {
    ("MailsecDomainCheckFailing", "bogus.test"),        # its SERVFAILs are MailsecDnssecBogus's
    ("MailsecTlsrptMissing", "nullmx.test"),            # a null-MX domain receives no mail
    ("MailsecSpfInvalid", "spf-many.test"),             # MailsecSpfTooManyLookups's
    ("MailsecSpfInvalid", "dmarc-ext.test"),            # MailsecSpfMissing's
    ("MailsecTlsGradeInsufficient", DEEP_SCANNED),      # explained by the cipher and DH alerts
    ("MailsecBlocklistNewlyListed", "bl/127.77.1.2"),   # a policy listing: normal for an inbound MX
}


def test_broken_fixtures_fire_their_alerts_and_good_ones_stay_silent(prometheus):
    server, endpoints = prometheus
    deadline = time.monotonic() + 30
    while not EXPECTED_ALERTS <= (alerts := firing(server)) and time.monotonic() < deadline:
        time.sleep(1)
    assert EXPECTED_ALERTS - alerts == set(), "expected alerts not firing"
    # The report fixture shows good.test signing with selector google2024, which has no key in
    # the lab: once a domain check runs after the report is read (a DANE recheck may), the
    # DKIM check looks it up and finds it missing. Whether that happens in this window is timing.
    reported_only = {("MailsecDkimKeyMissing", "good.test/google2024")}
    about_good = {(name, subject) for name, subject in alerts - reported_only
                  if subject.split("/")[0] in GOOD_ENDPOINTS | GOOD_DOMAINS}
    assert about_good - EXPECTED_ALERTS == set()
    assert alerts & MUST_STAY_SILENT == set()
