"""Blocklist results without DNS: "listed since" memory, metric samples, narrowing to a
domain, and the findings of the `check` report."""

from __future__ import annotations

from dataclasses import replace

from exporter.metrics.blocklists import BLOCKLIST_METRICS, add_blocklist_samples
from exporter.metrics.specs import Families
from exporter.reputation.blocklists import ListedSince
from exporter.reputation.report import failures, findings
from exporter.reputation.subjects import Origin, OriginKind, Subject

from blocklist_factory import DBL, ZEN, listed_result, unusable_result

T0 = 1_700_000_000.0


def samples(blocklist, result) -> dict[tuple, float]:
    families = Families(BLOCKLIST_METRICS)
    add_blocklist_samples(families, blocklist, result)
    return {(s.name, *sorted(s.labels.items())): s.value for family in families for s in family.samples}


def test_listed_since_is_the_first_run_that_saw_the_listing():
    memory = ListedSince()
    first = memory.stamp(listed_result(T0))
    assert [listing.listed_since for listing in first.listings] == [T0]
    again = memory.stamp(listed_result(T0 + 3600))
    assert [listing.listed_since for listing in again.listings] == [T0]


def test_a_failed_query_or_an_unusable_list_keeps_what_is_known_and_not_listed_forgets_it():
    memory = ListedSince()
    memory.stamp(listed_result(T0))
    # The listed address's query fails: nothing is learnt.
    memory.stamp(listed_result(T0 + 1, listed=(), failed=("192.0.2.1",)))
    # The list is unusable: nothing is learnt either (its listings are not trusted).
    assert memory.stamp(replace(unusable_result(), list_name="zen")).listings == ()
    assert memory.stamp(listed_result(T0 + 2)).listings[0].listed_since == T0
    # Answered "not listed": forgotten; a new listing starts a new time.
    memory.stamp(listed_result(T0 + 3, listed=(), others=("192.0.2.1",)))
    assert memory.stamp(listed_result(T0 + 4)).listings[0].listed_since == T0 + 4


def test_listed_since_is_per_list_and_removed_lists_are_forgotten():
    memory = ListedSince()
    memory.stamp(listed_result(T0))
    memory.stamp(replace(listed_result(T0 + 5), list_name="other"))
    memory.retain(["other"])
    assert memory.stamp(listed_result(T0 + 10)).listings[0].listed_since == T0 + 10
    assert memory.stamp(replace(listed_result(T0 + 10), list_name="other")).listings[0].listed_since == T0 + 5


def test_samples_of_a_usable_list():
    got = samples(ZEN, listed_result(T0))
    assert got == {
        ("mailsec_blocklist_listed", ("address", "192.0.2.1"), ("list", "zen"), ("meaning", "spam")): 1,
        ("mailsec_blocklist_listed", ("address", "192.0.2.1"), ("list", "zen"), ("meaning", "policy")): 1,
        ("mailsec_blocklist_listed", ("address", "192.0.2.2"), ("list", "zen"), ("meaning", "none")): 0,
        # 192.0.2.3's query failed: no verdict.
        ("mailsec_blocklist_listed_since_timestamp_seconds", ("address", "192.0.2.1"), ("list", "zen")): T0,
        ("mailsec_blocklist_usable", ("list", "zen")): 1,
        ("mailsec_blocklist_query_errors", ("list", "zen"), ("reason", "timeout")): 1,
        ("mailsec_blocklist_subjects", ("list", "zen")): 3,
        ("mailsec_blocklist_duration_seconds", ("list", "zen")): 0.25,
        ("mailsec_blocklist_last_run_timestamp_seconds", ("list", "zen")): T0,
        ("mailsec_blocklist_interval_seconds", ("list", "zen")): 3600,
    }


def test_samples_of_an_unusable_list_have_no_listings():
    got = samples(DBL, unusable_result())
    assert got[("mailsec_blocklist_failure_info", ("list", "dbl"), ("reason", "refused_by_list"))] == 1
    assert got[("mailsec_blocklist_usable", ("list", "dbl"))] == 0
    assert not [key for key in got if key[0].startswith("mailsec_blocklist_listed")]


def test_narrowing_to_a_domain():
    result = listed_result(T0, listed=("192.0.2.1", "192.0.2.9"))
    other = Subject("192.0.2.9", (Origin(OriginKind.MX_ADDRESS, "example.net", "mx.example.net"),))
    result = replace(result, subjects=tuple(s if s.value != "192.0.2.9" else other for s in result.subjects),
                     notes=("example.org: skipped a", "example.net: skipped b"))
    narrowed = result.for_domain("example.org")
    assert [listing.subject for listing in narrowed.listings] == ["192.0.2.1"]
    assert "192.0.2.9" not in {s.value for s in narrowed.subjects}
    assert narrowed.notes == ("example.org: skipped a",)
    assert [listing.subject for listing in result.for_domain("example.net").listings] == ["192.0.2.9"]


def test_findings_and_failures_for_check():
    policy_only = replace(listed_result(T0), listings=tuple(
        replace(listing, meanings=listing.meanings[1:]) for listing in listed_result(T0).listings), errors=())
    found = findings([listed_result(T0), policy_only])
    assert [(f.severity.value, f.code) for f in found] == [("error", "blocklist_listed"),
                                                           ("info", "blocklist_policy_listed")]
    assert "192.0.2.1 (address of MX mx.example.org of example.org) is listed by zen as spam, policy" in found[0].message
    assert "https://zen.example/lookup" in found[0].fix
    assert failures([listed_result(T0), unusable_result()]) == {
        "blocklist zen": "1 queries failed, e.g. 192.0.2.3: timeout (timed out)",
        "blocklist dbl": "refused_by_list: refused",
    }


def test_the_status_page_escapes_what_a_list_answers():
    from exporter.reputation.report import to_json
    from exporter.web.status import _blocklists_html

    result = listed_result(T0)
    result = replace(result, listings=(replace(result.listings[0], reason='<script>alert(1)</script> "x"'),),
                     problem_detail="")
    page = _blocklists_html([{"list": "zen", "next_run": None, "last_result": to_json(result)}])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "address of MX mx.example.org of example.org" in page
