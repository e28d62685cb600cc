"""Metric families of the DNS blocklist checks, and the samples of one `BlocklistResult`.

Labels: the list's configured name (`list`), the address (IP lists) or name (domain lists)
checked, and closed sets (`meaning`, `reason`). The TXT reason, the removal link and which
domain a subject comes from are on the status page and in `check`, never in labels.
"""

from __future__ import annotations

import collections

from ..config import Blocklist, BlocklistKind
from ..reputation.blocklists import BlocklistResult
from .specs import Families, MetricSpec

NOT_LISTED = "none"   # the `meaning` of a subject that is not listed

BLOCKLIST_METRICS = (
    MetricSpec("mailsec_blocklist_listed", "1 if the list lists the address (IP lists) or name (domain lists), "
               "one series per meaning; 0 with meaning=\"none\" if not. Absent while the list is unusable.",
               ("list", "meaning")),
    MetricSpec("mailsec_blocklist_listed_since_timestamp_seconds",
               "When this exporter process first saw the current listing (kept across reloads, not restarts)."),
    MetricSpec("mailsec_blocklist_usable", "1 if the list answered its RFC 5782 test entries as it must and did "
               "not refuse our queries in its last run, else 0.", ("list",)),
    MetricSpec("mailsec_blocklist_failure_info", "Why the list is unusable; present only while it is.",
               ("list", "reason")),
    MetricSpec("mailsec_blocklist_query_errors", "Queries about subjects that failed in the list's last run, by reason.",
               ("list", "reason")),
    MetricSpec("mailsec_blocklist_subjects", "Addresses or names the list was asked about in its last run.", ("list",)),
    MetricSpec("mailsec_blocklist_duration_seconds", "How long the list's last run took.", ("list",)),
    MetricSpec("mailsec_blocklist_last_run_timestamp_seconds", "When the list's last run started.", ("list",)),
    MetricSpec("mailsec_blocklist_interval_seconds", "How often the exporter runs the list (its interval); "
               "absent from /probe.", ("list",)),
)


def subject_label(kind: BlocklistKind) -> str:
    return "address" if kind is BlocklistKind.IP else "name"


def add_blocklist_samples(families: Families, blocklist: Blocklist, result: BlocklistResult) -> None:
    """Add the samples of one list's latest result."""
    base = {"list": blocklist.name}

    def add(family: str, value: float, **extra: str) -> None:   # `name` is a label here
        families.add(family, {**base, **extra}, value)

    add("mailsec_blocklist_usable", float(result.usable))
    add("mailsec_blocklist_subjects", float(len(result.subjects)))
    add("mailsec_blocklist_duration_seconds", result.duration_seconds)
    add("mailsec_blocklist_last_run_timestamp_seconds", result.observed_at)
    if result.interval_seconds is not None:
        add("mailsec_blocklist_interval_seconds", result.interval_seconds)
    for reason, count in sorted(collections.Counter(error.problem.value for error in result.errors).items()):
        add("mailsec_blocklist_query_errors", float(count), reason=reason)
    if result.problem is not None:
        add("mailsec_blocklist_failure_info", 1.0, reason=result.problem.value)
        return
    label = subject_label(result.kind)
    listings = {listing.subject: listing for listing in result.listings}
    failed = {error.subject for error in result.errors}
    for subject in result.subjects:
        listing = listings.get(subject.value)
        if listing is not None:
            for meaning in listing.meanings:
                add("mailsec_blocklist_listed", 1.0, meaning=meaning.value, **{label: subject.value})
            if listing.listed_since is not None:
                add("mailsec_blocklist_listed_since_timestamp_seconds", listing.listed_since, **{label: subject.value})
        elif subject.value not in failed:
            add("mailsec_blocklist_listed", 0.0, meaning=NOT_LISTED, **{label: subject.value})
