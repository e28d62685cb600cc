"""Metric families declared by spec and filled sample by sample, for custom collectors.

Each kind of result (endpoint, domain, deep TLS scan) declares its families as a table of
`MetricSpec`s; a scrape builds fresh `Families` from them, so no metric object outlives a
scrape or is shared between probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from prometheus_client.core import Metric

from ..config import Target


@dataclass(frozen=True)
class MetricSpec:
    name: str
    help: str
    labels: tuple[str, ...] = ()      # labels besides the subject's own (target, module, user labels)
    type: str = "gauge"


class Families:
    """The metric families of one scrape, declared by spec, filled sample by sample."""

    def __init__(self, specs: Iterable[MetricSpec]):
        self._families = {spec.name: Metric(spec.name, spec.help, spec.type) for spec in specs}

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self._families[name].add_sample(name, dict(labels), value)

    def __iter__(self) -> Iterator[Metric]:
        return (family for family in self._families.values() if family.samples)


def subject_labels(target: Target) -> dict[str, str]:
    labels = {"target": target.address, "module": target.module}
    labels.update(target.labels)
    return labels
