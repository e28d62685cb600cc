"""The answer of one /probe request, blackbox-exporter style: `probe_success` and
`probe_duration_seconds` (the blackbox exporter's names, so existing dashboards and alerts
work), then the same mailsec_* families as /metrics for the probed subject."""

from __future__ import annotations

from typing import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..config import Blocklist, Domain, Target
from ..domains.check import DomainResult
from ..reputation.blocklists import BlocklistResult
from ..results import HostResult
from ..tlsscan.results import TLSScanResult
from .blocklists import BLOCKLIST_METRICS, add_blocklist_samples
from .domain import DOMAIN_METRICS, add_domain_samples
from .endpoint import ENDPOINT_METRICS, add_endpoint_samples
from .specs import Families
from .tlsscan import TLSSCAN_METRICS, add_scan_samples

PROBE_METRICS = (
    ("probe_success", "1 if the probe succeeded, else 0 (as the blackbox exporter)."),
    ("probe_duration_seconds", "How long the probe took, in seconds (as the blackbox exporter)."),
)


class _ProbeAnswer(Collector):
    def __init__(self, success: bool, duration: float, families: Iterable[Metric]):
        self._success, self._duration, self._families = success, duration, families

    def collect(self) -> Iterator[Metric]:
        (success_name, success_help), (duration_name, duration_help) = PROBE_METRICS
        yield GaugeMetricFamily(success_name, success_help, value=float(self._success))
        yield GaugeMetricFamily(duration_name, duration_help, value=self._duration)
        yield from self._families


def _registry(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def probe_registry(target: Target, result: HostResult, scan: TLSScanResult | None = None) -> CollectorRegistry:
    """The metrics of one /probe?target= answer: the probe's, and the cached deep scan's if any."""
    families = Families(ENDPOINT_METRICS + TLSSCAN_METRICS)
    add_endpoint_samples(families, target, result)
    if scan is not None:
        add_scan_samples(families, target, scan)
    return _registry(_ProbeAnswer(result.success, result.duration_seconds, families))


def domain_probe_registry(
    domain: Domain, result: DomainResult | None, duration: float,
    blocklists: Iterable[tuple[Blocklist, BlocklistResult]] = (),
) -> CollectorRegistry:
    """The metrics of one /probe?domain= answer; only probe_* when the checks did not finish.
    `blocklists`: the lists' latest results about the domain (they run on their own schedule)."""
    families = Families(DOMAIN_METRICS + BLOCKLIST_METRICS)
    if result is not None:
        add_domain_samples(families, domain, result)
    for blocklist, listed in blocklists:
        add_blocklist_samples(families, blocklist, listed)
    return _registry(_ProbeAnswer(result is not None and result.success, duration, families))
