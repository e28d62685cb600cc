"""The exporter's metrics about itself: probe counts and durations, scheduler lag, reloads.

One instance per exporter, registered in that exporter's own registry (never the global
default one), and updated only by the scheduler and the reload logic, not by probes.
"""

from __future__ import annotations

import platform
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from ..dnstransport import IGNORED_ANSWERS, IgnoredAnswer
from ..results import JobKind

# `_created` series double every counter and histogram for little use; most exporters omit them.
disable_created_metrics()

# Probes take from milliseconds (refused) to the module timeout (stalled servers);
# deep scans up to their budget (5 min by default).
_PROBE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_LAG_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 300)


class ExporterMetrics:
    def __init__(self, registry: CollectorRegistry):
        build_info = Gauge(
            "mailsec_exporter_build_info",
            "Version of the exporter and of the Python it runs on; always 1.",
            ["version", "python_version"],
            registry=registry,
        )
        build_info.labels(__version__, platform.python_version()).set(1)
        self.probes = Counter(
            "mailsec_exporter_probes",
            "Probes run by the scheduler, by kind (endpoint, domain, deep_scan), module and result.",
            ["kind", "module", "result"],
            registry=registry,
        )
        self.probe_duration = Histogram(
            "mailsec_exporter_probe_duration_seconds",
            "Duration of the probes run by the scheduler, by kind and module.",
            ["kind", "module"],
            buckets=_PROBE_BUCKETS,
            registry=registry,
        )
        self.scheduler_lag = Histogram(
            "mailsec_exporter_scheduler_lag_seconds",
            "How late probes started compared to their schedule (waiting for a concurrency slot).",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.backoff = Gauge(
            "mailsec_exporter_backoff_seconds",
            "How much later than its interval the next run of a refusing endpoint starts.",
            ["kind", "target", "module"],
            registry=registry,
        )
        self.targets = Gauge(
            "mailsec_exporter_targets",
            "Jobs the scheduler runs, by kind (endpoint, domain, deep_scan, blocklist).",
            ["kind"],
            registry=registry,
        )
        for kind in JobKind:
            if kind is not JobKind.REVOCATION:   # it follows the endpoint jobs
                self.targets.labels(kind)   # exported as 0 until the first job of that kind
        self.probe_requests = Counter(
            "mailsec_exporter_probe_requests",
            "Requests to /probe, by result: success, failure (the probe ran), refused (target not "
            "allowed), invalid (bad parameters).",
            ["result"],
            registry=registry,
        )
        self.shard = Gauge(
            "mailsec_exporter_shard_info",
            "This exporter's share of the targets (--shard.index of --shard.count); always 1.",
            ["index", "count"],
            registry=registry,
        )
        self.reload_success = Gauge(
            "mailsec_config_last_reload_successful",
            "1 if the last configuration load or reload succeeded, else 0.",
            registry=registry,
        )
        self.reload_timestamp = Gauge(
            "mailsec_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            registry=registry,
        )
        registry.register(IgnoredDNSAnswers())

        self.http_events = Counter(
            "mailsec_exporter_http_events",
            "What HTTP clients caused the server to do: connections refused, evicted or cut off, "
            "malformed requests, failed TLS handshakes (the log says each kind once a minute).",
            ["event"],
            registry=registry,
        )

    def record_probe(self, kind: JobKind, module: str, success: bool, duration: float) -> None:
        """Count one run; domains have no module."""
        self.probes.labels(kind, module, "success" if success else "failure").inc()
        self.probe_duration.labels(kind, module).observe(duration)

    def record_reload(self, success: bool) -> None:
        self.reload_success.set(1 if success else 0)
        if success:
            self.reload_timestamp.set(time.time())


class IgnoredDNSAnswers(Collector):
    """What the DNS transport dropped instead of taking it as an answer (counted for the process)."""

    def collect(self):
        family = CounterMetricFamily(
            "mailsec_exporter_dns_ignored_answers",
            "Datagrams received on the DNS client's sockets and not taken as an answer, by reason: "
            "unexpected (no query waiting with its ID), mismatched (not an answer to the question of "
            "the query with its ID), malformed, foreign (from another address or port).",
            labels=["reason"],
        )
        for reason in IgnoredAnswer:
            family.add_metric([reason.value], IGNORED_ANSWERS[reason])
        yield family
