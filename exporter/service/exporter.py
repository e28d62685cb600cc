"""The running exporter: configuration, results, scheduler and registry, wired together,
and the one way into each job for a request: `probe_now`, `check_domain_now`, `latest_scan`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from prometheus_client import CollectorRegistry

from ..config import Config, ConfigError, Domain, Module, Target, load_config
from ..domains.check import DomainResult
from ..domains.dkim import SelectorFeed, with_reported_selectors
from ..logfmt import with_fields
from ..metrics.reports import ReportsCollector
from ..metrics.selfmetrics import ExporterMetrics
from ..results import EndpointResult, FailureReason
from ..tlsscan.results import TLSScanResult
from .guard import admit, admit_domain
from .reports import ReportsService
from .runs import DomainCheck, Probes, failed_result, guarded_probe
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
            self.metrics.record_reload(False)
            self.last_reload_error = str(exc)
            log.error("config not loaded, keeping the previous one", extra=with_fields(error=exc))
            raise
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

    async def probe_now(self, target: Target, module: Module, budget: float) -> EndpointResult:
        """Probe a target named by a request: admitted by `probe.allowed_targets` (else
        TargetRefused), within the concurrency limits, all within `budget` seconds (a
        TimeoutError while checking admission). The result is not stored."""
        started_at, started = time.time(), time.monotonic()
        async with asyncio.timeout(budget):
            dns = await admit(target.host, target.port, self.config.probe.allowed_targets, self.scheduler.dns)
        try:
            async with self.scheduler.limits.slot(target.host, wait_limit=budget - (time.monotonic() - started)):
                remaining = budget - (time.monotonic() - started)
                return await guarded_probe(self.probes.endpoint, target,
                                           dataclasses.replace(module, timeout=remaining), dns)
        except TimeoutError:
            detail = (f"no probe slot became free within {budget:.3g}s "
                      "(global.concurrency and global.per_host_concurrency are all in use)")
            return failed_result(FailureReason.TIMEOUT, detail, started_at, time.monotonic() - started)

    def request_domain(self, name: str, selectors: tuple[str, ...]) -> Domain:
        """The domain a request names (normalized), admitted by `probe.allowed_domains` (else
        TargetRefused); a configured domain keeps its labels, and its selectors unless given."""
        admit_domain(name, self.config.probe.allowed_domains)
        listed = next((domain for domain in self.config.domains if domain.name == name), None)
        if listed is None:
            return Domain(name, selectors)
        return Domain(name, selectors or listed.dkim_selectors, listed.labels)

    async def check_domain_now(self, domain: Domain, budget: float) -> DomainResult | None:
        """Check a domain named by a request now (see `request_domain`); None when the
        checks did not finish within `budget` seconds. The result is not stored."""
        return await self.scheduler.check_domain(domain, budget)

    def latest_scan(self, target: Target, module: Module) -> TLSScanResult | None:
        """The cached deep scan of a requested target, refreshed in the background."""
        return self.probe_scans.latest(target, module) if module.deep_scan is not None else None

    async def stop(self) -> None:
        await self.reports.stop()
        await self.probe_scans.stop()
        await self.scheduler.stop()


def _feeding_selectors(check: DomainCheck, feed: SelectorFeed) -> DomainCheck:
    """`check` (check_domain's signature) with the reported DKIM selectors added to the domain's."""
    async def check_with_reported_selectors(domain: Domain, *args, **kwargs) -> DomainResult:
        return await check(with_reported_selectors(domain, feed), *args, **kwargs)
    return check_with_reported_selectors
