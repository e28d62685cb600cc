"""The ledger: each report counted once, across restarts through the state file; reporters
capped; selectors remembered; the state file written atomically and kept small."""

from __future__ import annotations

import json
import os

import pytest

from exporter.reports.common import RejectReason, ReportKind, ReportRejected
from exporter.reports.dmarc import parse_dmarc_report
from exporter.reports.ingest import (
    OTHER, DMARCKey, ReportLedger, SourceClass, TLSFailureKey, normalise_reporter, report_identity,
)
from exporter.reports.tlsrpt import PolicyType, ResultType, parse_tlsrpt_report
from tests.reportfixtures import (
    GOOGLE_DMARC, MICROSOFT_DMARC, YAHOO_DMARC, google_tlsrpt, json_bytes, microsoft_tlsrpt, with_id,
)

DAY = 86400.0


class Clock:
    def __init__(self, now: float = 1_700_100_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger(path, clock=None, slots=20, retention=30 * DAY) -> ReportLedger:
    book = ReportLedger(str(path) if path else None, retention, slots, clock or Clock())
    book.load()
    return book


def google(report_id: str | None = None):
    return parse_dmarc_report((with_id(GOOGLE_DMARC, report_id) if report_id else GOOGLE_DMARC).encode())


@pytest.mark.parametrize("org, label", [
    ("google.com", "google.com"),
    ("Enterprise Outlook", "enterprise outlook"),
    ("  Yahoo\t Inc. ", "yahoo inc."),
    ('Evil"} 1\nlabel{x="', "evil 1 labelx"),
    ("ÄÖÜ", "unnamed"),
    ("a" * 200, "a" * 64),
])
def test_reporter_names_become_safe_label_values(org, label):
    assert normalise_reporter(org) == label


def test_identity_ignores_case_of_org_and_contact_but_not_the_report_id():
    same = report_identity(ReportKind.DMARC, "Google.com", "NoReply@google.com", "1")
    assert same == report_identity(ReportKind.DMARC, "google.com ", "noreply@google.com", "1")
    assert same != report_identity(ReportKind.DMARC, "google.com", "noreply@google.com", "2")
    assert same != report_identity(ReportKind.TLSRPT, "google.com", "noreply@google.com", "1")


def test_a_dmarc_report_is_counted_by_row_and_only_once(tmp_path):
    book = ledger(tmp_path / "state.json")
    report = google()
    sources = [SourceClass.AUTHORIZED, SourceClass.UNAUTHORIZED]
    book.record_dmarc(report, sources)
    with pytest.raises(ReportRejected) as caught:
        book.record_dmarc(report, sources)
    assert caught.value.reason is RejectReason.DUPLICATE
    counts = book.counts()
    assert counts.dmarc_messages == {
        DMARCKey("example.org", "google.com", "none", "pass", "pass", "pass", SourceClass.AUTHORIZED): 12,
        DMARCKey("example.org", "google.com", "none", "fail", "fail", "fail", SourceClass.UNAUTHORIZED): 5,
    }
    assert counts.accepted == {(ReportKind.DMARC, "example.org"): 1}
    assert counts.last_received == {(ReportKind.DMARC, "example.org", "google.com"): Clock().now}


def test_dedup_survives_a_restart_through_the_state_file(tmp_path):
    path = tmp_path / "state.json"
    first = ledger(path)
    first.record_dmarc(google(), [SourceClass.UNKNOWN] * 2)
    assert first.save()
    restarted = ledger(path)
    assert restarted.is_duplicate(ReportKind.DMARC, "google.com", "noreply-dmarc-support@google.com",
                                  "5717107811868587391")
    with pytest.raises(ReportRejected):
        restarted.record_dmarc(google(), [SourceClass.UNKNOWN] * 2)
    assert restarted.counts().dmarc_messages == {}          # counters restart from zero; nothing recounted
    restarted.record_dmarc(google("another-id"), [SourceClass.UNKNOWN] * 2)
    assert sum(restarted.counts().dmarc_messages.values()) == 17
    # The last-received times survive too: "reports stopped" does not fire after a restart.
    assert restarted.counts().last_received[ReportKind.DMARC, "example.org", "google.com"] == Clock().now


def test_ids_older_than_the_retention_are_pruned(tmp_path):
    clock = Clock()
    path = tmp_path / "state.json"
    book = ledger(path, clock, retention=10 * DAY)
    book.record_dmarc(google("old"), [SourceClass.UNKNOWN] * 2)
    clock.now += 11 * DAY
    book.record_dmarc(google("new"), [SourceClass.UNKNOWN] * 2)
    book.save()
    state = json.loads(path.read_text())
    assert len(state["seen"]) == 1
    assert not book.is_duplicate(ReportKind.DMARC, "google.com", "noreply-dmarc-support@google.com", "old")
    assert book.is_duplicate(ReportKind.DMARC, "google.com", "noreply-dmarc-support@google.com", "new")


def test_reporters_beyond_the_cap_are_other_and_keep_their_label(tmp_path):
    clock = Clock()
    book = ledger(None, clock, slots=2, retention=10 * DAY)
    book.record_dmarc(google(), [SourceClass.UNKNOWN] * 2)
    book.record_dmarc(parse_dmarc_report(MICROSOFT_DMARC.encode()), [SourceClass.UNKNOWN])
    book.record_dmarc(parse_dmarc_report(YAHOO_DMARC.encode()), [SourceClass.UNKNOWN])
    book.record_dmarc(google("second"), [SourceClass.UNKNOWN] * 2)
    reporters = {key.reporter for key in book.counts().dmarc_messages}
    assert reporters == {"google.com", "enterprise outlook", OTHER}
    # A slot held by a reporter silent for longer than the retention goes to the next one.
    clock.now += 11 * DAY
    book.save()
    book.record_dmarc(parse_dmarc_report(with_id(YAHOO_DMARC, "later").encode()), [SourceClass.UNKNOWN])
    assert any(key.reporter == "yahoo" for key in book.counts().dmarc_messages)


def test_tlsrpt_counts_sessions_with_mx_labels_of_watched_hosts_only(tmp_path):
    book = ledger(None)
    watched = {"mx1.example.org"}
    label = lambda mx: mx if mx in watched else OTHER
    book.record_tlsrpt(parse_tlsrpt_report(json_bytes(google_tlsrpt())), frozenset({"example.org"}), label)
    book.record_tlsrpt(parse_tlsrpt_report(json_bytes(microsoft_tlsrpt())), frozenset({"example.org"}), label)
    counts = book.counts()
    assert counts.tlsrpt_successful == {
        ("example.org", "google inc.", PolicyType.STS): 120,
        ("example.org", "microsoft corporation", PolicyType.NO_POLICY_FOUND): 40,
        ("example.org", "microsoft corporation", PolicyType.TLSA): 7,
    }
    assert counts.tlsrpt_failed == {
        TLSFailureKey("example.org", "google inc.", PolicyType.STS, ResultType.CERTIFICATE_EXPIRED, "mx1.example.org"): 2,
        TLSFailureKey("example.org", "microsoft corporation", PolicyType.TLSA, ResultType.TLSA_INVALID, OTHER): 1,
        TLSFailureKey("example.org", "microsoft corporation", PolicyType.TLSA, ResultType.OTHER, OTHER): 2,
    }


def test_policies_about_other_domains_are_skipped(tmp_path):
    book = ledger(None)
    document = google_tlsrpt()
    document["policies"].append(google_tlsrpt(domain="not-ours.example")["policies"][0])
    book.record_tlsrpt(parse_tlsrpt_report(json_bytes(document)), frozenset({"example.org"}), lambda mx: OTHER)
    assert {key[0] for key in book.counts().tlsrpt_successful} == {"example.org"}


def test_selectors_of_passing_signatures_by_the_domain_itself_are_remembered(tmp_path):
    path = tmp_path / "state.json"
    book = ledger(path)
    book.record_dmarc(google(), [SourceClass.UNKNOWN] * 2)                  # google2024 pass; "forged" failed
    book.record_dmarc(parse_dmarc_report(YAHOO_DMARC.encode()), [SourceClass.UNKNOWN])   # s1 by evil.example
    assert book.reported_selectors("example.org") == ("google2024",)
    book.save()
    assert ledger(path).reported_selectors("example.org") == ("google2024",)
    assert book.reported_selectors("other.example") == ()


def test_the_state_file_is_replaced_atomically_and_a_corrupt_one_is_not_fatal(tmp_path):
    path = tmp_path / "state.json"
    book = ledger(path)
    book.record_dmarc(google(), [SourceClass.UNKNOWN] * 2)
    assert book.save() and book.last_save_ok
    assert sorted(os.listdir(tmp_path)) == ["state.json"]          # no temporary left behind
    path.write_text("{ half a documen")
    again = ledger(path)                                             # logged, starts afresh
    assert not again.is_duplicate(ReportKind.DMARC, "google.com", "noreply-dmarc-support@google.com",
                                  "5717107811868587391")
    assert again.save() and json.loads(path.read_text())["version"] == 1


def test_an_unwritable_state_file_is_reported_not_raised(tmp_path):
    book = ledger(tmp_path / "missing-directory" / "state.json")
    book.record_dmarc(google(), [SourceClass.UNKNOWN] * 2)
    assert book.save() is False and book.last_save_ok is False
    assert list(tmp_path.iterdir()) == []


def test_imap_positions_are_kept(tmp_path):
    path = tmp_path / "state.json"
    book = ledger(path)
    assert book.imap_position("u@h:993/INBOX") is None
    book.set_imap_position("u@h:993/INBOX", 42, 7)
    book.save()
    assert ledger(path).imap_position("u@h:993/INBOX") == (42, 7)
