"""Sharding: jump consistent hash, the share of each exporter, and two real exporters splitting a config."""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from exporter.config import Config, Domain, Target
from exporter.service.sharding import Shard, jump_hash, shard_of

from exporter_process import ExporterProcess, sample_value
from hostile import closed_port
from tests.realservers import stop_process


def reference_jump_hash(key: int, buckets: int) -> int:
    """The paper's C++ code, transcribed with explicit 64-bit wrap-around, as an oracle."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) % 2**64
        j = int(float(b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def test_jump_hash_known_values():
    # Fixed values: they pin the shard of every host, which must never change between versions.
    assert [jump_hash(1, 1), jump_hash(0xDEAD10CC, 1), jump_hash(0xDEAD10CC, 666)] == [0, 0, 361]
    assert jump_hash(256, 1024) == 520


@pytest.mark.parametrize("buckets", [1, 2, 3, 7, 100])
def test_jump_hash_matches_the_reference_and_stays_in_range(buckets):
    for key in range(0, 2**64, 2**58 + 12345):
        bucket = jump_hash(key, buckets)
        assert 0 <= bucket < buckets
        assert bucket == reference_jump_hash(key, buckets)


def test_adding_a_replica_moves_about_one_in_n_hosts():
    hosts = [f"mx{i}.example.org" for i in range(3000)]
    for count in (2, 3, 4, 8):
        moved = sum(shard_of(host, count) != shard_of(host, count + 1) for host in hosts)
        # Ideal: 1/(count+1) of the hosts move, all to the new shard.
        assert abs(moved / len(hosts) - 1 / (count + 1)) < 0.03, (count, moved)
        assert all(shard_of(h, count + 1) == count for h in hosts if shard_of(h, count) != shard_of(h, count + 1))


def test_shares_are_balanced():
    counts = collections.Counter(shard_of(f"host{i}.example", 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(abs(n - 1000) < 120 for n in counts.values()), counts


def test_shard_key_is_the_sha256_of_the_name():
    digest = hashlib.sha256(b"mx.example.org").digest()
    assert shard_of("mx.example.org", 5) == jump_hash(int.from_bytes(digest[:8], "big"), 5)


def test_select_keeps_each_target_and_domain_in_exactly_one_shard():
    targets = tuple(Target(f"mx{i}.example.org", port, module)
                    for i in range(50) for port, module in ((25, "smtp"), (993, "imaps")))
    domains = tuple(Domain(f"d{i}.example") for i in range(30))
    config = Config(targets=targets, domains=domains)
    shards = [Shard(index, 3).select(config) for index in range(3)]
    assert sorted(t.key for s in shards for t in s.targets) == sorted(t.key for t in targets)
    assert sorted(d.name for s in shards for d in s.domains) == sorted(d.name for d in domains)
    for shard in shards:   # both endpoints of a host stay together
        hosts = collections.Counter(t.host for t in shard.targets)
        assert set(hosts.values()) == {2}
    assert Shard().select(config) is config


@pytest.mark.parametrize("index, count", [(1, 1), (-1, 2), (0, 0), (3, 2)])
def test_invalid_shards_are_refused(index, count):
    with pytest.raises(ValueError, match="shard index must be"):
        Shard(index, count)


def test_the_command_line_refuses_an_index_outside_the_count(tmp_path):
    run = subprocess.run([sys.executable, "-m", "exporter", "--config.file", str(tmp_path / "none.yml"),
                          "--shard.index", "2", "--shard.count", "2"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--shard.index/--shard.count: shard index must be from 0 to 1" in run.stderr


# --------------------------------------------------------------------------------------
# Two real exporters, and a real Prometheus scraping both
# --------------------------------------------------------------------------------------

HOSTS = [f"127.0.1.{i}" for i in range(1, 41)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_shards(tmp_path):
    port = closed_port()     # closed on every 127.0.1.x: each probe fails fast with connection_refused
    targets = "".join(f"  - {{host: {host}, port: {port}, module: smtp}}\n" for host in HOSTS)
    config = tmp_path / "config.yml"
    config.write_text(f"global: {{interval: 1m, timeout: 2s, jitter: 0s}}\ntargets:\n{targets}")
    processes = []
    try:
        for index in range(2):
            processes.append(ExporterProcess(config, "--shard.index", str(index), "--shard.count", "2"))
        yield processes, port
    finally:
        for process in processes:
            process.stop()


def probed_targets(samples) -> set[str]:
    return {s.labels["target"] for s in samples if s.name == "mailsec_probe_success"}


def test_two_exporters_probe_every_target_exactly_once(two_shards):
    processes, port = two_shards
    everything = {f"{host}:{port}" for host in HOSTS}
    shares = []
    for index, process in enumerate(processes):
        expected = {f"{host}:{port}" for host in HOSTS if shard_of(host, 2) == index}
        samples = process.wait_for(lambda s: probed_targets(s) == expected and s)
        assert sample_value(samples, "mailsec_exporter_targets", kind="endpoint") == len(expected)
        assert sample_value(samples, "mailsec_exporter_shard_info", index=str(index), count="2") == 1
        shares.append(probed_targets(samples))
    assert shares[0] | shares[1] == everything and not shares[0] & shares[1]
    assert 10 <= len(shares[0]) <= 30      # both do a fair part of the work


def prometheus_query(port: int, query: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian package prometheus) not installed")
def test_prometheus_scraping_both_shards_sees_each_target_once(two_shards, tmp_path):
    processes, port = two_shards
    for process in processes:    # both have probed their share before Prometheus looks
        process.wait_for(lambda s: probed_targets(s))
    web_port = free_port()
    scrape_targets = ", ".join(f'"127.0.0.1:{process.port}"' for process in processes)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        f"scrape_configs:\n  - job_name: mailsec\n    static_configs:\n      - targets: [{scrape_targets}]\n"
    )
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 45
        while True:
            try:
                series = prometheus_query(web_port, "count by (target) (mailsec_probe_success)")
                if len(series) == len(HOSTS):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass   # still starting
            assert time.monotonic() < deadline, "Prometheus did not see every target in time"
            assert prometheus.poll() is None, prometheus.stderr.read()
            time.sleep(0.5)
        assert {s["metric"]["target"] for s in series} == {f"{host}:{port}" for host in HOSTS}
        assert all(s["value"][1] == "1" for s in series)          # each target from exactly one exporter
        instances = prometheus_query(web_port, "count by (instance) (mailsec_probe_success)")
        assert len(instances) == 2 and sum(int(s["value"][1]) for s in instances) == len(HOSTS)
    finally:
        stop_process(prometheus, timeout=15)
