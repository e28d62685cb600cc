"""The pure report parsers: archives with limits, DMARC XML (RFC 7489 and DMARCbis), TLS-RPT
JSON, report mails; real-shaped reports and the hostile set, table-driven."""

from __future__ import annotations

import http.server
import ipaddress
import threading
import time

import pytest

from exporter.reports.archive import RATIO_FLOOR_BYTES, UnpackLimits, gunzip, unpack
from exporter.reports.common import RejectReason, ReportKind, ReportRejected
from exporter.reports.dmarc import AuthResult, Disposition, parse_dmarc_report
from exporter.reports.mail import kind_of_content, report_attachments
from exporter.reports.tlsrpt import PolicyType, ResultType, parse_tlsrpt_report
from tests.reportfixtures import (
    BEGIN, BILLION_LAUGHS, DMARCBIS_DMARC, END, GOOGLE_DMARC, MICROSOFT_DMARC, YAHOO_DMARC, external_entity,
    google_dmarc_mail, google_tlsrpt, google_tlsrpt_mail, gzip_bomb, gzipped, json_bytes, microsoft_dmarc_mail,
    microsoft_tlsrpt, report_mail, yahoo_dmarc_mail, zip_bomb, zipped,
)

LIMITS = UnpackLimits(max_compressed_bytes=10 << 20, max_decompressed_bytes=50 << 20, max_ratio=200)


def rejected(call, *args) -> RejectReason:
    with pytest.raises(ReportRejected) as caught:
        call(*args)
    return caught.value.reason


# --- archives ------------------------------------------------------------------------------

XML = GOOGLE_DMARC.encode()


@pytest.mark.parametrize("packed", [XML, gzipped(XML), zipped(XML), gzipped(XML[:100]) + gzipped(XML[100:])],
                         ids=["plain", "gzip", "zip", "gzip two members"])
def test_unpack_gives_the_report_back(packed):
    assert unpack(packed, LIMITS) == XML


@pytest.mark.parametrize("packed, reason", [
    (b"x" * (10 << 20) + b"x", RejectReason.TOO_LARGE),                   # over the compressed limit: not decoded
    (gzipped(XML)[:-12], RejectReason.BAD_ARCHIVE),                       # truncated gzip
    (b"\x1f\x8b\x08\x00garbage-not-deflate", RejectReason.BAD_ARCHIVE),
    (gzipped(XML) + b"trailing junk", RejectReason.BAD_ARCHIVE),
    (b"PK\x03\x04 not really a zip", RejectReason.BAD_ARCHIVE),
    (zipped(XML)[:60] + bytes([zipped(XML)[60] ^ 0xFF]) + zipped(XML)[61:], RejectReason.BAD_ARCHIVE),
], ids=["100MB-style too large", "truncated gzip", "not deflate", "trailing junk", "not a zip", "corrupt zip data"])
def test_broken_or_oversized_archives_are_refused(packed, reason):
    assert rejected(unpack, packed, LIMITS) is reason


def test_a_zip_with_two_files_is_refused():
    import io
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.xml", XML)
        archive.writestr("b.xml", XML)
    assert rejected(unpack, buffer.getvalue(), LIMITS) is RejectReason.BAD_ARCHIVE


@pytest.mark.parametrize("bomb", [gzip_bomb, zip_bomb], ids=["gzip bomb", "zip bomb"])
def test_bombs_are_refused_quickly_without_unpacking_them(bomb):
    data = bomb()
    assert len(data) < 300_000
    started = time.process_time()
    assert rejected(unpack, data, LIMITS) is RejectReason.TOO_LARGE
    # Stopping at the limit: at most ~50 MB inflated, not 256 MiB.
    assert time.process_time() - started < 1.0


def test_a_zip_that_declares_a_small_size_still_stops_at_the_limit():
    liar = zip_bomb(declared=1000)            # the header says 1000 bytes; the data is 256 MiB of zeros
    assert rejected(unpack, liar, LIMITS) in (RejectReason.TOO_LARGE, RejectReason.BAD_ARCHIVE)


def test_the_ratio_limit_applies_above_the_floor():
    data = gzipped(bytes(RATIO_FLOOR_BYTES * 3))          # ~3 MiB of zeros in a few KB
    strict = UnpackLimits(10 << 20, 50 << 20, max_ratio=10)
    assert rejected(unpack, data, strict) is RejectReason.TOO_LARGE
    assert len(unpack(data, UnpackLimits(10 << 20, 50 << 20, max_ratio=100000))) == RATIO_FLOOR_BYTES * 3
    # Below the floor, a high ratio is no reason: small files compress badly anyway.
    assert gunzip(gzipped(bytes(1000)), RATIO_FLOOR_BYTES) == bytes(1000)


# --- DMARC ---------------------------------------------------------------------------------

@pytest.mark.parametrize("xml, expected", [
    (GOOGLE_DMARC, ("google.com", "noreply-dmarc-support@google.com", "5717107811868587391",
                    [("192.0.2.10", 12, Disposition.NONE, AuthResult.PASS, AuthResult.PASS, AuthResult.PASS),
                     ("198.51.100.77", 5, Disposition.NONE, AuthResult.FAIL, AuthResult.FAIL, AuthResult.FAIL)])),
    (MICROSOFT_DMARC, ("Enterprise Outlook", "dmarcreport@microsoft.com", "a1b2c3d4e5f6478899aabbccddeeff00",
                       [("203.0.113.7", 3, Disposition.QUARANTINE, AuthResult.FAIL, AuthResult.FAIL, AuthResult.FAIL)])),
    (YAHOO_DMARC, ("Yahoo", "dmarchelp@yahooinc.com", "1700006400.123456",
                   [("2001:db8::25", 1, Disposition.REJECT, AuthResult.FAIL, AuthResult.FAIL, AuthResult.FAIL)])),
    # DMARCbis: namespaced, "pass" disposition read as none, aligned DKIM alone passes DMARC.
    (DMARCBIS_DMARC, ("Example Receiver", "dmarc@receiver.example", "bis-2024-0001",
                      [("192.0.2.11", 4, Disposition.NONE, AuthResult.PASS, AuthResult.FAIL, AuthResult.PASS)])),
], ids=["google", "microsoft", "yahoo", "dmarcbis"])
def test_real_shaped_dmarc_reports(xml, expected):
    report = parse_dmarc_report(xml.encode())
    org, email, report_id, rows = expected
    assert (report.org_name, report.email, report.report_id) == (org, email, report_id)
    assert report.domain == "example.org" and report.begin == BEGIN and report.end in (END, END + 1)
    assert [(str(r.source_ip), r.count, r.disposition, r.dkim, r.spf, r.dmarc) for r in report.rows] == rows


def test_dkim_signatures_keep_domain_selector_and_result():
    rows = parse_dmarc_report(GOOGLE_DMARC.encode()).rows
    assert [(s.domain, s.selector, s.result) for s in rows[0].dkim_signatures] == [("example.org", "google2024", "pass")]
    assert [(s.domain, s.selector, s.result) for s in rows[1].dkim_signatures] == [("example.org", "forged", "fail")]


def _edit(old: str, new: str) -> bytes:
    assert old in GOOGLE_DMARC
    return GOOGLE_DMARC.replace(old, new, 1).encode()


@pytest.mark.parametrize("data, reason", [
    (b"", RejectReason.BAD_XML),
    (b"<feedback><unclosed></feedback>", RejectReason.BAD_XML),
    (BILLION_LAUGHS, RejectReason.BAD_XML),
    (external_entity("file:///etc/passwd"), RejectReason.BAD_XML),
    (b"<html><body>not a report</body></html>", RejectReason.SCHEMA),
    (_edit(f"<begin>{BEGIN}</begin>", "<begin>yesterday</begin>"), RejectReason.SCHEMA),
    (_edit(f"<begin>{BEGIN}</begin>", "<begin>-5</begin>"), RejectReason.SCHEMA),
    (_edit(f"<end>{END}</end>", "<end>1</end>"), RejectReason.SCHEMA),            # ends before it begins
    (_edit(f"<begin>{BEGIN}</begin>", "<begin>" + "9" * 5000 + "</begin>"), RejectReason.SCHEMA),
    (_edit("<report_id>5717107811868587391</report_id>", ""), RejectReason.SCHEMA),
    (_edit("<org_name>google.com</org_name>", "<org_name> </org_name>"), RejectReason.SCHEMA),
    (_edit("<source_ip>192.0.2.10</source_ip>", "<source_ip>192.0.2.300</source_ip>"), RejectReason.SCHEMA),
    (_edit("<count>12</count>", "<count>twelve</count>"), RejectReason.SCHEMA),
    (_edit("<disposition>none</disposition>", "<disposition>discard</disposition>"), RejectReason.SCHEMA),
    (_edit("<dkim>pass</dkim>", "<dkim>maybe</dkim>"), RejectReason.SCHEMA),
    (_edit("<domain>example.org</domain>", ""), RejectReason.SCHEMA),
], ids=["empty", "not well-formed", "billion laughs", "external entity file", "not feedback", "date text",
        "date negative", "end before begin", "date 5000 digits", "no report id", "blank org", "bad ip", "count text",
        "unknown disposition", "unknown dkim result", "no policy domain"])
def test_bad_dmarc_reports_are_rejected_with_their_reason(data, reason):
    assert rejected(parse_dmarc_report, data) is reason


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):
        _Recorder.requests.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"google.com")

    def log_message(self, *args):
        pass


def test_an_external_entity_url_on_loopback_is_never_fetched():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/xxe"
        assert rejected(parse_dmarc_report, external_entity(url)) is RejectReason.BAD_XML
        time.sleep(0.2)     # a fetch, had there been one, would have arrived by now
        assert _Recorder.requests == []
    finally:
        server.shutdown()
        server.server_close()


# --- TLS-RPT -------------------------------------------------------------------------------

def test_google_tlsrpt():
    report = parse_tlsrpt_report(json_bytes(google_tlsrpt()))
    assert (report.org_name, report.contact, report.report_id) == (
        "Google Inc.", "smtp-tls-reporting@google.com", "2023-11-15T00:00:00Z_example.org")
    assert report.begin == 1700006400 and report.end == 1700092799
    [policy] = report.policies
    assert (policy.policy_type, policy.domain, policy.successful, policy.failed) == (PolicyType.STS, "example.org", 120, 2)
    assert [(f.result_type, f.receiving_mx, f.sessions) for f in policy.failures] == [
        (ResultType.CERTIFICATE_EXPIRED, "mx1.example.org", 2)]


def test_microsoft_tlsrpt_unknown_result_types_and_undetailed_failures_are_other():
    report = parse_tlsrpt_report(json_bytes(microsoft_tlsrpt()))
    no_policy, tlsa = report.policies
    assert (no_policy.policy_type, no_policy.successful, no_policy.failed, no_policy.failures) == (
        PolicyType.NO_POLICY_FOUND, 40, 0, ())
    assert tlsa.policy_type is PolicyType.TLSA and tlsa.failed == 3
    # One detail per known type, the invented one as other, the session without details as other.
    assert [(f.result_type, f.receiving_mx, f.sessions) for f in tlsa.failures] == [
        (ResultType.TLSA_INVALID, "mx2.example.org", 1), (ResultType.OTHER, None, 1), (ResultType.OTHER, None, 1)]


def _tls(**changes) -> bytes:
    document = google_tlsrpt()
    for path, value in changes.items():
        target = document
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key.replace("_", "-")]
        target[keys[-1].replace("_", "-")] = value
    return json_bytes(document)


@pytest.mark.parametrize("data, reason", [
    (b"{not json", RejectReason.BAD_JSON),
    (b"[" * 100_000 + b"]" * 100_000, RejectReason.BAD_JSON),          # nested too deeply
    (b"\xff\xfe garbage", RejectReason.BAD_JSON),
    (b"[]", RejectReason.SCHEMA),
    (_tls(date_range__start_datetime="2023-13-45T00:00:00Z"), RejectReason.SCHEMA),
    (_tls(date_range__start_datetime="yesterday"), RejectReason.SCHEMA),
    (_tls(date_range__end_datetime="2023-11-15T23:59:59"), RejectReason.SCHEMA),      # no offset
    (_tls(date_range__end_datetime="2023-11-14T00:00:00Z"), RejectReason.SCHEMA),     # before the start
    (_tls(report_id=5), RejectReason.SCHEMA),
    (_tls(policies="all of them"), RejectReason.SCHEMA),
    (_tls(policies__0__policy__policy_type="dane"), RejectReason.SCHEMA),
    (_tls(policies__0__summary__total_failure_session_count=-1), RejectReason.SCHEMA),
    (_tls(policies__0__summary__total_successful_session_count=True), RejectReason.SCHEMA),
    (_tls(policies__0__summary__total_successful_session_count=10**30), RejectReason.SCHEMA),
    (_tls(policies__0__failure_details="none"), RejectReason.SCHEMA),
], ids=["not json", "deep nesting", "not utf-8", "array", "bad month", "date text", "no offset", "end before start",
        "id number", "policies text", "policy type", "negative count", "bool count", "huge count", "details text"])
def test_bad_tlsrpt_reports_are_rejected_with_their_reason(data, reason):
    assert rejected(parse_tlsrpt_report, data) is reason


# --- mails ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mail, kind, report", [
    (google_dmarc_mail(), ReportKind.UNKNOWN, GOOGLE_DMARC.encode()),
    (microsoft_dmarc_mail(), ReportKind.DMARC, MICROSOFT_DMARC.encode()),
    (yahoo_dmarc_mail(), ReportKind.DMARC, YAHOO_DMARC.encode()),
    (google_tlsrpt_mail(), ReportKind.TLSRPT, json_bytes(google_tlsrpt())),
], ids=["google zip", "microsoft gzip", "yahoo zip", "google tlsrpt"])
def test_report_mails_give_their_attachment(mail, kind, report):
    [attachment] = report_attachments(mail, max_attachments=5)
    assert attachment.kind is kind
    assert unpack(attachment.data, LIMITS) == report
    assert kind_of_content(report) is (ReportKind.TLSRPT if report.startswith(b"{") else ReportKind.DMARC)


def test_mails_without_reports_or_with_too_many_are_rejected():
    assert rejected(report_attachments, report_mail([]), 5) is RejectReason.NO_REPORT
    assert rejected(report_attachments, report_mail([("x.pdf", "application/pdf", b"%PDF")]), 5) is RejectReason.NO_REPORT
    many = report_mail([(f"r{n}.xml.gz", "application/gzip", gzipped(XML)) for n in range(6)])
    assert rejected(report_attachments, many, 5) is RejectReason.TOO_MANY_ATTACHMENTS
    assert len(report_attachments(many, 6)) == 6
    assert rejected(report_attachments, b"\x00\xff garbage, not a mail", 5) is RejectReason.NO_REPORT


def test_ip_addresses_are_parsed_as_addresses():
    assert parse_dmarc_report(YAHOO_DMARC.encode()).rows[0].source_ip == ipaddress.ip_address("2001:db8::25")
