"""Blocklist results made without DNS, for tests of metrics and presentation."""

from __future__ import annotations

from exporter.config import Blocklist, BlocklistKind, ListingMeaning
from exporter.records.dnsbl import ListProblem
from exporter.reputation.blocklists import BlocklistResult, Listing, QueryError
from exporter.reputation.subjects import Origin, OriginKind, Subject

ZEN = Blocklist("zen", "zen.example", BlocklistKind.IP)
DBL = Blocklist("dbl", "dbl.example", BlocklistKind.DOMAIN)


def subject(value: str, domain: str = "example.org", kind: OriginKind = OriginKind.MX_ADDRESS) -> Subject:
    return Subject(value, (Origin(kind, domain, "mx.example.org"),))


def listed_result(observed_at: float = 1_700_000_000.0, listed: tuple[str, ...] = ("192.0.2.1",),
                  failed: tuple[str, ...] = ("192.0.2.3",), others: tuple[str, ...] = ("192.0.2.2",)) -> BlocklistResult:
    """zen: `listed` listed as spam and policy, `failed` timed out, `others` not listed."""
    return BlocklistResult(
        list_name="zen", kind=BlocklistKind.IP, observed_at=observed_at, duration_seconds=0.25, problem=None,
        problem_detail="", subjects=tuple(subject(value) for value in (*listed, *others, *failed)),
        listings=tuple(Listing(value, (ListingMeaning.SPAM, ListingMeaning.POLICY), ("127.0.0.2", "127.0.0.10"),
                               "Listed, see https://zen.example/lookup", listed_since=observed_at)
                       for value in listed),
        errors=tuple(QueryError(value, ListProblem.TIMEOUT, "timed out") for value in failed),
        interval_seconds=3600.0,
    )


def unusable_result() -> BlocklistResult:
    return BlocklistResult(
        list_name="dbl", kind=BlocklistKind.DOMAIN, observed_at=1_700_000_000.0, duration_seconds=0.1,
        problem=ListProblem.REFUSED_BY_LIST, problem_detail="refused", subjects=(subject("example.org"),),
        listings=(), errors=(), interval_seconds=3600.0,
    )
