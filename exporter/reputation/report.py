"""Blocklist results as the status page's JSON and as findings of the `check` report."""

from __future__ import annotations

from typing import Any, Iterable

from ..config import ListingMeaning
from ..domains.common import Finding, Severity
from ..presentation import utc_time
from .blocklists import BlocklistResult, Listing
from .subjects import Subject


def _listing_json(listing: Listing, subject: Subject | None, result: BlocklistResult) -> dict[str, Any]:
    return {
        "subject": listing.subject,
        "meanings": [meaning.value for meaning in listing.meanings],
        "codes": list(listing.codes),
        "reason": listing.reason,
        "removal_url": listing.removal_url or result.removal_url,
        "listed_since": listing.listed_since,
        "origins": [str(origin) for origin in subject.origins] if subject else [],
    }


def to_json(result: BlocklistResult) -> dict[str, Any]:
    subjects = {subject.value: subject for subject in result.subjects}
    return {
        "list": result.list_name,
        "kind": result.kind.value,
        "observed_at": result.observed_at,
        "duration_seconds": result.duration_seconds,
        "usable": result.usable,
        "problem": result.problem.value if result.problem else None,
        "problem_detail": result.problem_detail,
        "subjects": len(result.subjects),
        "listings": [_listing_json(listing, subjects.get(listing.subject), result) for listing in result.listings],
        "errors": [{"subject": error.subject, "reason": error.problem.value, "detail": error.detail}
                   for error in result.errors],
        "notes": list(result.notes),
    }


def _listing_finding(result: BlocklistResult, listing: Listing, subject: Subject | None) -> Finding:
    why = "; ".join(str(origin) for origin in subject.origins) if subject else ""
    meanings = ", ".join(meaning.value for meaning in listing.meanings)
    since = f" since {utc_time(listing.listed_since)}" if listing.listed_since is not None else ""
    reason = f": {listing.reason}" if listing.reason else ""
    message = f"{listing.subject} ({why}) is listed by {result.list_name} as {meanings}{since}{reason}"
    url = listing.removal_url or result.removal_url
    if listing.meanings == (ListingMeaning.POLICY,):
        return Finding(Severity.INFO, "blocklist_policy_listed", message,
                       "nothing to do for an address that only receives mail; an address that sends mail "
                       "must not be in a policy list: ask its provider to remove it" + (f" ({url})" if url else ""))
    fix = "find and stop what got it listed (the reason above), then ask the list for removal"
    return Finding(Severity.ERROR, "blocklist_listed", message, fix + (f": {url}" if url else ""))


def findings(results: Iterable[BlocklistResult]) -> tuple[Finding, ...]:
    """One finding per listing, and one per SPF network or subject left out."""
    found: list[Finding] = []
    notes: dict[str, None] = {}
    for result in results:
        subjects = {subject.value: subject for subject in result.subjects}
        found += [_listing_finding(result, listing, subjects.get(listing.subject)) for listing in result.listings]
        notes.update(dict.fromkeys(result.notes))
    found += [Finding(Severity.INFO, "blocklist_subject_skipped", f"not checked against blocklists: {note}",
                      "nothing to do: larger networks and other organizations' ranges are not checked")
              for note in notes]
    return tuple(found)


def failures(results: Iterable[BlocklistResult]) -> dict[str, str]:
    """Lists that could not be used, and subjects whose queries failed, by list."""
    failed: dict[str, str] = {}
    for result in results:
        if result.problem is not None:
            failed[f"blocklist {result.list_name}"] = f"{result.problem.value}: {result.problem_detail}"
        elif result.errors:
            first = result.errors[0]
            failed[f"blocklist {result.list_name}"] = (f"{len(result.errors)} queries failed, e.g. "
                                                       f"{first.subject}: {first.problem.value} ({first.detail})")
    return failed
