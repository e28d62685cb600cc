"""The running exporter: configuration, results, scheduler and registry, wired together."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from .config import Config, ConfigError, load_config
from .exposition import ResultExposition
from .logfmt import with_fields
from .probe_scans import ProbeScanCache
from .scheduler import Probes, Scheduler
from .selfmetrics import ExporterMetrics
from .sharding import Shard

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
        self.exposition = ResultExposition()
        self.results = self.exposition.results
        self.endpoints = self.results.endpoints
        self.domains = self.results.domains
        self.scans = self.results.scans
        self.scheduler = Scheduler(self.results, self.metrics, probes)
        self.probe_scans = ProbeScanCache(self.scheduler)

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
        self.config = config
        self.last_reload_error = None
        self.metrics.record_reload(True)
        log.info("config loaded", extra=with_fields(
            file=config.source, targets=len(config.targets), domains=len(config.domains),
            shard=f"{self.shard.index}/{self.shard.count}",
            targets_in_file=len(loaded.targets), domains_in_file=len(loaded.domains),
        ))
        return config

    async def stop(self) -> None:
        await self.probe_scans.stop()
        await self.scheduler.stop()
