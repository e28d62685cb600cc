"""The results' text kept per bucket of results (metrics/exposition.py): whatever the puts,
discards and retains between scrapes, the gzip body is the plain body compressed, the plain
body is every stored result's text with each family under one header, and a scrape
compresses again only the buckets that changed."""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from dataclasses import replace
from unittest import mock

from hypothesis import given, settings, strategies as st

from exporter.config import Target
from exporter.metrics import exposition
from exporter.metrics.gzipjoin import gzip_stream
from exporter.results import FailureReason, JobKind
from exporter.service.store import ResultStores
from results_factory import failed_result, host_result, tls_result

RESULTS = (host_result(tls_result()), host_result(failed_result(FailureReason.TIMEOUT)),
           replace(host_result(tls_result()), interval_seconds=300.0))
TARGETS = tuple(Target(f"mx{n}.example.test", 25, "smtp") for n in range(12))


def expected(results: ResultStores) -> dict[str, Counter]:
    """Each family's sample lines, rendered anew from what the store holds."""
    lines: dict[str, Counter] = {}
    specs, add = exposition.RESULT_FAMILIES[JobKind.ENDPOINT]
    for entry in results.endpoints.snapshot():
        for name, text in exposition.render_result(specs, add, entry.subject, entry.result).items():
            lines.setdefault(name, Counter()).update(text.splitlines())
    return lines


def families(body: bytes) -> dict[str, Counter]:
    """The sample lines under each header; fails on a family whose header comes twice."""
    lines: dict[str, Counter] = {}
    current = None
    for line in body.splitlines():
        if line.startswith(b"# HELP "):
            current = line.split()[2].decode()
            assert current not in lines, f"{current} has two headers"
            lines[current] = Counter()
        elif not line.startswith(b"# TYPE "):
            lines[current][line] += 1
    return lines


def bodies(results: ResultStores) -> tuple[bytes, bytes]:
    plain = b"".join(results.exposition_chunks())
    compressed = b"".join(gzip_stream([rendition.deflated() for rendition in results.exposition(gzip=True)]))
    return plain, compressed


target = st.integers(0, len(TARGETS) - 1)   # Targets are not hashable: by index
operations = st.lists(st.one_of(
    st.tuples(st.just("put"), target, st.integers(0, len(RESULTS) - 1)),
    st.tuples(st.just("discard"), target),
    st.tuples(st.just("retain"), st.sets(target)),
    st.tuples(st.just("prepare")),
    st.tuples(st.just("scrape")),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(operations=operations, buckets=st.sampled_from([1, 3, 256]))
def test_any_interleaving_gives_the_stored_results_and_the_same_text_gzipped(operations, buckets):
    with mock.patch.object(exposition, "BUCKETS", buckets):
        asyncio.run(_interleave(operations))


async def _interleave(operations) -> None:
    results = ResultStores()
    store = results.endpoints
    for operation, *args in operations + [("scrape",)]:
        if operation == "put":
            target = TARGETS[args[0]]
            store.put(target.key, target, RESULTS[args[1]])
        elif operation == "discard":
            store.discard(TARGETS[args[0]].key)
        elif operation == "retain":
            store.retain(TARGETS[index].key for index in args[0])
        elif operation == "prepare":
            await results.prepare_exposition()
        else:
            plain, compressed = bodies(results)
            assert gzip.decompress(compressed) == plain
            assert families(plain) == expected(results)


def compressions(monkeypatch) -> list[int]:
    """The number of texts compressed, per call of the compressor."""
    calls: list[int] = []
    deflate_each = exposition.deflate_each

    def counted(texts):
        texts = list(texts)
        calls.append(len(texts))
        return deflate_each(texts)

    monkeypatch.setattr(exposition, "deflate_each", counted)
    return calls


def fill(results: ResultStores, count: int) -> list[Target]:
    targets = [Target(f"mx{n}.example.test", 25, "smtp") for n in range(count)]
    for target in targets:
        results.endpoints.put(target.key, target, RESULTS[0])
    return targets


def test_only_the_buckets_that_changed_are_compressed_again(monkeypatch):
    results = ResultStores()
    targets = fill(results, 200)
    calls = compressions(monkeypatch)
    bodies(results)
    assert len(calls) == 1 and calls[0] > 0        # every bucket, in one go
    calls.clear()
    bodies(results)
    assert calls == []                             # nothing changed: nothing compressed
    changed = targets[7]
    results.endpoints.put(changed.key, changed, RESULTS[1])
    plain, compressed = bodies(results)
    bucket = exposition.bucket_of(changed.key)
    families_in_bucket = len(results.endpoints.text.rendition()._joined[bucket].texts)
    assert calls == [families_in_bucket]           # that one bucket's families, nothing else
    assert gzip.decompress(compressed) == plain


async def test_prepared_ahead_a_scrape_has_nothing_left_to_join_or_compress(monkeypatch):
    results = ResultStores()
    targets = fill(results, 50)
    bodies(results)                          # a gzip scrape: from now on compressed ahead
    calls = compressions(monkeypatch)
    for target in targets[:5]:
        results.endpoints.put(target.key, target, RESULTS[1])
    await results.prepare_exposition()
    assert sum(calls) > 0
    calls.clear()
    plain, compressed = bodies(results)
    assert calls == [] and gzip.decompress(compressed) == plain
