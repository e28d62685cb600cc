"""The mailbox poller against a real Dovecot over IMAPS and STARTTLS: real-shaped reports from
Google, Microsoft and Yahoo in gzip and zip attachments, TLS-RPT from Google, the hostile set
delivered as mail, counted once across a restart; sources classified by the real SPF of
good.test (Knot and Unbound of tests/dnsfixtures)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.service.exporter import Exporter
from tests.dnsfixtures import running_dns_lab
from tests.realservers.dovecot import REPORTS_PASSWORD, DovecotInstance
from tests.reportfixtures import (
    BILLION_LAUGHS, GOOGLE_DMARC, MICROSOFT_DMARC, YAHOO_DMARC, external_entity, google_tlsrpt, gzip_bomb,
    gzipped, json_bytes, report_mail, with_id, zip_bomb, zipped,
)

pytestmark = pytest.mark.integration

DOMAIN = "good.test"      # its SPF: mx include:_spf.good.test -all; _spf: ip4:127.77.1.0/24 a:mx1.good.test ~all


def ours(xml: str) -> str:
    """A fixture report about good.test, its first source inside good.test's SPF ranges."""
    return xml.replace("example.org", DOMAIN).replace("192.0.2.10", "127.77.1.20")


def mails() -> dict[str, bytes]:
    google = ours(GOOGLE_DMARC)
    tlsrpt = json_bytes(google_tlsrpt(domain=DOMAIN, mx="mx1.good.test"))
    return {
        "google zip": report_mail([(f"google.com!{DOMAIN}!1!2.zip", "application/zip", zipped(google.encode()))]),
        "microsoft gzip": report_mail([(f"outlook.com!{DOMAIN}!1!2.xml.gz", "application/gzip",
                                        gzipped(ours(MICROSOFT_DMARC).encode()))]),
        "yahoo zip": report_mail([(f"yahoo.com!{DOMAIN}!1!2.xml.zip", "application/zip",
                                   zipped(ours(YAHOO_DMARC).encode()))]),
        "google tlsrpt": report_mail([(f"google.com!{DOMAIN}!1!2!001.json.gz", "application/tlsrpt+gzip",
                                       gzipped(tlsrpt))]),
        "not ours": report_mail([("r.xml.gz", "application/gzip", gzipped(GOOGLE_DMARC.encode()))]),
        "no report": report_mail([]),
    }


def hostile_mails() -> dict[str, bytes]:
    google = ours(GOOGLE_DMARC)
    return {
        "zip bomb": report_mail([("bomb.zip", "application/zip", zip_bomb())]),
        "gzip bomb": report_mail([("bomb.xml.gz", "application/gzip", gzip_bomb())]),
        "billion laughs": report_mail([("lol.xml", "text/xml", BILLION_LAUGHS)]),
        "external entity": report_mail([("xxe.xml", "text/xml", external_entity("file:///etc/passwd"))]),
        "malformed date": report_mail([("d.xml", "text/xml", google.replace("<begin>", "<begin>x").encode())]),
        "bad gzip": report_mail([("b.xml.gz", "application/gzip", gzipped(google.encode())[:-20])]),
        "good after the bad": report_mail([("ok.xml", "text/xml", with_id(google, "after-the-bad").encode())]),
    }


@pytest.fixture(scope="module")
def lab():
    return running_dns_lab()


def write_config(directory: Path, dovecot: DovecotInstance, lab, folder: str, *, scenario: str = "imaps-good",
                 processed: str = "leave") -> Path:
    endpoint = dovecot.endpoints[scenario]
    (directory / "password").write_text(REPORTS_PASSWORD + "\n")
    security = "tls" if scenario.startswith("imaps") else "starttls"
    nameserver = lab.resolver.nameservers[0]
    extra = {"leave": "", "flag": "    processed: flag\n    processed_flag: $MailsecDone\n",
             "move": "    processed: move\n    processed_folder: " + folder + "-done\n"}[processed]
    config = directory / "config.yml"
    config.write_text(f"""\
global: {{jitter: 0s}}
dns:
  nameservers: ["{nameserver.address}:{nameserver.port}"]
domain_checks: {{probe_mx: false, interval: 1h}}
domains:
  - name: {DOMAIN}
    labels: {{team: mail}}
reports:
  state_file: state.json
  limits: {{max_message_bytes: 20MiB}}
  imap:
    host: {endpoint.host}
    port: {endpoint.port}
    security: {security}
    server_name: {endpoint.server_name}
    ca_file: {endpoint.ca_file}
    username: reports
    password_file: password
    folder: {folder}
    timeout: 20s
{extra}""")
    return config


def metric_lines(exporter: Exporter, name: str) -> dict[str, float]:
    text = generate_latest(exporter.registry).decode()
    return {match.group(1): float(match.group(2))
            for match in re.finditer(rf"^({name}(?:\{{.*\}})?) (\S+)$", text, re.MULTILINE)}


def value(exporter: Exporter, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    found = 0.0
    for series, number in metric_lines(exporter, name).items():
        if all(f'{key}="{text}"' in series for key, text in labels.items()):
            found += number
    return found


async def polled(config: Path) -> Exporter:
    exporter = Exporter(str(config))
    exporter.reload()
    status = await exporter.reports.poll_once()
    assert status.success, status.detail
    return exporter


@pytest.mark.parametrize("scenario", ["imaps-good", "imap-good"], ids=["imaps", "starttls"])
async def test_real_shaped_reports_from_dovecot_are_counted(tmp_path, dovecot_server, lab, scenario):
    folder = f"R{uuid.uuid4().hex[:8]}"
    for raw in mails().values():
        dovecot_server.append(folder, raw)
    exporter = await polled(write_config(tmp_path, dovecot_server, lab, folder, scenario=scenario))
    try:
        assert exporter.reports.poll_status.mails == 6
        messages = "mailsec_dmarc_report_messages_total"
        # Google: 12 passing from 127.77.1.20 (good.test's SPF authorizes 127.77.1.0/24), 5 failing from outside.
        assert value(exporter, messages, domain=DOMAIN, reporter="google.com", source="authorized", dmarc="pass",
                     disposition="none", team="mail") == 12
        assert value(exporter, messages, reporter="google.com", source="unauthorized", dmarc="fail") == 5
        assert value(exporter, messages, reporter="enterprise outlook", disposition="quarantine",
                     source="unauthorized") == 3
        assert value(exporter, messages, reporter="yahoo", disposition="reject", dkim="fail", spf="fail") == 1
        assert value(exporter, "mailsec_reports_accepted_total", kind="dmarc", domain=DOMAIN) == 3
        assert value(exporter, "mailsec_tlsrpt_successful_sessions_total", domain=DOMAIN, policy_type="sts") == 120
        # mx1.good.test is not probed here (probe_mx: false): its failures are labelled other.
        assert value(exporter, "mailsec_tlsrpt_failed_sessions_total", result_type="certificate-expired",
                     mx="other") == 2
        assert value(exporter, "mailsec_reports_rejected_total", kind="dmarc", reason="unknown_domain") == 1
        assert value(exporter, "mailsec_reports_rejected_total", kind="unknown", reason="no_report") == 1
        assert value(exporter, "mailsec_reports_imap_poll_success") == 1
        assert value(exporter, "mailsec_reports_last_received_timestamp_seconds", kind="tlsrpt",
                     reporter="google inc.") > time.time() - 60
        # The selector of Google's passing signature feeds the DKIM check; the forged one does not.
        assert exporter.reports.reported_selectors(DOMAIN) == ("google2024",)
    finally:
        await exporter.stop()


async def test_a_second_exporter_with_the_same_state_counts_nothing_again(tmp_path, dovecot_server, lab):
    folder = f"R{uuid.uuid4().hex[:8]}"
    dovecot_server.append(folder, mails()["google zip"])
    config = write_config(tmp_path, dovecot_server, lab, folder)
    first = await polled(config)
    assert value(first, "mailsec_dmarc_report_messages_total") == 17
    await first.stop()
    # The same report delivered again (a sender's retry) and a new one.
    dovecot_server.append(folder, mails()["google zip"])
    dovecot_server.append(folder, report_mail([("n.xml", "text/xml", with_id(ours(GOOGLE_DMARC), "new").encode())]))
    second = await polled(config)
    try:
        assert second.reports.poll_status.mails == 2          # the first mail is not read again
        assert value(second, "mailsec_dmarc_report_messages_total") == 17   # only the new report
        assert value(second, "mailsec_reports_rejected_total", reason="duplicate") == 1
        third_poll = await second.reports.poll_once()
        assert third_poll.mails == 0
    finally:
        await second.stop()


def _flags_and_count(dovecot: DovecotInstance, folder: str) -> tuple[int, list[bytes]]:
    session = dovecot.imaps()
    try:
        status, data = session.select(f'"{folder}"')
        count = int(data[0]) if status == "OK" else -1
        flags = session.fetch("1:*", "(FLAGS)")[1] if count > 0 else []
        return count, [item for item in flags if item]
    finally:
        session.logout()


@pytest.mark.parametrize("processed", ["flag", "move"])
async def test_processed_mail_is_flagged_or_moved(tmp_path, dovecot_server, lab, processed):
    folder = f"R{uuid.uuid4().hex[:8]}"
    dovecot_server.append(folder, mails()["google zip"])
    dovecot_server.append(folder, mails()["no report"])
    exporter = await polled(write_config(tmp_path, dovecot_server, lab, folder, processed=processed))
    await exporter.stop()
    count, flags = _flags_and_count(dovecot_server, folder)
    if processed == "flag":
        assert count == 2 and all(b"$MailsecDone" in item for item in flags)
        assert all(b"\\Seen" not in item for item in flags)      # read with BODY.PEEK: still unread
    else:
        assert count == 0
        assert _flags_and_count(dovecot_server, folder + "-done")[0] == 2


def _bytes_sent_to(dovecot: DovecotInstance, since: int) -> list[int]:
    """The out= byte counts of the IMAP sessions of `reports` that Dovecot logged after offset `since`."""
    text = dovecot.log_file.read_text(errors="replace")[since:]
    return [int(n) for n in re.findall(r"imap\(reports\).*Logged out in=\d+ out=(\d+)", text)]


async def test_hostile_mails_are_rejected_and_a_100mb_mail_is_not_downloaded(tmp_path, dovecot_server, lab):
    folder = f"R{uuid.uuid4().hex[:8]}"
    for raw in hostile_mails().values():
        dovecot_server.append(folder, raw)
    # 100 MB of base64 attachment, written into the Maildir as a local delivery agent would.
    huge = report_mail([("huge.xml.gz", "application/gzip", bytes(75 * 1024 * 1024))])
    assert len(huge) > 100_000_000
    dovecot_server.deliver_maildir(folder, huge)
    log_offset = len(dovecot_server.log_file.read_text(errors="replace"))
    started = time.monotonic()
    exporter = await polled(write_config(tmp_path, dovecot_server, lab, folder))
    try:
        assert time.monotonic() - started < 30
        assert exporter.reports.poll_status.mails == 8
        rejected = "mailsec_reports_rejected_total"
        assert value(exporter, rejected, reason="too_large") == 3            # two bombs, the 100 MB mail
        assert value(exporter, rejected, reason="too_large", kind="unknown") >= 1
        assert value(exporter, rejected, reason="bad_xml") == 2              # billion laughs, external entity
        assert value(exporter, rejected, reason="schema") == 1               # the malformed date
        assert value(exporter, rejected, reason="bad_archive") == 1
        # The mail after all of them is counted: nothing blocked the poller.
        assert value(exporter, "mailsec_reports_accepted_total", kind="dmarc") == 1
    finally:
        await exporter.stop()
    sent = _bytes_sent_to(dovecot_server, log_offset)
    assert sent and max(sent) < 5_000_000, sent        # the 100 MB mail never crossed the wire
