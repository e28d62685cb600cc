"""The latest result of every probed subject, kept for the collector and the status page.

Probes write here through the scheduler; scrapes only read. A scrape never waits for a
probe: it reads an immutable snapshot of what is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterable, TypeVar

Subject = TypeVar("Subject")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Entry(Generic[Subject, Result]):
    subject: Subject     # what was probed: a Target, a Domain...
    result: Result       # its latest result


class LatestResults(Generic[Subject, Result]):
    """The latest result per key.

    Writes happen on the event loop; a scrape may read from another thread. Single dict
    operations and `list(dict.values())` run without releasing the GIL, so a snapshot is
    always consistent without a lock.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry[Subject, Result]] = {}

    def put(self, key: str, subject: Subject, result: Result) -> None:
        self._entries[key] = Entry(subject, result)

    def get(self, key: str) -> Entry[Subject, Result] | None:
        return self._entries.get(key)

    def snapshot(self) -> list[Entry[Subject, Result]]:
        return list(self._entries.values())

    def retain(self, keys: Iterable[str]) -> None:
        """Forget every key not in `keys` (targets removed by a reload)."""
        keep = set(keys)
        self._entries = {key: entry for key, entry in self._entries.items() if key in keep}

    def __len__(self) -> int:
        return len(self._entries)
