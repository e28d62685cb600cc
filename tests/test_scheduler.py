"""The scheduler with in-process probe functions: limits, isolation of failures, reload."""

import asyncio
import time
from dataclasses import dataclass, replace
from types import MappingProxyType, SimpleNamespace

import pytest

from prometheus_client import CollectorRegistry

from exporter.config import Config, Domain, GlobalSettings, Module, MailProtocol, StartTLS, Target
from exporter.results import EndpointResult, FailureReason
from exporter.service.runs import Probes
from exporter.service.scheduler import Scheduler, backoff_delay
from exporter.service.store import LatestResults, ResultStores
from exporter.metrics.selfmetrics import ExporterMetrics

from results_factory import tls_result


def make_config(targets, *, interval=0.2, timeout=0.5, per_host=1, concurrency=32) -> Config:
    module = Module("smtp", MailProtocol.SMTP, 25, StartTLS.REQUIRED, timeout=timeout, interval=interval)
    return Config(
        global_=GlobalSettings(interval=interval, timeout=timeout, concurrency=concurrency,
                               per_host_concurrency=per_host, jitter=0.0),
        modules=MappingProxyType({"smtp": module}),
        targets=tuple(targets),
    )


def make_scheduler(probe):
    registry = CollectorRegistry()
    results = ResultStores()
    return Scheduler(results, ExporterMetrics(registry), Probes(endpoint=probe)), results.endpoints, registry


class ConcurrencyProbe:
    """Records how many probes run at once, overall and per target key."""

    def __init__(self, seconds=0.05):
        self.seconds = seconds
        self.running = 0
        self.max_running = 0
        self.running_keys: set[str] = set()
        self.overlap = False
        self.calls = 0

    async def __call__(self, target, module, dns):
        self.calls += 1
        if target.key in self.running_keys:
            self.overlap = True
        self.running_keys.add(target.key)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await asyncio.sleep(self.seconds)
        self.running -= 1
        self.running_keys.discard(target.key)
        return tls_result()


async def test_per_host_limit_serialises_probes_of_one_server_address():
    probe = ConcurrencyProbe(seconds=0.05)
    scheduler, store, _ = make_scheduler(probe)
    targets = [Target("127.0.0.1", port, "smtp") for port in (25, 587, 2525)]
    scheduler.apply(make_config(targets, per_host=1))
    await asyncio.sleep(0.5)
    await scheduler.stop()
    assert probe.calls >= 3
    assert probe.max_running == 1
    assert len(store) == 3


async def test_global_limit_bounds_all_hosts_together():
    probe = ConcurrencyProbe(seconds=0.1)
    scheduler, _, _ = make_scheduler(probe)
    targets = [Target(f"127.0.0.{i}", 25, "smtp") for i in range(1, 9)]
    scheduler.apply(make_config(targets, concurrency=3, per_host=1))
    await asyncio.sleep(0.5)
    await scheduler.stop()
    assert probe.max_running == 3


async def test_a_target_never_runs_twice_at_once_even_when_slower_than_its_interval():
    probe = ConcurrencyProbe(seconds=0.3)   # longer than the 0.1 s interval
    scheduler, _, _ = make_scheduler(probe)
    scheduler.apply(make_config([Target("127.0.0.1", 25, "smtp")], interval=0.1, timeout=0.1))
    await asyncio.sleep(1.0)
    await scheduler.stop()
    assert probe.calls >= 2 and not probe.overlap


async def test_a_raising_probe_is_an_internal_error_and_the_loop_goes_on():
    calls = []

    async def broken_probe(target, module, dns):
        calls.append(target.key)
        raise RuntimeError("boom")

    scheduler, store, registry = make_scheduler(broken_probe)
    target = Target("127.0.0.1", 25, "smtp")
    scheduler.apply(make_config([target], interval=0.1))
    for _ in range(100):            # the loop goes on: three runs, however slow the machine
        if len(calls) >= 3:
            break
        await asyncio.sleep(0.05)
    await scheduler.stop()
    assert len(calls) >= 3
    result = store.get(target.key).result
    assert result.failure is FailureReason.INTERNAL_ERROR and "boom" in result.failure_detail
    failures = registry.get_sample_value("mailsec_exporter_probes_total", {"kind": "endpoint", "module": "smtp", "result": "failure"})
    assert failures == len(calls)


async def test_stored_results_carry_their_modules_interval():
    scheduler, store, _ = make_scheduler(ConcurrencyProbe(seconds=0.0))
    target = Target("127.0.0.1", 25, "smtp")
    scheduler.apply(make_config([target], interval=0.25))
    for _ in range(100):
        if store.get(target.key) is not None:
            break
        await asyncio.sleep(0.02)
    await scheduler.stop()
    assert store.get(target.key).result.interval_seconds == 0.25


async def test_a_bug_after_the_probe_does_not_end_the_job():
    # A probe function handing back something that is not a result makes run_once itself
    # raise (not the probe, which guarded_probe would catch): the job keeps its schedule.
    calls = []

    async def wrong_probe(target, module, dns):
        calls.append(target.key)
        return object()

    scheduler, _, _ = make_scheduler(wrong_probe)
    scheduler.apply(make_config([Target("127.0.0.1", 25, "smtp")], interval=0.1))
    for _ in range(100):
        if len(calls) >= 3:
            break
        await asyncio.sleep(0.05)
    await scheduler.stop()
    assert len(calls) >= 3


async def test_a_probe_ignoring_its_timeout_is_cut_and_others_are_unaffected():
    async def probe(target, module, dns):
        if target.host == "127.0.0.66":
            await asyncio.sleep(3600)
        return tls_result()

    scheduler, store, _ = make_scheduler(probe)
    stuck, good = Target("127.0.0.66", 25, "smtp"), Target("127.0.0.1", 25, "smtp")
    scheduler.apply(make_config([stuck, good], interval=60, timeout=0.1))
    await asyncio.sleep(0.3)
    assert store.get(good.key).result.success       # not delayed by the stuck one (per-host limits apart)
    await asyncio.sleep(2.2)                          # timeout + the scheduler's grace period
    await scheduler.stop()
    assert store.get(stuck.key).result.failure is FailureReason.TIMEOUT


async def test_reload_keeps_unchanged_results_and_drops_removed_targets():
    probe = ConcurrencyProbe(seconds=0.0)
    scheduler, store, _ = make_scheduler(probe)
    kept, removed, added = (Target(f"127.0.0.{i}", 25, "smtp") for i in (1, 2, 3))
    scheduler.apply(make_config([kept, removed], interval=60))
    await asyncio.sleep(0.1)
    first_kept_result = store.get(kept.key).result
    scheduler.apply(make_config([kept, added], interval=60))
    await asyncio.sleep(0.1)
    await scheduler.stop()
    assert store.get(kept.key).result is first_kept_result   # not re-run, not lost
    assert store.get(removed.key) is None
    assert store.get(added.key) is not None


@pytest.mark.parametrize("refusals, interval, maximum, delay", [
    (1, 300, 3600, 300),      # one more interval
    (2, 300, 3600, 900),      # then three more
    (3, 300, 3600, 2100),
    (4, 300, 3600, 3600),     # capped
    (10, 300, 3600, 3600),
    (1, 300, 0, 0),           # backoff_max 0: off
])
def test_backoff_delay(refusals, interval, maximum, delay):
    assert backoff_delay(refusals, interval, maximum) == delay


def refused_result():
    return EndpointResult(success=False, failure=FailureReason.CONNECTION_REFUSED, failure_detail="refused",
                          observed_at=0.0, duration_seconds=0.0)


async def test_refusals_back_off_and_a_success_ends_it():
    answers = [refused_result(), refused_result(), tls_result()]
    labels = {"kind": "endpoint", "target": "127.0.0.1:25", "module": "smtp"}
    calls: list[tuple[float, float | None]] = []     # (when, the backoff gauge as the run starts)

    async def probe(target, module, dns):
        calls.append((time.monotonic(), registry.get_sample_value("mailsec_exporter_backoff_seconds", labels)))
        return answers.pop(0) if answers else tls_result()

    scheduler, store, registry = make_scheduler(probe)
    target = Target("127.0.0.1", 25, "smtp")
    scheduler.apply(make_config([target], interval=0.1))
    for _ in range(100):
        if len(calls) >= 4:
            break
        await asyncio.sleep(0.05)
    await scheduler.stop()
    assert [gauge for _, gauge in calls[:4]] == [None, pytest.approx(0.1), pytest.approx(0.3), None]
    # Each refusal pushed the next run back: 1 then 3 intervals more (later under load, never sooner).
    assert calls[1][0] - calls[0][0] >= 0.2 - 0.01
    assert calls[2][0] - calls[1][0] >= 0.4 - 0.01
    assert store.get(target.key).result.success


@dataclass(frozen=True)
class StubDomainResult:
    """What the scheduler reads of a domain check: its MX hosts, DANE, success, whether it
    could check and duration (and the interval it sets before storing it)."""

    mx: SimpleNamespace
    dane: tuple = ()
    success: bool = True
    checked: bool = True
    duration_seconds: float = 0.0
    interval_seconds: float | None = None


MX_ADDRESSES = {"mx.shared.test": "127.0.0.10", "mx.a.test": "127.0.0.11"}


class PinnedNames:
    """The scheduler's DNS in these tests: the addresses of the test's MX names, nothing else."""

    def __init__(self, addresses: dict[str, str]):
        self._addresses = addresses

    async def resolve_addresses(self, host: str) -> list[str]:
        return [self._addresses[host]]


def domain_result(*mx_hosts: str) -> StubDomainResult:
    return StubDomainResult(SimpleNamespace(failure=None, hosts=tuple(SimpleNamespace(name=host) for host in mx_hosts)))


async def test_mx_hosts_of_domains_are_probed_once_and_dropped_when_no_domain_names_them():
    mx_sets = {"a.test": ["mx.shared.test", "mx.a.test"], "b.test": ["mx.shared.test"]}
    probed: list[str] = []
    probe_result = tls_result()
    chains_seen = []

    async def probe(target, module, dns):
        probed.append(target.key)
        return probe_result

    async def check(domain, dns, **settings):
        chains_seen.append(settings["chain_for"]("mx.shared.test"))
        return domain_result(*mx_sets[domain.name])

    # Plain stores: the stub results have only what the scheduler reads, not what /metrics renders.
    results = ResultStores(LatestResults(), LatestResults(), LatestResults())
    probes = Probes(endpoint=probe, domain=check, dns=lambda settings: PinnedNames(MX_ADDRESSES))
    scheduler = Scheduler(results, ExporterMetrics(CollectorRegistry()), probes)
    configured = Target("mx.a.test", 25, "smtp")     # listed in the config: not probed twice
    config = replace(make_config([configured], interval=60), domains=(Domain("a.test"), Domain("b.test")))
    scheduler.apply(config)
    await asyncio.sleep(0.2)
    assert sorted(probed) == ["smtp/mx.a.test:25", "smtp/mx.shared.test:25"]
    assert [t.key for t in scheduler.discovered_targets()] == ["smtp/mx.shared.test:25"]

    # DANE gets the chain the MX presented to the probe, once it has been probed.
    await scheduler.check_once(Domain("b.test"))
    assert chains_seen[0] is None
    assert chains_seen[-1] == {"127.0.0.10": (tuple(c.der for c in probe_result.tls.chain),)}

    mx_sets["a.test"], mx_sets["b.test"] = ["mx.a.test"], []     # nobody names mx.shared.test now
    await scheduler.check_once(Domain("a.test"))
    assert scheduler.discovered_targets() != []                   # b.test still names it
    await scheduler.check_once(Domain("b.test"))
    await scheduler.stop()
    assert scheduler.discovered_targets() == []
    assert results.endpoints.get("smtp/mx.shared.test:25") is None
    assert results.endpoints.get(configured.key) is not None


async def test_queued_domain_checks_never_delay_endpoint_probes():
    """Every domain-check slot is busy with a check that does not end until the endpoint has
    been probed: with one shared pool the probe would wait behind them forever."""
    endpoint_probed = asyncio.Event()

    async def probe(target, module, dns):
        endpoint_probed.set()
        return tls_result()

    async def slow_check(domain, dns, **settings):
        await endpoint_probed.wait()
        return domain_result()

    results = ResultStores(LatestResults(), LatestResults(), LatestResults())
    scheduler = Scheduler(results, ExporterMetrics(CollectorRegistry()), Probes(endpoint=probe, domain=slow_check))
    domains = tuple(Domain(f"d{n}.test") for n in range(40))      # ten times the pool
    scheduler.apply(replace(make_config([Target("127.0.0.1", 25, "smtp")], interval=60, concurrency=4),
                            domains=domains))
    try:
        await asyncio.wait_for(endpoint_probed.wait(), 10)
        await asyncio.wait_for(_until(lambda: len(results.domains) == len(domains)), 10)
    finally:
        await scheduler.stop()
    assert results.endpoints.get("smtp/127.0.0.1:25") is not None


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)
