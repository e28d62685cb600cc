"""Runs every configured probe on its interval, within the concurrency limits.

One asyncio task per target, so a target never runs twice at once; a global semaphore
and one per host bound the connections (mail servers rate-limit and block scanners);
each probe is bounded by its timeout; a probe that raises becomes a failed result with
reason `internal_error` and the loop goes on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import time
from typing import AsyncIterator, Awaitable, Callable

from dataclasses import dataclass, field, replace

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
DomainCheck = Callable[..., Awaitable[DomainResult]]   # check_domain's signature
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


@dataclass(frozen=True)
class _Job:
    """One recurring task of the scheduler. Two jobs with equal `settings` are the same job:
    a reload that leaves them equal keeps the running task and its results."""

    key: str
    settings: tuple
    interval: float
    run: Callable[..., Awaitable[object]] = field(compare=False)


# Failures that say "go away" (SMTP 421/554, IMAP BYE, POP3 -ERR, refused connections):
# insisting on the interval gets a scanner blocklisted, so the next runs back off.
BACKOFF_REASONS = frozenset({FailureReason.CONNECTION_REFUSED, FailureReason.SERVICE_UNAVAILABLE})


def backoff_delay(refusals: int, interval: float, maximum: float) -> float:
    """Extra wait after `refusals` consecutive refusals: the interval doubles with each
    (1x, 3x, 7x... extra), never more than `maximum`."""
    return min(interval * (2 ** refusals - 1), maximum)


class Scheduler:
    def __init__(self, results: ResultStores, metrics: ExporterMetrics, probes: Probes = Probes()):
        self._endpoints = results.endpoints
        self._domains = results.domains
        self._scans = results.scans
        self._metrics = metrics
        self._probes = probes
        self._jobs: dict[str, tuple[_Job, asyncio.Task]] = {}
        self._configured_endpoints: set[str] = set()     # target keys listed in the config
        self._mx_of: dict[str, frozenset[str]] = {}       # domain key -> its MX host names
        self._mx_refs: collections.Counter[str] = collections.Counter()
        self._refusals: dict[str, int] = {}               # job key -> consecutive refusals
        self._last_failure: dict[str, FailureReason | None] = {}
        self.next_run: dict[str, float] = {}   # job key (a target's key for endpoints) -> Unix time
        self.config = Config()
        self.dns = DNSClient(self.config.dns)
        self._limits = _Limits(self.config)

    def apply(self, config: Config) -> None:
        """Start, restart or stop jobs so they match `config`.

        Results of jobs whose settings did not change survive; removed targets vanish.
        """
        self.config = config
        self.dns = DNSClient(config.dns)
        self._limits = _Limits(config)
        jobs = [self._endpoint_job(target) for target in config.targets]
        self._configured_endpoints = {job.key for job in jobs}
        jobs += [self._scan_job(target) for target in config.targets if config.modules[target.module].deep_scan]
        jobs += [self._domain_job(domain) for domain in config.domains]
        wanted = {job.key: job for job in jobs}
        # MX hosts discovered by the checks of domains that stay configured.
        self._mx_of = {key: hosts for key, hosts in self._mx_of.items() if key in wanted}
        self._mx_refs = collections.Counter(host for hosts in self._mx_of.values() for host in hosts)
        for host in self._mx_refs:
            for job in self._mx_jobs(host):
                wanted.setdefault(job.key, job)

        for key in list(self._jobs):
            if key not in wanted or wanted[key] != self._jobs[key][0]:
                self._stop_job(key)
        for key, job in wanted.items():
            if key not in self._jobs:
                self._start_job(job)
        self._endpoints.retain(wanted)
        self._domains.retain(wanted)
        self._scans.retain(wanted)
        self._last_failure = {k: v for k, v in self._last_failure.items() if k in wanted}

    def _endpoint_job(self, target: Target) -> _Job:
        module = self.config.modules[target.module]
        return _Job(target.key, (target, module), module.interval, functools.partial(self.run_once, target, module))

    def _scan_job(self, target: Target) -> _Job:
        module = self.config.modules[target.module]
        settings = module.deep_scan
        run = functools.partial(self.scan_once, target, module, settings)
        return _Job(scan_key(target), (target, module), settings.interval, run)

    def _domain_interval(self) -> float:
        return self.config.domain_checks.interval or self.config.global_.interval

    def _domain_job(self, domain: Domain) -> _Job:
        settings = self.config.domain_checks
        interval = self._domain_interval()
        return _Job(domain_key(domain), (domain, settings, interval), interval, functools.partial(self.check_once, domain))

    def _mx_target(self, host: str) -> Target:
        module = self.config.modules[self.config.domain_checks.mx_module]
        return Target(host, module.port, module.name)

    def _mx_jobs(self, host: str) -> list[_Job]:
        """The jobs of a discovered MX host (its probe, and its deep scan if the MX module
        has one); none when discovery is off or the config lists the target already."""
        target = self._mx_target(host)
        if not self.config.domain_checks.probe_mx or target.key in self._configured_endpoints:
            return []
        jobs = [self._endpoint_job(target)]
        if self.config.modules[target.module].deep_scan is not None:
            jobs.append(self._scan_job(target))
        return jobs

    def discovered_targets(self) -> list[Target]:
        """MX hosts probed because a domain names them, not because the config lists them."""
        return [self._mx_target(host) for host in sorted(self._mx_refs) if self._mx_jobs(host)]

    def _start_job(self, job: _Job) -> None:
        task = asyncio.create_task(self._loop(job), name=job.key)
        self._jobs[job.key] = (job, task)
        self._metrics.targets.labels(_job_kind(job.key)).inc()

    def _stop_job(self, key: str) -> None:
        _, task = self._jobs.pop(key)
        task.cancel()
        self.next_run.pop(key, None)
        self._refusals.pop(key, None)
        self._metrics.targets.labels(_job_kind(key)).dec()

    async def stop(self) -> None:
        tasks = [task for _, task in self._jobs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()

    async def _loop(self, job: _Job) -> None:
        # A random first offset spreads the load; runs then keep a regular interval.
        due = time.monotonic() + random.uniform(0, min(self.config.global_.jitter, job.interval))
        while True:
            self.next_run[job.key] = time.time() + (due - time.monotonic())
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                result = await job.run(due=due)
            except Exception:   # a bug of ours: the job must keep its schedule, not die with it
                log.exception("run of %s failed unexpectedly", job.key)
                result = None
            due += job.interval + self._backoff(job, result)
            if due < time.monotonic():   # fell behind (e.g. the process was suspended): skip, don't burst
                due = time.monotonic() + job.interval

    def _backoff(self, job: _Job, result: object) -> float:
        """Seconds to add before the next run of `job` after `result` (0 unless refused)."""
        target = job.settings[0]
        if getattr(result, "failure", None) not in BACKOFF_REASONS or not isinstance(target, Target):
            if self._refusals.pop(job.key, None) is not None:
                self._metrics.backoff.remove(*_backoff_labels(job))
            return 0.0
        refusals = self._refusals[job.key] = self._refusals.get(job.key, 0) + 1
        delay = backoff_delay(refusals, job.interval, self.config.global_.backoff_max)
        self._metrics.backoff.labels(*_backoff_labels(job)).set(delay)
        return delay

    async def run_once(self, target: Target, module: Module, due: float | None = None) -> EndpointResult:
        """Probe `target` now (within the limits), store and return the result."""
        async with self.slot(target.host):
            if due is not None:
                self._metrics.scheduler_lag.observe(max(0.0, time.monotonic() - due))
            result = await guarded_probe(self._probes.endpoint, target, module, self.dns)
        result = replace(result, interval_seconds=module.interval)
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
                    settings = self.config.domain_checks
                    result = await self._probes.domain(
                        domain, self.dns, chain_for=self.mx_chain,
                        https_ca_file=settings.mta_sts_ca_file, https_timeout=settings.https_timeout,
                    )
            except Exception:   # TimeoutError included
                log.exception("domain check failed", extra=with_fields(domain=domain.name))
                self._metrics.record_probe("domain", "", False, time.monotonic() - started)
                return None
        result = replace(result, interval_seconds=self._domain_interval())
        self._domains.put(domain_key(domain), domain, result)
        self._metrics.record_probe("domain", "", result.success, result.duration_seconds)
        if result.mx.failure is None:   # a failed MX lookup says nothing about the MX set
            self._discover_mx(domain_key(domain), frozenset(host.name for host in result.mx.hosts))
        return result

    def _discover_mx(self, key: str, hosts: frozenset[str]) -> None:
        """Probe the MX hosts a domain names (each once, however many domains share it) and
        stop probing those no domain names any more."""
        previous = self._mx_of.get(key, frozenset())
        self._mx_of[key] = hosts
        for host in hosts - previous:
            self._mx_refs[host] += 1
            for job in self._mx_jobs(host) if self._mx_refs[host] == 1 else ():
                if job.key not in self._jobs:
                    self._start_job(job)
        for host in previous - hosts:
            self._mx_refs[host] -= 1
            if self._mx_refs[host] == 0:
                del self._mx_refs[host]
                for job in self._mx_jobs(host):
                    if job.key in self._jobs:
                        self._stop_job(job.key)
                    self._endpoints.discard(job.key)
                    self._scans.discard(job.key)

    def mx_chain(self, host: str) -> tuple[bytes, ...] | None:
        """The certificate chain the MX host last presented on the MX module's port (DANE)."""
        entry = self._endpoints.get(self._mx_target(host).key)
        if entry is None or entry.result.tls is None:
            return None
        return tuple(cert.der for cert in entry.result.tls.chain)

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


def _job_kind(key: str) -> str:
    return "domain" if key.startswith("domain/") else "deep_scan" if key.startswith("scan/") else "endpoint"


def _backoff_labels(job: _Job) -> tuple[str, str, str]:
    target = job.settings[0]
    return (_job_kind(job.key), target.address, target.module)


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
