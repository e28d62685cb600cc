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
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Awaitable, Callable

from ..config import Blocklist, Config, DeepScanSettings, Domain, Module, Target
from ..dnsclient import DNSClient, DNSError, PinnedResolver
from ..domains.check import DomainResult
from ..logfmt import with_fields
from ..metrics.selfmetrics import ExporterMetrics
from ..reputation.blocklists import BlocklistResult, run_blocklist
from ..results import FailureReason, HostResult, JobKind
from ..tlsscan.results import TLSScanResult
from .limits import ConcurrencyLimits
from .runs import (
    DOMAIN_CHECK_TIMEOUT_SECONDS,
    TIMEOUT_GRACE_SECONDS,
    Probes,
    SlotFor,
    failed_scan,
    first_address,
    probe_host,
    run_domain_check,
)
from .revocation import RevocationChecks
from .store import ResultStores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobKey:
    """The identity of a job: what it probes, and which subject (a target's key, a domain's name)."""

    kind: JobKind
    subject: str


@dataclass(frozen=True)
class _Job:
    """One recurring task of the scheduler. Two jobs with equal `settings` are the same job:
    a reload that leaves them equal keeps the running task and its results."""

    key: JobKey
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
        self._blocklists = results.blocklists
        self._listed_since = results.listed_since
        self._metrics = metrics
        self._probes = probes
        self.revocation = RevocationChecks(results.revocations, metrics)
        self._jobs: dict[JobKey, tuple[_Job, asyncio.Task]] = {}
        self._configured_endpoints: set[JobKey] = set()  # endpoint jobs listed in the config
        self._mx_of: dict[str, frozenset[str]] = {}       # domain name -> its MX host names
        self._mx_refs: collections.Counter[str] = collections.Counter()
        self._refusals: dict[JobKey, int] = {}            # consecutive refusals
        self._last_failure: dict[str, FailureReason | None] = {}   # by target key
        self._next_run: dict[JobKey, float] = {}          # Unix time
        self._rechecks: set[asyncio.Task] = set()         # domain checks run as an MX chain arrives
        self.config = Config()
        self.dns = probes.dns(self.config.dns)
        self.limits = ConcurrencyLimits(self.config.global_)

    def apply(self, config: Config) -> None:
        """Start, restart or stop jobs so they match `config`.

        Results of jobs whose settings did not change survive; removed targets vanish.
        """
        self.config = config
        # Runs of the previous configuration still finish their lookups on the old client's sockets.
        _close_dns(self.dns)
        self.dns = self._probes.dns(config.dns)
        self.limits = ConcurrencyLimits(config.global_)
        wanted = self._configured_jobs(config)
        self._keep_discovered_mx(wanted)
        for key in [key for key, (job, _) in self._jobs.items() if wanted.get(key) != job]:
            self._stop_job(key)
        for key, job in wanted.items():
            if key not in self._jobs:
                self._start_job(job)
        self._forget_all_but(wanted)

    def _configured_jobs(self, config: Config) -> dict[JobKey, _Job]:
        jobs = [self._endpoint_job(target) for target in config.targets]
        self._configured_endpoints = {job.key for job in jobs}
        jobs += [self._scan_job(target) for target in config.targets if config.modules[target.module].deep_scan]
        jobs += [self._domain_job(domain) for domain in config.domains]
        jobs += [self._blocklist_job(blocklist) for blocklist in config.blocklists.lists]
        return {job.key: job for job in jobs}

    def _keep_discovered_mx(self, wanted: dict[JobKey, _Job]) -> None:
        """Add to `wanted` the jobs of the MX hosts discovered by domains that stay configured."""
        self._mx_of = {name: hosts for name, hosts in self._mx_of.items() if JobKey(JobKind.DOMAIN, name) in wanted}
        self._mx_refs = collections.Counter(host for hosts in self._mx_of.values() for host in hosts)
        for host in self._mx_refs:
            for job in self._mx_jobs(host):
                wanted.setdefault(job.key, job)

    def _forget_all_but(self, wanted: dict[JobKey, _Job]) -> None:
        """Drop the results and state of every job not in `wanted`."""
        for kind, store in ((JobKind.ENDPOINT, self._endpoints), (JobKind.DOMAIN, self._domains),
                            (JobKind.DEEP_SCAN, self._scans), (JobKind.BLOCKLIST, self._blocklists)):
            store.retain(key.subject for key in wanted if key.kind is kind)
        self._listed_since.retain(key.subject for key in wanted if key.kind is JobKind.BLOCKLIST)
        self.revocation.retain(key.subject for key in wanted
                               if key.kind is JobKind.ENDPOINT and self.config.global_.revocation_checks)
        self._last_failure = {k: v for k, v in self._last_failure.items() if JobKey(JobKind.ENDPOINT, k) in wanted}

    def next_run(self, kind: JobKind, subject: str) -> float | None:
        """When the job of `subject` runs next (Unix time), if it is scheduled."""
        return self._next_run.get(JobKey(kind, subject))

    def _endpoint_job(self, target: Target) -> _Job:
        module = self.config.modules[target.module]
        run = functools.partial(self.run_once, target, module)
        return _Job(JobKey(JobKind.ENDPOINT, target.key), (target, module), module.interval, run)

    def _scan_job(self, target: Target) -> _Job:
        module = self.config.modules[target.module]
        settings = module.deep_scan
        run = functools.partial(self.scan_once, target, module, settings)
        return _Job(JobKey(JobKind.DEEP_SCAN, target.key), (target, module), settings.interval, run)

    def domain_interval(self) -> float:
        return self.config.domain_checks.interval or self.config.global_.interval

    def _domain_job(self, domain: Domain) -> _Job:
        settings = self.config.domain_checks
        interval = self.domain_interval()
        run = functools.partial(self.check_once, domain)
        return _Job(JobKey(JobKind.DOMAIN, domain.name), (domain, settings, interval), interval, run)

    def _blocklist_job(self, blocklist: Blocklist) -> _Job:
        # Domains and targets are read at each run: a reload that changes them does not
        # restart the job (and query the list again at once).
        settings = self.config.blocklists
        run = functools.partial(self.blocklist_once, blocklist)
        return _Job(JobKey(JobKind.BLOCKLIST, blocklist.name), (blocklist, settings.spf_addresses, settings.concurrency),
                    blocklist.interval, run)

    def _mx_target(self, host: str) -> Target:
        module = self.config.modules[self.config.domain_checks.mx_module]
        return Target(host, module.port, module.name)

    def _mx_jobs(self, host: str) -> list[_Job]:
        """The jobs of a discovered MX host (its probe, and its deep scan if the MX module
        has one); none when discovery is off or the config lists the target already."""
        target = self._mx_target(host)
        if not self.config.domain_checks.probe_mx or JobKey(JobKind.ENDPOINT, target.key) in self._configured_endpoints:
            return []
        jobs = [self._endpoint_job(target)]
        if self.config.modules[target.module].deep_scan is not None:
            jobs.append(self._scan_job(target))
        return jobs

    def discovered_targets(self) -> list[Target]:
        """MX hosts probed because a domain names them, not because the config lists them."""
        return [self._mx_target(host) for host in sorted(self._mx_refs) if self._mx_jobs(host)]

    def _start_job(self, job: _Job) -> None:
        task = asyncio.create_task(self._loop(job), name=f"{job.key.kind} {job.key.subject}")
        self._jobs[job.key] = (job, task)
        self._metrics.targets.labels(job.key.kind).inc()

    def _stop_job(self, key: JobKey) -> None:
        _, task = self._jobs.pop(key)
        task.cancel()
        self._next_run.pop(key, None)
        self._refusals.pop(key, None)
        self._metrics.targets.labels(key.kind).dec()

    async def stop(self) -> None:
        tasks = [task for _, task in self._jobs.values()] + list(self._rechecks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.revocation.stop()
        self._jobs.clear()
        _close_dns(self.dns)

    async def _loop(self, job: _Job) -> None:
        # A random first offset spreads the load; runs then keep a regular interval.
        due = time.monotonic() + random.uniform(0, min(self.config.global_.jitter, job.interval))
        while True:
            self._next_run[job.key] = time.time() + (due - time.monotonic())
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                result = await job.run(due=due)
            except Exception:   # a bug of ours: the job must keep its schedule, not die with it
                log.exception("run of %s %s failed unexpectedly", job.key.kind, job.key.subject)
                result = None
            due += job.interval + self._backoff(job, result)
            if due < time.monotonic():   # fell behind (e.g. the process was suspended): skip, don't burst
                due = time.monotonic() + job.interval

    def _backoff(self, job: _Job, result: object) -> float:
        """Seconds to add before the next run of `job` after `result` (0 unless refused)."""
        target = job.settings[0]
        if not _refused(result) or not isinstance(target, Target):
            if self._refusals.pop(job.key, None) is not None:
                self._metrics.backoff.remove(job.key.kind, target.address, target.module)
            return 0.0
        refusals = self._refusals[job.key] = self._refusals.get(job.key, 0) + 1
        delay = backoff_delay(refusals, job.interval, self.config.global_.backoff_max)
        self._metrics.backoff.labels(job.key.kind, target.address, target.module).set(delay)
        return delay

    def _observe_lag(self, due: float | None) -> None:
        if due is not None:
            self._metrics.scheduler_lag.observe(max(0.0, time.monotonic() - due))

    def _slots_after(self, due: float | None) -> SlotFor:
        """The address slots of one run; the first one taken marks how late the run started."""
        started = False

        @contextlib.asynccontextmanager
        async def slot(address: str) -> AsyncIterator[None]:
            nonlocal started
            async with self.limits.slot(address):
                if not started:
                    started = True
                    self._observe_lag(due)
                yield

        return slot

    async def run_once(self, target: Target, module: Module, due: float | None = None) -> HostResult:
        """Probe every address of `target` now (within the limits), store and return the result."""
        result = await probe_host(self._probes.endpoint, target, module, self.dns, self._slots_after(due),
                                  every_key_type=self._dane_in_use(target))
        result = replace(result, interval_seconds=module.interval)
        self._endpoints.put(target.key, target, result)
        if self.config.global_.revocation_checks:
            self.revocation.after_probe(target, module, result, self.dns)
        self._recheck_domains_waiting_for(target)
        self._metrics.record_probe(JobKind.ENDPOINT, module.name, result.success, result.duration_seconds)
        self._log_state_change(target, result)
        return result

    async def check_once(self, domain: Domain, due: float | None = None) -> DomainResult | None:
        """Run the DNS checks of `domain` now (within the domain-check limit) and store the result.

        Each check reports its own lookup failures; a run that raises or overruns is logged,
        counted as a failure, and leaves the previous result in place.
        """
        async with self.limits.domains:
            self._observe_lag(due)
            started = time.monotonic()
            result = await self.check_domain(domain)
        if result is None:
            self._metrics.record_probe(JobKind.DOMAIN, "", False, time.monotonic() - started)
            return None
        # A failure is a run the exporter could not do; what the checks found is in their metrics.
        self._metrics.record_probe(JobKind.DOMAIN, "", result.checked, result.duration_seconds)
        result = replace(result, interval_seconds=self.domain_interval())
        self._domains.put(domain.name, domain, result)
        if result.mx.failure is None:   # a failed MX lookup says nothing about the MX set
            self._discover_mx(domain.name, frozenset(host.name for host in result.mx.hosts))
        return result

    async def check_domain(self, domain: Domain, budget: float = DOMAIN_CHECK_TIMEOUT_SECONDS,
                           address_allowed: Callable[[str], bool] | None = None) -> DomainResult | None:
        """One run of the checks of `domain`; None (logged) if it raised or overran `budget`.
        DANE uses the chains the MX probes saw."""
        try:
            return await run_domain_check(self._probes.domain, domain, self.dns, self.config.domain_checks,
                                          self.mx_chains, budget, address_allowed)
        except TimeoutError:
            log.warning("domain check did not finish in time", extra=with_fields(domain=domain.name, budget=budget))
        except Exception:
            log.exception("domain check failed", extra=with_fields(domain=domain.name))
        return None

    async def blocklist_once(self, blocklist: Blocklist, due: float | None = None) -> BlocklistResult | None:
        """Check the watched domains' and targets' addresses or names against `blocklist` now
        (the MX hosts from the domains' latest results) and store the result, each listing
        with when it was first seen. A run that raises or overruns its interval is logged."""
        async with self.limits.domains:
            self._observe_lag(due)
            started = time.monotonic()
            try:
                async with asyncio.timeout(blocklist.interval):
                    result = await run_blocklist(blocklist, self.config.blocklists, self.config.domains,
                                                 self.config.targets, self.dns, self.stored_domain_result)
            except TimeoutError:
                log.warning("blocklist run did not finish within its interval", extra=with_fields(list=blocklist.name))
                result = None
            except Exception:
                log.exception("blocklist run failed", extra=with_fields(list=blocklist.name))
                result = None
        if result is None:
            self._metrics.record_probe(JobKind.BLOCKLIST, "", False, time.monotonic() - started)
            return None
        result = self._listed_since.stamp(replace(result, interval_seconds=blocklist.interval))
        self._metrics.record_probe(JobKind.BLOCKLIST, "", result.success, result.duration_seconds)
        self._blocklists.put(blocklist.name, blocklist, result)
        return result

    def stored_domain_result(self, name: str) -> DomainResult | None:
        entry = self._domains.get(name)
        return entry.result if entry is not None else None

    def _discover_mx(self, domain: str, hosts: frozenset[str]) -> None:
        """Probe the MX hosts a domain names (each once, however many domains share it) and
        stop probing those no domain names any more."""
        previous = self._mx_of.get(domain, frozenset())
        self._mx_of[domain] = hosts
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
                    (self._scans if job.key.kind is JobKind.DEEP_SCAN else self._endpoints).discard(job.key.subject)
                    if job.key.kind is JobKind.ENDPOINT:
                        self.revocation.discard(job.key.subject)

    def _dane_in_use(self, target: Target) -> bool:
        """Whether `target` is an MX host with TLSA records in a watched domain's latest
        result: then DANE must match each of its certificates, so the probe asks for all."""
        if self._mx_target(target.host) != target:
            return False
        for name, hosts in self._mx_of.items():
            entry = self._domains.get(name) if target.host in hosts else None
            if entry is not None and any(dane.mx == target.host and dane.tlsa_records for dane in entry.result.dane):
                return True
        return False

    def _recheck_domains_waiting_for(self, target: Target) -> None:
        """At start-up a domain is checked before its MX hosts are probed, so its DANE
        verdict waits for their chains: check such a domain again as soon as one arrives,
        rather than a whole interval later."""
        if self._mx_target(target.host) != target:
            return
        for name, hosts in self._mx_of.items():
            entry = self._domains.get(name)
            if target.host in hosts and entry is not None and any(
                    dane.mx == target.host and dane.failure is None and dane.evaluation is None
                    for dane in entry.result.dane):
                task = asyncio.create_task(self.check_once(entry.subject), name=f"DANE recheck {name}")
                self._rechecks.add(task)
                task.add_done_callback(self._rechecks.discard)

    def mx_chains(self, host: str) -> dict[str, tuple[bytes, ...]] | None:
        """The certificate chain each address of the MX host last presented on the MX
        module's port (DANE); None when the host was not probed yet."""
        entry = self._endpoints.get(self._mx_target(host).key)
        return None if entry is None else entry.result.chains()

    async def scan_once(
        self, target: Target, module: Module, settings: DeepScanSettings, due: float | None = None
    ) -> TLSScanResult | None:
        """Deep-scan `target` now and store the result. The scan holds the host's slot for
        its whole run: its connections count against the per-host limit like any probe's."""
        result = await self.deep_scan(target, module, settings, self._slots_after(due))
        if result is not None:
            self._scans.put(target.key, target, result)
        return result

    async def deep_scan(self, target: Target, module: Module, settings: DeepScanSettings,
                        slot: SlotFor, resolver: DNSClient | PinnedResolver | None = None) -> TLSScanResult | None:
        """One deep scan of the first address of `target` (in `address_order`, so the same
        server each time) within that address's slot, counted in the self-metrics; None
        (logged) if the scan raised or overran its budget."""
        started = time.monotonic()
        try:
            address = await first_address(resolver or self.dns, target.host)
        except DNSError as exc:
            self._metrics.record_probe(JobKind.DEEP_SCAN, module.name, False, time.monotonic() - started)
            return failed_scan(exc, time.time())
        try:
            # The scan keeps to its budget itself; the margin only catches a scan that fails to.
            async with slot(address), asyncio.timeout(settings.budget + TIMEOUT_GRACE_SECONDS):
                result = await self._probes.deep_scan(target, module, PinnedResolver(target.host, [address], self.dns),
                                                      min_delay=settings.min_delay, budget=settings.budget)
        except Exception:   # TimeoutError included
            log.exception("deep scan failed", extra=with_fields(target=target.address, module=module.name))
            self._metrics.record_probe(JobKind.DEEP_SCAN, module.name, False, time.monotonic() - started)
            return None
        self._metrics.record_probe(JobKind.DEEP_SCAN, module.name, result.success, result.duration_seconds)
        return result

    def _log_state_change(self, target: Target, result: HostResult) -> None:
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


def _close_dns(client: object) -> None:
    """Close a DNS client's sockets; the stand-ins of the tests may have none."""
    close = getattr(client, "close", None)
    if close is not None:
        close()


def _refused(result: object) -> bool:
    """Whether `result` says "go away" (see BACKOFF_REASONS) from every address it tried."""
    if isinstance(result, HostResult):
        reasons = result.refused_everywhere
        return bool(reasons) and reasons <= BACKOFF_REASONS
    return getattr(result, "failure", None) in BACKOFF_REASONS
