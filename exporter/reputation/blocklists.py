"""One run of one DNS blocklist: its health, then every subject (subjects.py) asked.

A list is first asked for its RFC 5782 test entries. A list that fails them (dead, listing
everything, refusing our resolver, unreachable) is reported with that problem and its
subjects are not asked: its answers would not mean anything, and a list that refuses us
should not be asked again and again. Then each subject is asked, at most
`blocklists.concurrency` at once, through the configured resolver (the DNS client keeps
answers for their TTL); each listing's TXT record gives its reason and removal link.

A "you may not query" answer to any subject also makes the whole list unusable (Spamhaus
answers so to every query from a public or unregistered resolver).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Iterable

from ..config import Blocklist, BlocklistKind, BlocklistSettings, Domain, ListingMeaning, Target
from ..dnsclient import DNSClient, DNSError, DNSErrorKind, LookupCache, Resolver, txt_records
from ..domains.check import DomainResult
from ..records.dnsbl import (
    DOMAIN_TEST_LISTED,
    DOMAIN_TEST_NOT_LISTED,
    IP_TEST_LISTED,
    IP_TEST_NOT_LISTED,
    AnswerKind,
    CodeRange,
    ListProblem,
    Outcome,
    domain_query_name,
    first_url,
    ip_query_name,
    judge_test_entries,
    query_problem,
    read_answer,
    redact_key,
)
from .subjects import StoredDomainResult, Subject, Subjects, gather_subjects


@dataclass(frozen=True)
class Listing:
    subject: str
    meanings: tuple[ListingMeaning, ...]
    codes: tuple[str, ...]             # the addresses the list answered
    reason: str                        # its TXT record; "" when it has none
    listed_since: float | None = None  # first seen listed by this process (ListedSince)

    @property
    def removal_url(self) -> str | None:
        return first_url(self.reason)


@dataclass(frozen=True)
class QueryError:
    subject: str
    problem: ListProblem
    detail: str                        # for the status page and logs; never a label


@dataclass(frozen=True)
class BlocklistResult:
    list_name: str
    kind: BlocklistKind
    observed_at: float                 # Unix seconds when the run started
    duration_seconds: float
    problem: ListProblem | None        # the list is unusable: its answers are not trusted
    problem_detail: str
    subjects: tuple[Subject, ...]
    listings: tuple[Listing, ...]      # empty when the list is unusable
    errors: tuple[QueryError, ...]     # subjects whose query failed
    notes: tuple[str, ...] = ()        # subjects that could not be gathered, SPF networks skipped
    interval_seconds: float | None = None   # how often the scheduler runs it; None for `check`
    removal_url: str | None = None     # the list's own, from the configuration

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def success(self) -> bool:
        return self.usable and not self.errors

    def for_domain(self, domain: str) -> BlocklistResult:
        """This result narrowed to the subjects that come from `domain`."""
        subjects = tuple(subject for subject in self.subjects if subject.concerns(domain))
        values = {subject.value for subject in subjects}
        return replace(self, subjects=subjects,
                       listings=tuple(listing for listing in self.listings if listing.subject in values),
                       errors=tuple(error for error in self.errors if error.subject in values),
                       notes=tuple(note for note in self.notes if note.startswith(f"{domain}:")))


_OUTCOME_OF_KIND = {
    DNSErrorKind.TIMEOUT: Outcome.TIMEOUT,
    DNSErrorKind.SERVFAIL: Outcome.SERVFAIL,
    DNSErrorKind.ERROR: Outcome.ERROR,
}
_OUTCOME_OF_READING = {AnswerKind.LISTED: Outcome.LISTED, AnswerKind.REFUSED: Outcome.REFUSED,
                       AnswerKind.UNEXPECTED: Outcome.UNEXPECTED}


@dataclass(frozen=True)
class _Answer:
    outcome: Outcome
    meanings: tuple[ListingMeaning, ...] = ()
    codes: tuple[str, ...] = ()
    detail: str = ""


class _ListQuery:
    """The queries to one list, through one resolver."""

    def __init__(self, blocklist: Blocklist, dns: Resolver):
        self.blocklist = blocklist
        self.dns = dns
        self.table = tuple(CodeRange(row.first, row.last, row.meaning) for row in blocklist.codes)

    def name_of(self, subject: str) -> str:
        zone = self.blocklist.query_zone
        return ip_query_name(subject, zone) if self.blocklist.kind is BlocklistKind.IP else domain_query_name(subject, zone)

    def redact(self, text: str) -> str:
        return redact_key(text, self.blocklist.query_key)

    async def ask(self, subject: str) -> _Answer:
        try:
            name = self.name_of(subject)
            answer = await self.dns.lookup(name, "A")
        except ValueError as exc:    # a name too long to be put under the zone
            return _Answer(Outcome.ERROR, detail=str(exc))
        except DNSError as exc:
            if exc.kind.is_negative_answer:
                return _Answer(Outcome.NOT_LISTED)
            return _Answer(_OUTCOME_OF_KIND[exc.kind], detail=self.redact(str(exc)))
        reading = read_answer((rdata.address for rdata in answer.records), self.table,
                              self.blocklist.refusal_codes, ListingMeaning.OTHER)
        outcome = _OUTCOME_OF_READING[reading.kind]
        detail = "" if outcome is Outcome.LISTED else self.redact(f"{name} answered {', '.join(reading.codes)}")
        return _Answer(outcome, reading.meanings, reading.codes, detail)

    async def reason(self, subject: str) -> str:
        """The TXT record of a listing: why, and usually where to ask for removal."""
        try:
            return " ".join(await txt_records(self.dns, self.name_of(subject)))
        except DNSError:
            return ""

    async def health(self) -> tuple[ListProblem | None, str]:
        listed, not_listed = ((IP_TEST_LISTED, IP_TEST_NOT_LISTED) if self.blocklist.kind is BlocklistKind.IP
                              else (DOMAIN_TEST_LISTED, DOMAIN_TEST_NOT_LISTED))
        listed = self.blocklist.test_listed or listed
        not_listed = self.blocklist.test_not_listed or not_listed
        positive, negative = await asyncio.gather(self.ask(listed), self.ask(not_listed))
        problem = judge_test_entries(positive.outcome, negative.outcome)
        if problem is None:
            return None, ""
        details = {
            ListProblem.LIST_DEAD: f"the test entry {listed} is not listed: the list is gone or renamed",
            ListProblem.LISTS_EVERYTHING: f"the test entry {not_listed} is listed: the list answers every query",
            ListProblem.REFUSED_BY_LIST: "the list refuses queries from this resolver: query it through a "
                                         "resolver the list allows (your own, not a public one), or with a key",
        }
        return problem, details.get(problem) or positive.detail or negative.detail


async def check_blocklist(
    blocklist: Blocklist, subjects: Subjects, dns: Resolver, concurrency: int,
    started: float | None = None, clock: float | None = None,
) -> BlocklistResult:
    """Ask `blocklist` about every subject (after its test entries)."""
    started = time.time() if started is None else started
    clock = time.monotonic() if clock is None else clock
    query = _ListQuery(blocklist, dns)
    problem, detail = await query.health()
    listings: list[Listing] = []
    errors: list[QueryError] = []
    if problem is None:
        limit = asyncio.Semaphore(concurrency)

        async def one(subject: Subject) -> None:
            async with limit:
                answer = await query.ask(subject.value)
                if answer.outcome is Outcome.LISTED:
                    listings.append(Listing(subject.value, answer.meanings, answer.codes,
                                            await query.reason(subject.value)))
            error = query_problem(answer.outcome)
            if error is not None:
                errors.append(QueryError(subject.value, error, answer.detail))

        await asyncio.gather(*(one(subject) for subject in subjects.subjects))
        refused = next((error for error in errors if error.problem is ListProblem.REFUSED_BY_LIST), None)
        if refused is not None:
            problem, detail, listings = refused.problem, refused.detail, []
    return BlocklistResult(
        list_name=blocklist.name, kind=blocklist.kind, observed_at=started,
        duration_seconds=time.monotonic() - clock, problem=problem, problem_detail=detail,
        subjects=subjects.subjects, listings=tuple(sorted(listings, key=lambda listing: listing.subject)),
        errors=tuple(sorted(errors, key=lambda error: error.subject)), notes=subjects.notes,
        removal_url=blocklist.removal_url,
    )


async def run_blocklist(
    blocklist: Blocklist, settings: BlocklistSettings, domains: Iterable[Domain], targets: Iterable[Target],
    dns: DNSClient, stored: StoredDomainResult,
) -> BlocklistResult:
    """Gather the subjects (from the latest domain results `stored` gives, else by lookups)
    and check them against `blocklist`."""
    started, clock = time.time(), time.monotonic()
    subjects = await gather_subjects(blocklist.kind, domains, targets, LookupCache(dns), stored,
                                     settings.spf_addresses)
    return await check_blocklist(blocklist, subjects, dns, settings.concurrency, started, clock)


async def check_domain_now(
    domain: Domain, result: DomainResult, settings: BlocklistSettings, dns: DNSClient,
) -> list[BlocklistResult]:
    """Every configured list about one domain's subjects now (the `check` command), its MX
    hosts and DMARC destinations taken from `result`."""
    cache = LookupCache(dns)
    subjects = {kind: await gather_subjects(kind, [domain], (), cache, lambda _: result, settings.spf_addresses)
                for kind in {blocklist.kind for blocklist in settings.lists}}
    return list(await asyncio.gather(*(check_blocklist(blocklist, subjects[blocklist.kind], dns, settings.concurrency)
                                       for blocklist in settings.lists)))


class ListedSince:
    """When each current listing was first seen, in process memory: it survives reloads
    (the store keeps it), not restarts. A listing seen gone (the subject answered "not
    listed", or is no longer checked) is forgotten; a failed query or an unusable list
    tells nothing, so what is known stays."""

    def __init__(self) -> None:
        self._since: dict[str, dict[str, float]] = {}   # list name -> subject -> first seen

    def stamp(self, result: BlocklistResult) -> BlocklistResult:
        """`result` with each listing's `listed_since`, remembered for the next run."""
        if not result.usable:
            return result
        known = self._since.get(result.list_name, {})
        unknown = {error.subject for error in result.errors}
        since = {subject: first for subject, first in known.items() if subject in unknown}
        for listing in result.listings:
            since[listing.subject] = known.get(listing.subject, result.observed_at)
        self._since[result.list_name] = since
        return replace(result, listings=tuple(replace(listing, listed_since=since[listing.subject])
                                              for listing in result.listings))

    def retain(self, list_names: Iterable[str]) -> None:
        keep = set(list_names)
        self._since = {name: since for name, since in self._since.items() if name in keep}
