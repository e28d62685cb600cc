"""The running exporter: configuration, results, scheduler and registry, wired together."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from .collector import ResultCollector
from .config import Config, ConfigError, Target, load_config
from .probes.endpoint import probe_endpoint
from .results import EndpointResult
from .scheduler import EndpointProbe, Scheduler
from .selfmetrics import ExporterMetrics
from .store import LatestResults

log = logging.getLogger(__name__)


class Exporter:
    def __init__(self, config_path: str, probe: EndpointProbe = probe_endpoint):
        self.config_path = config_path
        self.config: Config | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ExporterMetrics(self.registry)
        self.endpoints: LatestResults[Target, EndpointResult] = LatestResults()
        self.registry.register(ResultCollector(self.endpoints))
        self.scheduler = Scheduler(self.endpoints, self.metrics, probe)

    @property
    def ready(self) -> bool:
        return self.config is not None

    def reload(self) -> Config:
        """(Re)load the config file and apply it. An invalid file leaves the running config
        in place, sets mailsec_config_last_reload_successful to 0 and raises ConfigError."""
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self.metrics.record_reload(False)
            log.error("config not loaded, keeping the previous one: %s", exc)
            raise
        self.scheduler.apply(config)
        self.config = config
        self.metrics.record_reload(True)
        log.info("config loaded from %s: %d targets, %d domains", config.source, len(config.targets), len(config.domains))
        return config

    async def stop(self) -> None:
        await self.scheduler.stop()
