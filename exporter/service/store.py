"""The latest result of every probed subject, and its recent history, kept for the
collector and the status page.

Probes write here through the scheduler; scrapes only read. A scrape never waits for a
probe: it reads an immutable snapshot of what is there.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, Iterator, Protocol, TypeVar

from ..metrics.exposition import StoreText, StoreTexts, renderer
from ..reputation.blocklists import ListedSince
from ..results import JobKind

if TYPE_CHECKING:   # result types only: the store itself does not care what it keeps
    from ..config import Blocklist, Domain, Target
    from ..reputation.blocklists import BlocklistResult
    from ..domains.check import DomainResult
    from ..results import EndpointResult
    from ..revocation.results import RevocationResult
    from ..tlsscan.results import TLSScanResult

# Failures are what an operator investigates, so more of them are kept than successes.
FAILURES_KEPT = 20
SUCCESSES_KEPT = 5


class StoredResult(Protocol):
    """What the store needs of a result: whether it succeeded, and when it was observed."""

    @property
    def success(self) -> bool: ...

    @property
    def observed_at(self) -> float: ...


Subject = TypeVar("Subject")
Result = TypeVar("Result", bound=StoredResult)


@dataclass(frozen=True)
class Entry(Generic[Subject, Result]):
    subject: Subject     # what was probed: a Target, a Domain...
    result: Result       # its latest result
    derived: Any = None  # what the store's `derive` made of them once (the metrics text)


class _History(Generic[Result]):
    """The last FAILURES_KEPT failures and the last SUCCESSES_KEPT successes of one key."""

    def __init__(self) -> None:
        self.failures: collections.deque[Result] = collections.deque(maxlen=FAILURES_KEPT)
        self.successes: collections.deque[Result] = collections.deque(maxlen=SUCCESSES_KEPT)

    def add(self, result: Result) -> None:
        (self.successes if result.success else self.failures).append(result)

    def newest_first(self) -> list[Result]:
        return sorted([*self.failures, *self.successes], key=lambda result: result.observed_at, reverse=True)


class LatestResults(Generic[Subject, Result]):
    """The latest result per key, and a bounded history of the recent ones.

    Writes happen on the event loop; a scrape may read from another thread. Single dict
    operations and `list(dict.values())` run without releasing the GIL, so a snapshot is
    always consistent without a lock. `generation` changes with every write.
    """

    def __init__(self, derive: Callable[[Subject, Result], Any] | None = None) -> None:
        self._entries: dict[str, Entry[Subject, Result]] = {}
        self._history: dict[str, _History[Result]] = {}
        self._derive = derive
        self.generation = 0

    def put(self, key: str, subject: Subject, result: Result) -> None:
        derived = self._derive(subject, result) if self._derive else None
        self._entries[key] = Entry(subject, result, derived)
        self._history.setdefault(key, _History()).add(result)
        self.generation += 1

    def get(self, key: str) -> Entry[Subject, Result] | None:
        return self._entries.get(key)

    def snapshot(self) -> list[Entry[Subject, Result]]:
        return list(self._entries.values())

    def history(self, key: str) -> list[Result]:
        """The recent results of `key`, newest first: failures are kept longer than successes."""
        history = self._history.get(key)
        return history.newest_first() if history else []

    def discard(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self.generation += 1
        self._history.pop(key, None)

    def retain(self, keys: Iterable[str]) -> None:
        """Forget every key not in `keys` (targets removed by a reload)."""
        keep = set(keys)
        entries = {key: entry for key, entry in self._entries.items() if key in keep}
        if len(entries) != len(self._entries):
            self._entries = entries
            self.generation += 1
        self._history = {key: history for key, history in self._history.items() if key in keep}

    def __len__(self) -> int:
        return len(self._entries)


def _rendered(kind: str) -> Callable[[], LatestResults]:
    return lambda: LatestResults(derive=renderer(kind))


@dataclass(frozen=True)
class ResultStores:
    """The latest result of every subject, by kind, each rendered as exposition text when
    it is stored, so that a scrape only joins bytes (for 10,000 domains, tens of
    milliseconds instead of seconds, and no burst of per-scrape sample objects)."""

    endpoints: LatestResults["Target", "EndpointResult"] = field(default_factory=_rendered(JobKind.ENDPOINT))
    domains: LatestResults["Domain", "DomainResult"] = field(default_factory=_rendered(JobKind.DOMAIN))
    scans: LatestResults["Target", "TLSScanResult"] = field(default_factory=_rendered(JobKind.DEEP_SCAN))
    blocklists: LatestResults["Blocklist", "BlocklistResult"] = field(default_factory=_rendered(JobKind.BLOCKLIST))
    # The revocation checks of the endpoints' presented certificates, by target key.
    revocations: LatestResults["Target", "RevocationResult"] = field(default_factory=_rendered(JobKind.REVOCATION))
    # When each current blocklist listing was first seen: kept for the life of the process.
    listed_since: ListedSince = field(default_factory=ListedSince)
    # Each store's text joined, per generation (metrics.exposition): what a scrape sends.
    texts: StoreTexts = field(default_factory=StoreTexts)

    def count(self) -> int:
        """Results stored, of every kind."""
        return (len(self.endpoints) + len(self.domains) + len(self.scans) + len(self.blocklists)
                + len(self.revocations))

    def exposition(self) -> list[StoreText]:
        """The text of every store (their families are distinct), joined again only for a
        store that changed since the last scrape."""
        stores = {"endpoints": self.endpoints, "domains": self.domains, "scans": self.scans,
                  "blocklists": self.blocklists, "revocations": self.revocations}
        return [self.texts.text(name, store.generation, functools.partial(_derived, store))
                for name, store in stores.items()]

    def exposition_chunks(self) -> Iterator[bytes]:
        """Every stored result's families, one chunk per family (see metrics.exposition)."""
        return (chunk for text in self.exposition() for chunk in text.chunks)


def _derived(store: LatestResults) -> Iterator[Any]:
    return (entry.derived for entry in store.snapshot())
