"""/metrics over HTTP: the results' text joined and compressed once per change of a store,
gzip when the scraper asks for it, the same text either way."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib
from dataclasses import replace

import pytest
from aiohttp import ClientSession

from exporter.config import Target
from exporter.metrics import exposition
from exporter.metrics.gzipjoin import crc32_combine, deflate, deflate_each, gzip_stream
from exporter.results import FailureReason
from exporter.web.app import accepts_gzip
from exporter_process import running_app
from results_factory import failed_result, host_result, tls_result


@pytest.mark.parametrize("header, gzip_ok", [
    ("", False),
    ("gzip", True),
    ("GZIP", True),
    ("gzip, deflate, br", True),
    ("deflate, gzip;q=0.5", True),
    ("x-gzip", True),
    ("*", True),
    ("gzip;q=0", False),
    ("gzip;q=0, *", False),          # refused by name: `*` does not bring it back
    ("identity", False),
    ("br;q=1.0, *;q=0", False),
    ("gzip;q=bogus", False),
])
def test_accept_encoding(header, gzip_ok):
    assert accepts_gzip(header) is gzip_ok


@pytest.mark.parametrize("first, second", [
    (b"", b""), (b"a", b""), (b"", b"b"), (b"metric 1\n" * 1000, b"x" * 70000), (bytes(range(256)) * 99, b"\n"),
])
def test_crc32_combine_is_the_crc_of_the_concatenation(first, second):
    assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)


def test_pieces_compressed_apart_make_one_gzip_stream():
    texts = [b"# HELP a b\n", b"", b"a 1\n" * 50000, bytes(range(256)) * 10]
    stream = b"".join(gzip_stream([deflate([text]) for text in texts]))
    assert gzip.decompress(stream) == b"".join(texts)
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(stream) == b"".join(texts)   # one member


def put_results(exporter) -> None:
    good, bad = Target("127.0.0.1", 25, "smtp"), Target("127.0.0.2", 25, "smtp")
    exporter.results.endpoints.put(good.key, good, replace(host_result(tls_result()), interval_seconds=300.0))
    exporter.results.endpoints.put(bad.key, bad, host_result(failed_result(FailureReason.TIMEOUT)))


async def scrape(client, gzip_ok: bool) -> tuple[dict, bytes]:
    """Headers and the body as sent (not decompressed)."""
    async with ClientSession(auto_decompress=False) as session:
        headers = {"Accept-Encoding": "gzip" if gzip_ok else "identity"}
        async with session.get(client.make_url("/metrics"), headers=headers) as response:
            return dict(response.headers), await response.read()


async def test_gzip_body_is_the_plain_body_compressed_made_once_per_change(tmp_path, monkeypatch):
    compressed_texts = []

    def counted(texts):
        texts = list(texts)
        compressed_texts.extend(texts)
        return deflate_each(texts)

    monkeypatch.setattr(exposition, "deflate_each", counted)
    config = tmp_path / "config.yml"
    config.write_text("global:\n  interval: 1h\n")
    async with running_app(config) as (exporter, client):
        put_results(exporter)
        plain_headers, plain = await scrape(client, gzip_ok=False)
        gzip_headers, compressed = await scrape(client, gzip_ok=True)
        assert "Content-Encoding" not in plain_headers and gzip_headers["Content-Encoding"] == "gzip"
        assert gzip_headers["Vary"] == "Accept-Encoding" and int(gzip_headers["Content-Length"]) == len(compressed)
        assert gzip.decompress(compressed) == plain and b'target="127.0.0.2:25"' in plain
        made = len(compressed_texts)       # the families' headers, and each target's families
        await scrape(client, gzip_ok=True)
        assert len(compressed_texts) == made   # nothing changed: nothing compressed again
        bad = Target("127.0.0.2", 25, "smtp")
        exporter.results.endpoints.put(bad.key, bad, host_result(failed_result(FailureReason.CONNECTION_REFUSED)))
        _, plain = await scrape(client, gzip_ok=False)
        _, compressed = await scrape(client, gzip_ok=True)
        assert compressed_texts[made:] and all(   # only its bucket's families (the other target hashes elsewhere)
            b"127.0.0.2:25" in text and b"127.0.0.1:25" not in text for text in compressed_texts[made:])
        assert gzip.decompress(compressed) == plain and b'reason="connection_refused"' in plain
        exporter.results.endpoints.discard(bad.key)
        _, plain = await scrape(client, gzip_ok=False)
        _, compressed = await scrape(client, gzip_ok=True)
        assert gzip.decompress(compressed) == plain and b'target="127.0.0.2:25"' not in plain


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
async def test_promtool_accepts_the_gzip_body(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("global:\n  interval: 1h\n")
    async with running_app(config) as (exporter, client):
        put_results(exporter)
        _, compressed = await scrape(client, gzip_ok=True)
    run = subprocess.run(["promtool", "check", "metrics"], input=gzip.decompress(compressed),
                         capture_output=True, timeout=60)
    assert run.returncode == 0 and not (run.stdout + run.stderr).strip(), run.stdout + run.stderr
