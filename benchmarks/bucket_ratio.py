"""What splitting /metrics into buckets costs in compression (metrics/exposition.py).

    python3 -m benchmarks.bucket_ratio BODY [--buckets 1 16 64 128 256 512 1024]

BODY is a plain /metrics body (benchmarks/scrape_at_scale.py --keep-body). Its result
samples are put back in buckets by their `domain` or `target` label, as the exporter keys
them, and compressed per family and bucket as the exporter does (a piece per family per
bucket, level 1, full flush after each); against the whole body compressed at once.
"""

from __future__ import annotations

import argparse
import re
import time
import zlib
from collections import defaultdict
from pathlib import Path

from exporter.metrics.gzipjoin import deflate_each

SUBJECT = re.compile(rb'(?:domain|target)="([^"]*)"')


def families(body: bytes) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """{family: [(subject, line)]} of the samples that belong to a result."""
    found: dict[bytes, list[tuple[bytes, bytes]]] = defaultdict(list)
    family = b""
    for line in body.splitlines(keepends=True):
        if line.startswith(b"# HELP "):
            family = line.split()[2]
        elif not line.startswith(b"#") and (subject := SUBJECT.search(line)):
            found[family].append((subject.group(1), line))
    return found


def pieces(found: dict[bytes, list[tuple[bytes, bytes]]], buckets: int) -> list[bytes]:
    texts = []
    for lines in found.values():
        by_bucket: dict[int, list[bytes]] = defaultdict(list)
        for subject, line in lines:
            by_bucket[zlib.crc32(subject) % buckets].append(line)
        texts.extend(b"".join(by_bucket[bucket]) for bucket in sorted(by_bucket))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("body", type=Path)
    parser.add_argument("--buckets", type=int, nargs="+", default=[1, 16, 64, 128, 256, 512, 1024])
    args = parser.parse_args()
    found = families(args.body.read_bytes())
    whole = b"".join(line for lines in found.values() for _, line in lines)
    started = time.perf_counter()
    compressed = len(zlib.compress(whole, 1))
    print(f"result samples: {len(whole) / 2**20:.1f} MiB, {len(found)} families; "
          f"compressed whole: {compressed / 2**20:.2f} MiB ({len(whole) / compressed:.1f}x) "
          f"in {1000 * (time.perf_counter() - started):.0f} ms")
    print("| buckets | pieces | compressed | ratio | vs whole | compression time |")
    print("|---|---|---|---|---|---|")
    for buckets in args.buckets:
        texts = pieces(found, buckets)
        started = time.perf_counter()
        size = sum(len(piece) for piece in deflate_each(texts))
        seconds = time.perf_counter() - started
        print(f"| {buckets} | {len(texts)} | {size / 2**20:.2f} MiB | {len(whole) / size:.1f}x | "
              f"+{100 * (size / compressed - 1):.0f}% | {1000 * seconds:.0f} ms |")


if __name__ == "__main__":
    main()
