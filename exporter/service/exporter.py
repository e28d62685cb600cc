"""The running exporter: configuration, results, scheduler and registry, wired together,
and the one way into each job for a request: `probe_now` and `check_domain_now`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import AsyncIterator

from prometheus_client import CollectorRegistry

from ..config import Blocklist, Config, ConfigError, Domain, Module, Target, load_config
from ..domains.check import DomainResult
from ..domains.dkim import SelectorFeed, with_reported_selectors
from ..logfmt import with_fields
from ..metrics.reports import ReportsCollector
from ..metrics.selfmetrics import ExporterMetrics
from ..reputation.blocklists import BlocklistResult
from ..results import HostResult
from ..tlsscan.results import TLSScanResult
from .guard import admit, admit_domain, public_or_allowed
from .reports import ReportsService
from .runs import DomainCheck, Probes, SlotFor, probe_host
from .scancache import ProbeScanCache
from .scheduler import Scheduler
from .sharding import Shard
from .store import ResultStores

log = logging.getLogger(__name__)


class Exporter:
    def __init__(self, config_path: str, probes: Probes = Probes(), shard: Shard = Shard()):
        self.config_path = config_path
        self.config: Config | None = None      # this shard's part of the loaded file
        self.last_reload_error: str | None = None
        self.shard = shard
        self.probes = probes
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ExporterMetrics(self.registry)
        self.metrics.shard.labels(str(shard.index), str(shard.count)).set(1)
        self.results = ResultStores()
        # The DKIM check also reads the selectors that the domain's DMARC reports show.
        self.reports: ReportsService | None = None
        probes = dataclasses.replace(probes, domain=_feeding_selectors(probes.domain, self._reported_selectors))
        self.scheduler = Scheduler(self.results, self.metrics, probes)
        self.probe_scans = ProbeScanCache(self.scheduler)
        self._reload_lock = asyncio.Lock()
        self.reports = ReportsService(self.scheduler, self.results)
        self.registry.register(ReportsCollector(self.reports.snapshot))

    def _reported_selectors(self, domain: str) -> tuple[str, ...]:
        return self.reports.reported_selectors(domain) if self.reports is not None else ()

    @property
    def ready(self) -> bool:
        return self.config is not None

    def reload(self) -> Config:
        """(Re)load the config file and apply this shard's part of it. An invalid file leaves
        the running config in place, sets mailsec_config_last_reload_successful to 0 and
        raises ConfigError."""
        try:
            loaded = load_config(self.config_path)
        except ConfigError as exc:
            self._reload_failed(exc)
            raise
        return self._apply(loaded)

    async def reload_off_loop(self) -> Config:
        """As `reload`, for a running server (POST /-/reload, SIGHUP): the file is parsed in a
        worker thread, so that the event loop keeps answering scrapes and running probes
        meanwhile, and applied on the loop. Reloads run one at a time: the last one applies the
        file as it was when it was read last."""
        async with self._reload_lock:
            try:
                loaded = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self._reload_failed(exc)
                raise
            return self._apply(loaded)

    def _reload_failed(self, exc: ConfigError) -> None:
        self.metrics.record_reload(False)
        self.last_reload_error = str(exc)
        log.error("config not loaded, keeping the previous one", extra=with_fields(error=exc))

    def _apply(self, loaded: Config) -> Config:
        config = self.shard.select(loaded)
        self.scheduler.apply(config)
        # Reports arrive in one mailbox for every domain: the first shard reads them all.
        self.reports.apply(loaded if self.shard.index == 0 else dataclasses.replace(loaded, reports=None))
        self.config = config
        self.last_reload_error = None
        self.metrics.record_reload(True)
        log.info("config loaded", extra=with_fields(
            file=config.source, targets=len(config.targets), domains=len(config.domains),
            shard=f"{self.shard.index}/{self.shard.count}",
            targets_in_file=len(loaded.targets), domains_in_file=len(loaded.domains),
        ))
        return config

    async def probe_now(self, target: Target, module: Module, budget: float) -> tuple[HostResult, TLSScanResult | None]:
        """Probe a target named by a request: admitted by `probe.allowed_targets` (else
        TargetRefused; TimeoutError when admission could not be checked within `budget`),
        every address within the concurrency limits, all within `budget` seconds. With
        the result, the cached deep scan of a module that has one. Nothing is stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        async with asyncio.timeout(budget):
            resolver = await admit(target.host, target.port, self.config.probe.allowed_targets, self.scheduler.dns)
        result = await probe_host(self.probes.endpoint, target, dataclasses.replace(module, timeout=budget),
                                  resolver, self._slot_until(deadline), deadline)
        scan = self.probe_scans.latest(target, module, resolver) if module.deep_scan is not None else None
        return result, scan

    def _slot_until(self, deadline: float) -> SlotFor:
        """Address slots that are given up on (a failed probe of that address) at `deadline`."""
        limits = self.scheduler.limits

        @contextlib.asynccontextmanager
        async def slot(address: str) -> AsyncIterator[None]:
            async with limits.slot(address, wait_limit=max(0.0, deadline - asyncio.get_running_loop().time())):
                yield

        return slot

    def request_domain(self, name: str, selectors: tuple[str, ...]) -> Domain:
        """The domain a request names (normalized), admitted by `probe.allowed_domains` (else
        TargetRefused); a configured domain keeps its labels, and its selectors unless given."""
        admit_domain(name, self.config.probe.allowed_domains)
        listed = next((domain for domain in self.config.domains if domain.name == name), None)
        if listed is None:
            return Domain(name, selectors)
        return Domain(name, selectors or listed.dkim_selectors, listed.labels)

    async def check_domain_now(self, domain: Domain, budget: float) -> DomainResult | None:
        """Check a domain named by a request now (see `request_domain`), within one of the
        domain-check slots, as scheduled runs are; None when the checks did not
        finish within `budget` seconds, slot wait included. The result is not stored."""
        deadline = asyncio.get_running_loop().time() + budget
        overall = self.scheduler.limits.domains
        try:
            async with asyncio.timeout(budget):
                await overall.acquire()
        except TimeoutError:
            return None
        try:
            return await self.scheduler.check_domain(domain, deadline - asyncio.get_running_loop().time(),
                                                     public_or_allowed(self.config.probe.allowed_targets))
        finally:
            overall.release()

    def latest_blocklists(self, domain: str) -> list[tuple[Blocklist, BlocklistResult]]:
        """Each list's latest result narrowed to what comes from `domain` (for /probe?domain=).
        Lists run on their own schedule only: a request never queries them."""
        return [(entry.subject, dataclasses.replace(entry.result.for_domain(domain), interval_seconds=None))
                for entry in self.results.blocklists.snapshot()]

    async def stop(self) -> None:
        await self.reports.stop()
        await self.probe_scans.stop()
        await self.scheduler.stop()


def _feeding_selectors(check: DomainCheck, feed: SelectorFeed) -> DomainCheck:
    """`check` (check_domain's signature) with the reported DKIM selectors added to the domain's."""
    async def check_with_reported_selectors(domain: Domain, *args, **kwargs) -> DomainResult:
        return await check(with_reported_selectors(domain, feed), *args, **kwargs)
    return check_with_reported_selectors
