"""The results part of /metrics, rendered once per result and joined per bucket of results.

Results are immutable, so each one's samples are turned into exposition text once, when it
is stored, and kept until it is replaced or its subject removed. A store's results are
spread over `BUCKETS` buckets by a hash of their key; each bucket's text is joined per
family, and compressed per family (metrics.gzipjoin), again only when one of its results
changed, on the event loop (see `compress`). A scrape then concatenates, family by family, the buckets' joined text (or their
deflate pieces), so its cost follows what changed since the last scrape, not how much is
stored: with 10,000 domains rechecked every 300 s, about 33 results a second, a change
touches one bucket in 256. The text is the Prometheus text format 0.0.4, as
prometheus_client writes it (labels sorted, values as Go formats floats); each family's
samples follow its one HELP/TYPE header, bucket after bucket.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections import defaultdict
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client.utils import floatToGoString

from .blocklists import BLOCKLIST_METRICS, add_blocklist_samples
from .endpoint import ENDPOINT_METRICS, add_endpoint_samples
from .domain import DOMAIN_METRICS, add_domain_samples
from .gzipjoin import DeflatePiece, deflate_each
from .revocation import REVOCATION_METRICS, add_revocation_samples
from .specs import Families, MetricSpec
from ..results import JobKind
from .tlsscan import TLSSCAN_METRICS, add_scan_samples

AddSamples = Callable[[Families, object, object], None]

# Buckets per store (docs/benchmarks-dns.md, "/metrics"): more buckets make the text a
# change compresses again smaller, and the pieces a scrape joins more numerous and each
# worse compressed.
BUCKETS = 256
# Buckets joined and compressed between two yields to the event loop when prepared ahead.
_BUCKETS_PER_YIELD = 8


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def sample_line(name: str, labels: dict[str, str], value: float) -> str:
    if labels:
        label_text = ",".join(f'{key}="{_escape_label_value(labels[key])}"' for key in sorted(labels))
        return f"{name}{{{label_text}}} {floatToGoString(value)}\n"
    return f"{name} {floatToGoString(value)}\n"


def family_header(spec: MetricSpec) -> bytes:
    help_text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {spec.name} {help_text}\n# TYPE {spec.name} {spec.type}\n".encode()


def render_result(specs: Iterable[MetricSpec], add: AddSamples, subject: object, result: object) -> dict[str, bytes]:
    """The sample lines of one result, by family name (families without samples left out)."""
    families = Families(specs)
    add(families, subject, result)
    return {
        family.name: "".join(sample_line(s.name, s.labels, s.value) for s in family.samples).encode()
        for family in families
    }


# The families of each kind of stored result, and how one result's samples are added:
# one per kind of job, and the revocation checks that run after the endpoint probes.
RESULT_FAMILIES: dict[JobKind, tuple[tuple[MetricSpec, ...], AddSamples]] = {
    JobKind.ENDPOINT: (ENDPOINT_METRICS, add_endpoint_samples),
    JobKind.DOMAIN: (DOMAIN_METRICS, add_domain_samples),
    JobKind.DEEP_SCAN: (TLSSCAN_METRICS, add_scan_samples),
    JobKind.BLOCKLIST: (BLOCKLIST_METRICS, add_blocklist_samples),
    JobKind.REVOCATION: (REVOCATION_METRICS, add_revocation_samples),
}


def bucket_of(key: str) -> int:
    """The bucket of a result's key: the same in every process (CRC-32, not the salted hash())."""
    return zlib.crc32(key.encode()) % BUCKETS


class Joined:
    """One bucket's text at one moment, per family; its deflate pieces once compressed."""

    __slots__ = ("texts", "pieces")

    def __init__(self, results: Iterable[Mapping[str, bytes]]) -> None:
        parts: defaultdict[str, list[bytes]] = defaultdict(list)
        for families in results:
            for name, text in families.items():
                parts[name].append(text)
        self.texts = {name: b"".join(texts) for name, texts in parts.items()}
        self.pieces: dict[str, bytes] | None = None if parts else {}   # as self.texts, compressed


def compress(joined: Iterable[Joined]) -> None:
    """Make the pieces of the buckets that have none, on the event loop. Not in a worker
    thread: thousands of small compressions, each giving the GIL back and taking it again
    while the event loop is busy (a cycle of checks), each waited up to the interpreter's
    switch interval (5 ms): seconds in all."""
    waiting = [bucket for bucket in joined if bucket.pieces is None]
    if not waiting:
        return
    pieces = iter(deflate_each(text for bucket in waiting for text in bucket.texts.values()))
    for bucket in waiting:
        bucket.pieces = dict(zip(bucket.texts, pieces))   # zip takes as many pieces as names


def _crc(chunks: Sequence[bytes]) -> int:
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    return crc


class Rendition:
    """A store's text at one moment: a chunk per family with its header, in the order of
    the specs; compressed on first demand from its buckets' pieces."""

    def __init__(self, headers: Sequence[tuple[str, bytes, bytes]], joined: Sequence[Joined]) -> None:
        self._headers = headers
        self._joined = joined
        self.chunks = tuple(_family_chunks(headers, joined))
        self._deflated: DeflatePiece | None = None

    def deflated(self) -> DeflatePiece:
        """The chunks as one deflate piece (metrics.gzipjoin): the buckets' pieces, each
        family's after its header's, compressed where missing."""
        if self._deflated is None:
            compress(self._joined)
            data = b"".join(_family_pieces(self._headers, self._joined))
            self._deflated = DeflatePiece(data, _crc(self.chunks), sum(len(chunk) for chunk in self.chunks))
        return self._deflated


def _family_chunks(headers: Sequence[tuple[str, bytes, bytes]], joined: Sequence[Joined]) -> Iterator[bytes]:
    for name, header, _ in headers:
        texts = [bucket.texts[name] for bucket in joined if name in bucket.texts]
        if texts:
            yield b"".join([header, *texts])


def _family_pieces(headers: Sequence[tuple[str, bytes, bytes]], joined: Sequence[Joined]) -> Iterator[bytes]:
    for name, _, header_piece in headers:
        pieces = [bucket.pieces[name] for bucket in joined if name in bucket.texts]  # type: ignore[index]
        if pieces:
            yield header_piece
            yield from pieces


class StoreExposition:
    """The exposition text of one result store, kept per bucket of results: what a scrape
    sends, joined and compressed again only where a result changed."""

    def __init__(self, kind: JobKind) -> None:
        specs, add = RESULT_FAMILIES[kind]
        self._render = functools.partial(render_result, specs, add)
        # Each family's name, header, and header compressed as a piece of its own.
        headers = [(spec.name, family_header(spec)) for spec in specs]
        pieces = deflate_each(header for _, header in headers)
        self._headers = tuple((name, header, piece) for (name, header), piece in zip(headers, pieces))
        self._results: list[dict[str, Mapping[str, bytes]]] = [{} for _ in range(BUCKETS)]
        self._joined = [Joined(()) for _ in range(BUCKETS)]
        self._changed: set[int] = set()          # buckets changed since they were last joined
        self._rendition: Rendition | None = None
        self.gzip_asked = False                   # a scrape asked for gzip: compress ahead too

    def put(self, key: str, subject: object, result: object) -> None:
        """Render a stored result (on the event loop, ~1 ms)."""
        bucket = bucket_of(key)
        self._results[bucket][key] = self._render(subject, result)
        self._changed.add(bucket)

    def discard(self, key: str) -> None:
        bucket = bucket_of(key)
        if self._results[bucket].pop(key, None) is not None:
            self._changed.add(bucket)

    def _join(self, bucket: int) -> None:
        self._joined[bucket] = Joined(self._results[bucket].values())
        self._changed.discard(bucket)
        self._rendition = None

    def rendition(self, gzip: bool = False) -> Rendition:
        """The store's text now: the buckets changed since the last call joined again.
        `gzip`: the scrape will compress it (from then on, `prepare` compresses ahead)."""
        self.gzip_asked |= gzip
        for bucket in list(self._changed):
            self._join(bucket)
        if self._rendition is None:
            self._rendition = Rendition(self._headers, tuple(self._joined))
        return self._rendition

    async def prepare(self) -> None:
        """Join (and compress, once gzip was asked for) the buckets changed since the last
        call, ahead of the next scrape, so that a scrape finds at most the changes since;
        a few buckets at a time, letting the event loop run in between."""
        for done, bucket in enumerate(list(self._changed)):
            if bucket in self._changed:
                self._join(bucket)
                if self.gzip_asked:
                    compress([self._joined[bucket]])
            if done % _BUCKETS_PER_YIELD == _BUCKETS_PER_YIELD - 1:
                await asyncio.sleep(0)
