"""Metrics and reports of a deep TLS scan result, built by hand so every value is known."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.metrics.specs import Families
from exporter.config import Target
from exporter.results import FailureReason
from exporter.tlsscan.connection import FlightEnd, ServerFlight
from exporter.tlsscan.report import render_table, summary_json, to_json
from exporter.web.status import _scan_row
from exporter.tlsscan.results import (
    AcceptedCipher, ClientRenegotiation, GroupSupport, Resumption, SessionResumption, TLSScanResult, VersionSupport,
)
from exporter.tlsscan.scanner import answer_to
from exporter.tlsscan.stapling import StapledResponse, StapledStatus
from exporter.metrics.tlsscan import TLSSCAN_METRICS, add_scan_samples
from exporter.tlswire import NamedGroup, ProtocolVersion as V
from exporter.tlswire.grading import Class
from exporter.tlswire.parse import Alert, ServerHello

TARGET = Target(host="mx.example.test", port=25, module="smtp")
STAPLE = StapledResponse(StapledStatus.REVOKED, this_update=1000.0, next_update=90000.0)
RESUMPTION = SessionResumption(Resumption(False, "not resumed", V.TLS1_2), Resumption(True, "resumed", V.TLS1_3),
                               ticket_lifetime_hint=7200)
RENEGOTIATION = ClientRenegotiation(True, 10, "accepted 10 in a row")

RESULT = TLSScanResult(
    success=False, failure=FailureReason.TIMEOUT, failure_detail="budget", observed_at=1000.0,
    duration_seconds=12.5, connections=17, address="127.0.0.1",
    versions=(VersionSupport(V.TLS1_2, True, "accepted"), VersionSupport(V.TLS1_0, False, "alert_protocol_version")),
    ciphers=(AcceptedCipher(V.TLS1_2, 0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Class.SUFFICIENT),
             AcceptedCipher(V.TLS1_2, 0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", Class.INSUFFICIENT)),
    server_cipher_order=((V.TLS1_2, False),),
    groups=(GroupSupport(V.TLS1_2, NamedGroup.X25519, Class.GOOD), GroupSupport(V.TLS1_3, NamedGroup.X25519, Class.GOOD)),
    normal_client_groups=(GroupSupport(V.TLS1_2, NamedGroup.SECP256R1, Class.GOOD),),
    dh_min_size=1024, dh_grade=Class.INSUFFICIENT, secure_renegotiation=True, compression=False,
    cipher_order_violation=True, grade=Class.INSUFFICIENT,
)


def samples(result: TLSScanResult) -> dict[tuple[str, frozenset], float]:
    families = Families(TLSSCAN_METRICS)
    add_scan_samples(families, TARGET, result)
    base = {"target": "mx.example.test:25", "module": "smtp"}
    out = {}
    for family in families:
        for sample in family.samples:
            extra = {k: v for k, v in sample.labels.items() if k not in base}
            assert {k: sample.labels[k] for k in base} == base
            out[(sample.name, frozenset(extra.items()))] = sample.value
    return out


def test_scan_samples():
    got = samples(RESULT)
    assert got[("mailsec_tls_scan_success", frozenset())] == 0
    assert got[("mailsec_tls_scan_failure_info", frozenset({("reason", "timeout")}))] == 1
    assert got[("mailsec_tls_scan_connections", frozenset())] == 17
    assert got[("mailsec_tls_protocol_supported", frozenset({("version", "TLSv1.2")}))] == 1
    assert got[("mailsec_tls_normal_client_group", frozenset({("version", "TLSv1.2"), ("group", "secp256r1"),
                                                              ("class", "good")}))] == 1
    assert got[("mailsec_tls_cipher_order_violation", frozenset())] == 1
    assert got[("mailsec_tls_protocol_supported", frozenset({("version", "TLSv1.0")}))] == 0
    assert got[("mailsec_tls_cipher_accepted", frozenset({("version", "TLSv1.2"), ("class", "insufficient"),
                                                          ("cipher", "TLS_RSA_WITH_AES_128_CBC_SHA")}))] == 1
    counts = {dict(labels)["class"]: value for (name, labels), value in got.items()
              if name == "mailsec_tls_ciphers_accepted"}
    assert counts == {"good": 0, "sufficient": 1, "phase_out": 0, "insufficient": 1}
    assert got[("mailsec_tls_grade", frozenset())] == 0
    assert got[("mailsec_tls_dh_min_size", frozenset())] == 1024
    assert [dict(l)["group"] for (n, l) in got if n == "mailsec_tls_group_supported"] == ["x25519"]
    assert got[("mailsec_tls_server_cipher_order", frozenset({("version", "TLSv1.2")}))] == 0
    assert got[("mailsec_tls_secure_renegotiation", frozenset())] == 1
    assert got[("mailsec_tls_compression", frozenset())] == 0
    assert ("mailsec_tls_ocsp_stapling", frozenset()) not in got       # unknown: absent


@pytest.mark.parametrize("grade, value", [(Class.GOOD, 3), (Class.SUFFICIENT, 2), (Class.PHASE_OUT, 1),
                                          (Class.INSUFFICIENT, 0)])
def test_grade_scale(grade: Class, value: int):
    assert samples(replace(RESULT, grade=grade))[("mailsec_tls_grade", frozenset())] == value


def test_every_family_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "metrics.md").read_text()
    headings = set(re.findall(r"^### (\S+)$", doc, re.MULTILINE))
    assert {spec.name for spec in TLSSCAN_METRICS} <= headings


def test_server_cipher_order_is_one_series_per_version_with_a_verdict():
    result = replace(RESULT, server_cipher_order=((V.TLS1_3, True), (V.TLS1_2, False)))
    orders = {dict(labels)["version"]: value for (name, labels), value in samples(result).items()
              if name == "mailsec_tls_server_cipher_order"}
    assert orders == {"TLSv1.3": 1, "TLSv1.2": 0}
    no_verdict = samples(replace(RESULT, server_cipher_order=()))
    assert not any(name == "mailsec_tls_server_cipher_order" for name, _ in no_verdict)


def test_reports():
    assert json.loads(json.dumps(to_json(RESULT)))["ciphers"][1]["code"] == "0x002f"
    table = render_table(RESULT)
    assert "FAILED: timeout" in table
    assert re.search(r"TLS_RSA_WITH_AES_128_CBC_SHA +insufficient\n", table)
    assert "TLSv1.0  not supported (alert_protocol_version)" in table
    assert "1024 bits (insufficient)" in table


def _hello(version: int, code: int) -> ServerHello:
    extensions = ((43, version.to_bytes(2, "big")),) if version >= V.TLS1_3 else ()
    return ServerHello(min(version, 0x0303), bytes(32), b"", code, 0, extensions)


@pytest.mark.parametrize("flight, version, expected", [
    (ServerFlight(FlightEnd.COMPLETE, server_hello=_hello(0x0303, 0x002F)), V.TLS1_2, (0x002F, "accepted")),
    (ServerFlight(FlightEnd.COMPLETE, server_hello=_hello(0x0303, 0x002F)), V.TLS1_0, (None, "answered_TLSv1.2")),
    (ServerFlight(FlightEnd.COMPLETE, server_hello=_hello(0x0304, 0x1301)), V.TLS1_3, (0x1301, "accepted")),
    (ServerFlight(FlightEnd.COMPLETE, server_hello=_hello(0x0303, 0x0005)), V.TLS1_2, (None, "suite_not_offered")),
    (ServerFlight(FlightEnd.ALERT, alert=Alert(2, 70)), V.TLS1_1, (None, "alert_protocol_version")),
    (ServerFlight(FlightEnd.CLOSED), V.TLS1_2, (None, "closed")),
    (ServerFlight(FlightEnd.TIMEOUT), V.TLS1_2, (None, "timeout")),
    (ServerFlight(FlightEnd.PROTOCOL_ERROR), V.TLS1_2, (None, "protocol_error")),
])
def test_answer_to(flight: ServerFlight, version: V, expected):
    assert answer_to(flight, version, [0x002F, 0x1301]) == expected


def test_ocsp_staple_samples():
    got = samples(replace(RESULT, ocsp_stapling=True, ocsp_staple=STAPLE))
    assert got[("mailsec_tls_ocsp_stapling", frozenset())] == 1
    assert got[("mailsec_tls_ocsp_staple_status", frozenset({("status", "revoked")}))] == 1
    assert got[("mailsec_tls_ocsp_staple_next_update_timestamp_seconds", frozenset())] == 90000.0
    assert to_json(replace(RESULT, ocsp_staple=STAPLE))["ocsp_staple"] == {
        "status": "revoked", "this_update": 1000.0, "next_update": 90000.0}
    assert "OCSP stapling:           yes (certificate revoked, valid until 1970-01-02" in render_table(
        replace(RESULT, ocsp_stapling=True, ocsp_staple=STAPLE))


def test_status_page_row_shows_the_named_checks():
    summary = summary_json(replace(RESULT, fallback_scsv=False, starttls_injection=True, ocsp_stapling=True,
                                   ocsp_staple=STAPLE))
    assert summary["normal_client_groups"] == {"TLSv1.2": "secp256r1"}
    assert (summary["fallback_scsv"], summary["starttls_injection_vulnerable"]) == (False, True)
    row = _scan_row({"target": "mx.example.test:25", "module": "smtp", "deep_scan": summary})
    assert "key exchange: secp256r1 (TLSv1.2)" in row
    assert 'fallback SCSV: <span class="fail">no</span>' in row
    assert 'STARTTLS injection: <span class="fail">yes</span>' in row
    assert 'cipher order violation: <span class="fail">yes</span>' in row
    assert "OCSP staple: yes <small>until 1970-01-02" in row


def test_session_samples_and_lines():
    result = replace(RESULT, session_resumption=RESUMPTION, client_renegotiation=RENEGOTIATION)
    got = samples(result)
    assert got[("mailsec_tls_session_resumption_supported", frozenset({("mechanism", "session_id")}))] == 0
    assert got[("mailsec_tls_session_resumption_supported", frozenset({("mechanism", "ticket")}))] == 1
    assert got[("mailsec_tls_session_ticket_lifetime_hint_seconds", frozenset())] == 7200
    assert got[("mailsec_tls_client_renegotiation_accepted", frozenset())] == 1
    assert got[("mailsec_tls_client_renegotiations_accepted", frozenset())] == 10
    table = render_table(result)
    assert ("session resumption:      by ID no (not resumed, TLSv1.2), "
            "by ticket yes (resumed, TLSv1.3, lifetime hint 7200 s)") in table
    assert "client renegotiation:    ACCEPTED (accepted 10 in a row)" in table
    assert to_json(result)["session_resumption"]["ticket"] == {"resumed": True, "detail": "resumed", "version": "TLSv1.3"}
    assert to_json(result)["client_renegotiation"] == {"accepted": True, "in_a_row": 10, "detail": "accepted 10 in a row"}
    row = _scan_row({"target": "mx.example.test:25", "module": "smtp", "deep_scan": summary_json(result)})
    assert 'client renegotiation: <span class="fail">yes</span> <small>(10 in a row)</small>' in row
    assert "session resumption: by ID no, by ticket yes" in row


@pytest.mark.parametrize("resumption, renegotiation, absent", [
    # No verdict: no sample, never a fake 0.
    (SessionResumption(Resumption(None, "no TLS 1.2 (TLS 1.3 resumes by ticket only)"), Resumption(False, "no ticket given", V.TLS1_3)),
     ClientRenegotiation(None, None, "no TLS 1.2 (TLS 1.3 has no renegotiation)"),
     {("mailsec_tls_session_resumption_supported", frozenset({("mechanism", "session_id")})),
      ("mailsec_tls_session_ticket_lifetime_hint_seconds", frozenset()),
      ("mailsec_tls_client_renegotiation_accepted", frozenset()),
      ("mailsec_tls_client_renegotiations_accepted", frozenset())}),
    (None, ClientRenegotiation(True, None, "accepted 3 before the 5 s timeout"),
     {("mailsec_tls_client_renegotiations_accepted", frozenset())}),
])
def test_session_facts_without_a_verdict_have_no_sample(resumption, renegotiation, absent):
    got = samples(replace(RESULT, session_resumption=resumption, client_renegotiation=renegotiation))
    assert absent.isdisjoint(got)
    assert "unknown" in render_table(replace(RESULT, client_renegotiation=ClientRenegotiation(None, None, "x")))
