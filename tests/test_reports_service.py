"""The report service inside the exporter: TLS-RPT failures contradicted by our own probe of
the same MX, DKIM selectors from reports fed to the domain check, bad config refused."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from exporter.config import ConfigError, Domain, Target, load_config
from exporter.domains.check import DomainResult
from exporter.domains.dane import DANEResult, DANEStatus
from exporter.domains.dnssec import DNSSECStatus
from exporter.reports.common import ReportKind
from exporter.reports.tlsrpt import ResultType
from exporter.service.exporter import Exporter
from exporter.service.reports import domain_check_contradicts
from exporter.service.runs import Probes
from tests.reportfixtures import GOOGLE_DMARC, google_tlsrpt, gzipped, json_bytes
from results_factory import host_result, tls_result

MX = "mx1.example.org"


def write_config(directory: Path, extra: str = "") -> Path:
    config = directory / "config.yml"
    config.write_text(f"""\
dns: {{nameservers: ["127.0.0.1:9"], timeout: 1s, retries: 0}}
global: {{jitter: 1h, interval: 2h}}
domain_checks: {{probe_mx: false}}
targets:
  - {{host: {MX}, module: smtp}}
domains:
  - name: example.org
    dkim_selectors: [configured]
reports:
  state_file: state.json
  http: {{listen_address: "127.0.0.1:0"}}
{extra}""")
    return config


@pytest.fixture
async def exporter(tmp_path):
    exporter = Exporter(str(write_config(tmp_path)))
    exporter.reload()
    yield exporter
    await exporter.stop()


def probe_of_mx(exporter: Exporter, **changes) -> None:
    """Store a probe result of mx1 as the scheduler would: a leaf valid for 30 more days."""
    result = tls_result(observed_at=time.time())
    leaf = dataclasses.replace(result.tls.chain[0], not_after=time.time() + 30 * 86400)
    tls = dataclasses.replace(result.tls, chain=(leaf,), **changes)
    target = Target(MX, 25, "smtp")
    exporter.results.endpoints.put(target.key, target, host_result(dataclasses.replace(result, tls=tls)))


@pytest.mark.parametrize("result_type, tls_changes, contradicted", [
    ("certificate-expired", {}, True),                          # our leaf is valid for 30 more days
    ("certificate-not-trusted", {"chain_valid": True}, True),
    ("certificate-not-trusted", {"chain_valid": False}, False),  # we see it too
    ("certificate-host-mismatch", {"hostname_valid": True}, True),
    ("certificate-host-mismatch", {"hostname_valid": False}, False),
    ("starttls-not-supported", {}, True),                       # our probe saw STARTTLS offered
    ("validation-failure", {}, False),                          # nothing to compare with
])
async def test_failures_our_probe_does_not_see_are_findings(exporter, result_type, tls_changes, contradicted):
    probe_of_mx(exporter, **tls_changes)
    report = google_tlsrpt(mx=MX, result_type=result_type)
    ended = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)   # within the window
    report["date-range"]["end-datetime"] = ended.isoformat()
    outcome = await exporter.reports.ingest_file(gzipped(json_bytes(report)), ReportKind.TLSRPT)
    assert outcome.accepted
    found = exporter.reports.contradictions()
    assert [(c.domain, c.mx, c.result_type) for c in found] == (
        [("example.org", MX, ResultType(result_type))] if contradicted else [])
    text = generate_latest(exporter.registry).decode()
    assert (f'mailsec_tlsrpt_failure_not_seen_by_probe{{domain="example.org",mx="{MX}",'
            f'result_type="{result_type}"}} 1.0' in text) is contradicted
    # The watched MX keeps its name as a label.
    assert f'mx="{MX}",policy_type="sts",reporter="google inc.",result_type="{result_type}"' in text


async def test_old_failures_are_not_compared(exporter):
    probe_of_mx(exporter)
    await exporter.reports.ingest_file(json_bytes(google_tlsrpt(mx=MX)), ReportKind.TLSRPT)   # ended in 2023
    assert exporter.reports.contradictions() == ()


async def test_reported_selectors_reach_the_dkim_check(tmp_path):
    seen: list[tuple[str, ...]] = []

    async def check(domain: Domain, *args, **kwargs) -> DomainResult:
        seen.append((domain.dkim_selectors, domain.reported_dkim_selectors))
        raise RuntimeError("only the selectors matter here")

    exporter = Exporter(str(write_config(tmp_path)), probes=Probes(domain=check))
    exporter.reload()
    try:
        domain = exporter.config.domains[0]
        await exporter.scheduler.check_domain(domain)
        outcome = await exporter.reports.ingest_file(GOOGLE_DMARC.encode())
        assert outcome.accepted
        await exporter.scheduler.check_domain(domain)
        # The configured selector first, then google2024 (a passing signature); not "forged".
        assert seen == [(("configured",), ()), (("configured", "google2024"), ("google2024",))]
    finally:
        await exporter.stop()


@pytest.mark.parametrize("reports, line, reason", [
    ("reports: {}", 9, "reports: needs a source: imap (a mailbox) or http (the TLS-RPT receiver), or both"),
    ("reports:\n  http: {path: /x}", 10, "reports.http: 'listen_address' is required"),
    ("reports:\n  http: {listen_address: 'nowhere'}", 10,
     "reports.http.listen_address: must be [HOST]:PORT such as :10055 or 127.0.0.1:10055, got 'nowhere'"),
    ("reports:\n  http: {listen_address: ':1', path: 'tlsrpt'}", 10,
     "reports.http.path: must be a URL path such as /tlsrpt, got 'tlsrpt'"),
    ("reports:\n  imap: {host: h.example, username: u, password: secret}", 10,
     "reports.imap.password: unknown key (did you mean 'password_env'?); allowed here: host, port, security, "
     "ca_file, server_name, username, password_file, password_env, folder, processed, processed_flag, "
     "processed_folder, interval, timeout, batch"),
    ("reports:\n  imap: {host: h.example, username: u}", 10,
     "reports.imap: set exactly one of password_file and password_env (the password itself never goes in this file)"),
    ("reports:\n  imap: {host: h.example, username: u, password_env: P, processed: move}", 10,
     "reports.imap.processed: move needs processed_folder"),
    ("reports:\n  imap: {host: h.example, username: u, password_env: P, processed: flag, processed_flag: 'a b'}", 10,
     "reports.imap.processed_flag: must be \\Seen, \\Flagged, \\Answered or a keyword such as $MailsecProcessed "
     "(letters, digits, $ . _ -), got 'a b'"),
    ("reports:\n  imap: {host: h.example, username: u, password_env: '1X'}", 10,
     "reports.imap.password_env: must be the name of an environment variable, got '1X'"),
    ("reports:\n  limits: {max_ratio: 0}\n  http: {listen_address: ':1'}", 10,
     "reports.limits.max_ratio: must be a number from 1 to 100000, got 0"),
    ("reports:\n  limits: {max_message_bytes: 10 apples}\n  http: {listen_address: ':1'}", 10,
     "reports.limits.max_message_bytes: must be a size such as 512KiB, 10MiB or 1GB, or a number of bytes; "
     "got '10 apples'"),
], ids=["no source", "no listen address", "bad listen address", "bad path", "inline password", "no password",
        "move without folder", "bad flag", "bad env name", "ratio", "size"])
def test_bad_reports_config_is_refused_with_file_and_line(tmp_path, reports, line, reason):
    config = write_config(tmp_path).read_text().split("reports:")[0] + reports + "\n"
    path = tmp_path / "bad.yml"
    path.write_text(config)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert (caught.value.line, caught.value.reason) == (line, reason)


def test_a_user_label_named_like_a_report_label_is_refused(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("domains:\n  - name: example.org\n    labels: {reporter: me}\n")
    with pytest.raises(ConfigError, match="the exporter sets a label named 'reporter' itself"):
        load_config(str(path))


async def test_the_status_page_shows_the_reports(exporter):
    from exporter.web.status import render_status_html, status_document

    probe_of_mx(exporter)
    assert (await exporter.reports.ingest_file(GOOGLE_DMARC.encode())).accepted
    assert not (await exporter.reports.ingest_file(b"<feedback")).accepted
    document = status_document(exporter, time.time())
    row = document["reports"]["domains"]["example.org"]
    # 17 messages, 12 passing; the SPF of example.org is not resolvable here: sources unknown.
    assert (row["dmarc_messages"], row["dmarc_pass"], row["dmarc_authorized_fail"]) == (17, 12, 0)
    assert document["reports"]["rejected"] == {"dmarc/bad_xml": 1}      # told by its content
    html = render_status_html(document)
    assert '<h2 id="reports">' in html and "70.6%" in html and "dmarc/bad_xml: 1" in html


# --- failures about the domain's policies, against the domain check ------------------------

def _dane(status: DANEStatus | None = DANEStatus.MATCH, dnssec=DNSSECStatus.SECURE, records=("3 1 1 ab",),
          mx: str = MX) -> SimpleNamespace:
    by_address = () if status is None else (("192.0.2.1", DANEResult(status)), ("192.0.2.2", DANEResult(DANEStatus.MATCH)))
    return SimpleNamespace(mx=mx, failure=None, records=records, dnssec=dnssec, by_address=by_address)


def _checked(policy=True, dane=(), domain_dnssec=DNSSECStatus.INSECURE) -> SimpleNamespace:
    """The parts of a DomainResult the comparison reads."""
    return SimpleNamespace(mta_sts=SimpleNamespace(policy=object() if policy else None), dane=dane,
                           dnssec=(SimpleNamespace(status=domain_dnssec),), observed_at=time.time())


@pytest.mark.parametrize("result_type, checked, mx, contradicted", [
    (ResultType.STS_POLICY_FETCH_ERROR, _checked(policy=True), "other", True),
    (ResultType.STS_POLICY_FETCH_ERROR, _checked(policy=False), "other", False),
    (ResultType.STS_POLICY_INVALID, _checked(policy=True), MX, True),
    (ResultType.TLSA_INVALID, _checked(dane=(_dane(),)), MX, True),
    (ResultType.TLSA_INVALID, _checked(dane=(_dane(DANEStatus.NO_MATCH),)), MX, False),   # one address fails
    (ResultType.TLSA_INVALID, _checked(dane=(_dane(None),)), MX, False),    # no chain seen yet
    (ResultType.TLSA_INVALID, _checked(dane=(_dane(mx="mx2.example.org"),)), MX, False),
    (ResultType.DANE_REQUIRED, _checked(dane=(_dane(),)), MX, True),
    (ResultType.DANE_REQUIRED, _checked(dane=(_dane(dnssec=DNSSECStatus.INSECURE),)), MX, False),
    (ResultType.DANE_REQUIRED, _checked(dane=(_dane(records=()),)), MX, False),
    (ResultType.DNSSEC_INVALID, _checked(dane=(_dane(),)), MX, True),
    (ResultType.DNSSEC_INVALID, _checked(dane=(_dane(dnssec=DNSSECStatus.BOGUS),)), MX, False),
    (ResultType.DNSSEC_INVALID, _checked(domain_dnssec=DNSSECStatus.SECURE), "other", True),
    (ResultType.DNSSEC_INVALID, _checked(), "other", False),
])
def test_policy_failures_are_compared_with_the_domain_check(result_type, checked, mx, contradicted):
    assert (domain_check_contradicts(result_type, checked, mx) is not None) is contradicted


async def test_a_policy_fetch_error_without_mx_is_contradicted_by_a_fetched_policy(exporter, monkeypatch):
    monkeypatch.setattr(exporter.results.domains, "get",
                        lambda name: SimpleNamespace(result=_checked()) if name == "example.org" else None)
    report = google_tlsrpt(mx=MX, result_type="sts-policy-fetch-error")
    del report["policies"][0]["failure-details"][0]["receiving-mx-hostname"]   # as senders report it
    report["date-range"]["end-datetime"] = (
        datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
    assert (await exporter.reports.ingest_file(gzipped(json_bytes(report)), ReportKind.TLSRPT)).accepted
    [found] = exporter.reports.contradictions()
    assert (found.domain, found.mx, found.result_type) == ("example.org", "other", ResultType.STS_POLICY_FETCH_ERROR)
    assert "our domain check fetched a valid MTA-STS policy" in found.message
