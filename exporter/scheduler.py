"""Runs every configured probe on its interval, within the concurrency limits.

One asyncio task per target, so a target never runs twice at once; a global semaphore
and one per host bound the connections (mail servers rate-limit and block scanners);
each probe is bounded by its timeout; a probe that raises becomes a failed result with
reason `internal_error` and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from typing import AsyncIterator, Awaitable, Callable

from dataclasses import dataclass

from .config import Config, DeepScanSettings, Domain, Module, Target
from .dnsclient import DNSClient
from .domains.check import DomainResult, check_domain
from .probes.endpoint import probe_endpoint
from .tlsscan.results import TLSScanResult
from .tlsscan.scanner import scan_endpoint
from .logfmt import with_fields
from .results import EndpointResult, FailureReason
from .selfmetrics import ExporterMetrics
from .store import ResultStores

log = logging.getLogger(__name__)

EndpointProbe = Callable[[Target, Module, DNSClient], Awaitable[EndpointResult]]
DomainCheck = Callable[[Domain, DNSClient], Awaitable[DomainResult]]
DeepScan = Callable[..., Awaitable[TLSScanResult]]   # scan_endpoint's signature


@dataclass(frozen=True)
class Probes:
    """What the scheduler runs; tests put in-process stand-ins here."""

    endpoint: EndpointProbe = probe_endpoint
    domain: DomainCheck = check_domain
    deep_scan: DeepScan = scan_endpoint

# Every lookup has the DNS timeout, but an SPF evaluation may chain ten of them: bound a
# whole domain run generously, so that only a stuck resolver hits this.
DOMAIN_CHECK_TIMEOUT_SECONDS = 120.0

# A probe enforces its own timeout; this margin only catches a probe that fails to.
_TIMEOUT_GRACE_SECONDS = 2.0


def failed_result(reason: FailureReason, detail: str, started_at: float, duration: float) -> EndpointResult:
    return EndpointResult(
        success=False,
        failure=reason,
        failure_detail=detail,
        observed_at=started_at,
        duration_seconds=duration,
    )


async def guarded_probe(probe: EndpointProbe, target: Target, module: Module, dns: DNSClient) -> EndpointResult:
    """Run `probe`, turning a probe that overruns its timeout or raises into a failed result."""
    started_at, started = time.time(), time.monotonic()
    try:
        async with asyncio.timeout(module.timeout + _TIMEOUT_GRACE_SECONDS):
            return await probe(target, module, dns)
    except TimeoutError:
        detail = f"probe did not finish within {module.timeout:g}s"
        return failed_result(FailureReason.TIMEOUT, detail, started_at, time.monotonic() - started)
    except Exception as exc:
        log.exception("probe raised", extra=with_fields(target=target.address, module=module.name))
        detail = f"{type(exc).__name__}: {exc}"
        return failed_result(FailureReason.INTERNAL_ERROR, detail, started_at, time.monotonic() - started)


class Scheduler:
    def __init__(self, results: ResultStores, metrics: ExporterMetrics, probes: Probes = Probes()):
        self._endpoints = results.endpoints
        self._domains = results.domains
        self._scans = results.scans
        self._metrics = metrics
        self._probes = probes
        # job key -> (what the job runs with, its task); a changed setting restarts the job
        self._loops: dict[str, tuple[object, asyncio.Task]] = {}
        self._last_failure: dict[str, FailureReason | None] = {}
        self.next_run: dict[str, float] = {}   # target key -> Unix time of its next run
        self.config = Config()
        self.dns = DNSClient(self.config.dns)
        self._limits = _Limits(self.config)

    def apply(self, config: Config) -> None:
        """Start, restart or stop target loops so they match `config`.

        Results of targets whose settings did not change survive; removed targets vanish.
        """
        self.config = config
        self.dns = DNSClient(config.dns)
        self._limits = _Limits(config)
        endpoints = {target.key: (target, config.modules[target.module]) for target in config.targets}
        domains = {domain_key(domain): (domain, config.global_.interval) for domain in config.domains}
        scans = {
            scan_key(target): (target, module)
            for target, module in endpoints.values()
            if module.deep_scan is not None
        }
        wanted: dict[str, object] = {**endpoints, **domains, **scans}
        for key in list(self._loops):
            settings, task = self._loops[key]
            if wanted.get(key) != settings:
                task.cancel()
                del self._loops[key]
                self.next_run.pop(key, None)
        for key, (target, module) in endpoints.items():
            if key not in self._loops:
                job = functools.partial(self.run_once, target, module)
                self._start(key, (target, module), module.interval, job)
        for key, (domain, interval) in domains.items():
            if key not in self._loops:
                self._start(key, (domain, interval), interval, functools.partial(self.check_once, domain))
        for key, (target, module) in scans.items():
            if key not in self._loops:
                job = functools.partial(self.scan_once, target, module, module.deep_scan)
                self._start(key, (target, module), module.deep_scan.interval, job)
        self._endpoints.retain(endpoints)
        self._domains.retain(domains)
        self._scans.retain(scans)
        self._last_failure = {k: v for k, v in self._last_failure.items() if k in wanted}
        self._metrics.targets.labels("endpoint").set(len(endpoints))
        self._metrics.targets.labels("domain").set(len(domains))
        self._metrics.targets.labels("deep_scan").set(len(scans))

    def _start(self, key: str, settings: object, interval: float, job: Callable[..., Awaitable[object]]) -> None:
        task = asyncio.create_task(self._loop(key, interval, job), name=key)
        self._loops[key] = (settings, task)

    async def stop(self) -> None:
        tasks = [task for _, task in self._loops.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()

    async def _loop(self, key: str, interval: float, job: Callable[..., Awaitable[object]]) -> None:
        # A random first offset spreads the load; runs then keep a regular interval.
        due = time.monotonic() + random.uniform(0, min(self.config.global_.jitter, interval))
        while True:
            self.next_run[key] = time.time() + (due - time.monotonic())
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await job(due=due)
            due += interval
            if due < time.monotonic():   # fell behind (e.g. the process was suspended): skip, don't burst
                due = time.monotonic() + interval

    async def run_once(self, target: Target, module: Module, due: float | None = None) -> EndpointResult:
        """Probe `target` now (within the limits), store and return the result."""
        async with self.slot(target.host):
            if due is not None:
                self._metrics.scheduler_lag.observe(max(0.0, time.monotonic() - due))
            result = await guarded_probe(self._probes.endpoint, target, module, self.dns)
        self._endpoints.put(target.key, target, result)
        self._metrics.record_probe("endpoint", module.name, result.success, result.duration_seconds)
        self._log_state_change(target, result)
        return result

    async def check_once(self, domain: Domain, due: float | None = None) -> DomainResult | None:
        """Run the DNS checks of `domain` now (within the overall limit) and store the result.

        Each check reports its own lookup failures; a run that raises or overruns is logged,
        counted as a failure, and leaves the previous result in place.
        """
        async with self._limits.overall:
            if due is not None:
                self._metrics.scheduler_lag.observe(max(0.0, time.monotonic() - due))
            started = time.monotonic()
            try:
                async with asyncio.timeout(DOMAIN_CHECK_TIMEOUT_SECONDS):
                    result = await self._probes.domain(domain, self.dns)
            except Exception:   # TimeoutError included
                log.exception("domain check failed", extra=with_fields(domain=domain.name))
                self._metrics.record_probe("domain", "", False, time.monotonic() - started)
                return None
        self._domains.put(domain_key(domain), domain, result)
        self._metrics.record_probe("domain", "", result.success, result.duration_seconds)
        return result

    async def scan_once(
        self, target: Target, module: Module, settings: DeepScanSettings, due: float | None = None
    ) -> TLSScanResult | None:
        """Deep-scan `target` now and store the result. The scan holds the host's slot for
        its whole run: its connections count against the per-host limit like any probe's."""
        async with self.slot(target.host):
            if due is not None:
                self._metrics.scheduler_lag.observe(max(0.0, time.monotonic() - due))
            result = await self.deep_scan(target, module, settings)
        if result is not None:
            self._scans.put(scan_key(target), target, result)
        return result

    async def deep_scan(self, target: Target, module: Module, settings: DeepScanSettings) -> TLSScanResult | None:
        """One deep scan, counted in the self-metrics; None (logged) if the scan raised or
        overran its budget. The caller holds the concurrency slot."""
        started = time.monotonic()
        try:
            # The scan keeps to its budget itself; the margin only catches a scan that fails to.
            async with asyncio.timeout(settings.budget + _TIMEOUT_GRACE_SECONDS):
                result = await self._probes.deep_scan(
                    target, module, self.dns, min_delay=settings.min_delay, budget=settings.budget
                )
        except Exception:   # TimeoutError included
            log.exception("deep scan failed", extra=with_fields(target=target.address, module=module.name))
            self._metrics.record_probe("deep_scan", module.name, False, time.monotonic() - started)
            return None
        self._metrics.record_probe("deep_scan", module.name, result.success, result.duration_seconds)
        return result

    @contextlib.asynccontextmanager
    async def slot(self, host: str, wait_limit: float | None = None) -> AsyncIterator[None]:
        """Hold one of the concurrency slots (overall and for `host`) while probing.

        Waiting for the slots gives up with TimeoutError after `wait_limit` seconds; the
        probe itself, inside the slot, is not bounded here.
        """
        limits = self._limits
        host_limit = limits.for_host(host)
        async with asyncio.timeout(wait_limit):
            await limits.overall.acquire()
            try:
                await host_limit.acquire()
            except BaseException:
                limits.overall.release()
                raise
        try:
            yield
        finally:
            host_limit.release()
            limits.overall.release()

    def _log_state_change(self, target: Target, result: EndpointResult) -> None:
        """Log a target's first result and each change of its failure reason, not every run."""
        previous = self._last_failure.get(target.key, "unknown")
        if result.failure == previous:
            return
        self._last_failure[target.key] = result.failure
        if result.failure is None:
            log.info("probe succeeded", extra=with_fields(target=target.address, module=target.module))
        else:
            log.warning("probe failed", extra=with_fields(
                target=target.address, module=target.module,
                reason=result.failure.value, detail=result.failure_detail,
            ))


def scan_key(target: Target) -> str:
    return f"scan/{target.key}"


def domain_key(domain: Domain) -> str:
    """The job and store key of a domain (targets' keys always have a port, so never clash)."""
    return f"domain/{domain.name}"


class _Limits:
    """The concurrency limits of one loaded configuration."""

    def __init__(self, config: Config):
        self.overall = asyncio.Semaphore(config.global_.concurrency)
        self._per_host = config.global_.per_host_concurrency
        self._hosts: dict[str, asyncio.Semaphore] = {}

    def for_host(self, host: str) -> asyncio.Semaphore:
        key = host.lower().rstrip(".")
        if key not in self._hosts:
            self._hosts[key] = asyncio.Semaphore(self._per_host)
        return self._hosts[key]
