"""The latest result of every probed subject, and its recent history, kept for the
collector and the status page.

Probes write here through the scheduler; scrapes only read. A scrape never waits for a
probe: it reads an immutable snapshot of what is there.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Generic, Iterable, Iterator, Protocol, TypeVar

from ..metrics.exposition import Rendition, StoreExposition
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
    always consistent without a lock. With `text`, each result is rendered as exposition
    text when it is stored (metrics.exposition), and forgotten there when it goes.
    """

    def __init__(self, text: StoreExposition | None = None) -> None:
        self._entries: dict[str, Entry[Subject, Result]] = {}
        self._history: dict[str, _History[Result]] = {}
        self.text = text
        self.stored = 0   # results put since the start, replaced ones included

    def put(self, key: str, subject: Subject, result: Result) -> None:
        self.stored += 1
        if self.text:
            self.text.put(key, subject, result)
        self._entries[key] = Entry(subject, result)
        self._history.setdefault(key, _History()).add(result)

    def get(self, key: str) -> Entry[Subject, Result] | None:
        return self._entries.get(key)

    def snapshot(self) -> list[Entry[Subject, Result]]:
        return list(self._entries.values())

    def history(self, key: str) -> list[Result]:
        """The recent results of `key`, newest first: failures are kept longer than successes."""
        history = self._history.get(key)
        return history.newest_first() if history else []

    def discard(self, key: str) -> None:
        if self._entries.pop(key, None) is not None and self.text:
            self.text.discard(key)
        self._history.pop(key, None)

    def retain(self, keys: Iterable[str]) -> None:
        """Forget every key not in `keys` (targets removed by a reload)."""
        keep = set(keys)
        entries = {key: entry for key, entry in self._entries.items() if key in keep}
        if len(entries) != len(self._entries) and self.text:
            for key in self._entries.keys() - entries.keys():
                self.text.discard(key)
        self._entries = entries
        self._history = {key: history for key, history in self._history.items() if key in keep}

    def __len__(self) -> int:
        return len(self._entries)


def _rendered(kind: JobKind) -> Callable[[], LatestResults]:
    return lambda: LatestResults(text=StoreExposition(kind))


@dataclass(frozen=True)
class ResultStores:
    """The latest result of every subject, by kind, each rendered as exposition text when
    it is stored, so that a scrape only joins bytes (for 10,000 domains, milliseconds
    instead of seconds, and no burst of per-scrape sample objects)."""

    endpoints: LatestResults["Target", "EndpointResult"] = field(default_factory=_rendered(JobKind.ENDPOINT))
    domains: LatestResults["Domain", "DomainResult"] = field(default_factory=_rendered(JobKind.DOMAIN))
    scans: LatestResults["Target", "TLSScanResult"] = field(default_factory=_rendered(JobKind.DEEP_SCAN))
    blocklists: LatestResults["Blocklist", "BlocklistResult"] = field(default_factory=_rendered(JobKind.BLOCKLIST))
    # The revocation checks of the endpoints' presented certificates, by target key.
    revocations: LatestResults["Target", "RevocationResult"] = field(default_factory=_rendered(JobKind.REVOCATION))
    # When each current blocklist listing was first seen: kept for the life of the process.
    listed_since: ListedSince = field(default_factory=ListedSince)

    def count(self) -> int:
        """Results stored, of every kind."""
        return sum(len(store) for store in self._stores())

    def stored(self) -> int:
        """Results put since the start, of every kind, replaced ones included."""
        return sum(store.stored for store in self._stores())

    def _stores(self) -> tuple[LatestResults, ...]:
        return (self.endpoints, self.domains, self.scans, self.blocklists, self.revocations)

    def _texts(self) -> list[StoreExposition]:
        return [store.text for store in self._stores() if store.text]

    def exposition(self, gzip: bool = False) -> list[Rendition]:
        """The text of every store (their families are distinct) as of now, joined again only
        where results changed since the last scrape; `gzip`: the scraper asked for it."""
        return [text.rendition(gzip) for text in self._texts()]

    def exposition_chunks(self) -> Iterator[bytes]:
        """Every stored result's families, one chunk per family (see metrics.exposition)."""
        return (chunk for rendition in self.exposition() for chunk in rendition.chunks)

    async def prepare_exposition(self) -> None:
        """Join and compress ahead what changed (called every second while serving), so that
        a scrape finds only what changed since, however long ago the last scrape was."""
        await asyncio.gather(*(text.prepare() for text in self._texts()))
