"""The results part of /metrics, rendered once per result.

Results are immutable, so each one's samples are turned into exposition text once, when it
is stored, and kept with it until it is replaced or its subject removed. Each store's text
is then joined once per generation of the store (`StoreTexts`): a scrape of results that did
not change since the last one copies bytes and nothing more, and a scrape that asks for gzip
gets a compressed copy made once per generation too (in a worker thread: zlib lets the event
loop run meanwhile). The text is the Prometheus text format 0.0.4, as prometheus_client
writes it (labels sorted, values as Go formats floats).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from prometheus_client.utils import floatToGoString

from .blocklists import BLOCKLIST_METRICS, add_blocklist_samples
from .endpoint import ENDPOINT_METRICS, add_endpoint_samples
from .domain import DOMAIN_METRICS, add_domain_samples
from .gzipjoin import DeflatePiece, deflate
from .revocation import REVOCATION_METRICS, add_revocation_samples
from .specs import Families, MetricSpec
from ..results import JobKind
from .tlsscan import TLSSCAN_METRICS, add_scan_samples

AddSamples = Callable[[Families, object, object], None]


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def sample_line(name: str, labels: dict[str, str], value: float) -> str:
    if labels:
        label_text = ",".join(f'{key}="{_escape_label_value(labels[key])}"' for key in sorted(labels))
        return f"{name}{{{label_text}}} {floatToGoString(value)}\n"
    return f"{name} {floatToGoString(value)}\n"


def family_header(spec: MetricSpec) -> bytes:
    help_text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {spec.name} {help_text}\n# TYPE {spec.name} {spec.type}\n".encode()


def render_result(specs: Iterable[MetricSpec], add: AddSamples, subject: object, result: object) -> dict[str, bytes]:
    """The sample lines of one result, by family name (families without samples left out)."""
    families = Families(specs)
    add(families, subject, result)
    return {
        family.name: "".join(sample_line(s.name, s.labels, s.value) for s in family.samples).encode()
        for family in families
    }


# The families of each kind of stored result, and how one result's samples are added:
# one per kind of job, and the revocation checks that run after the endpoint probes.
RESULT_FAMILIES: dict[JobKind, tuple[tuple[MetricSpec, ...], AddSamples]] = {
    JobKind.ENDPOINT: (ENDPOINT_METRICS, add_endpoint_samples),
    JobKind.DOMAIN: (DOMAIN_METRICS, add_domain_samples),
    JobKind.DEEP_SCAN: (TLSSCAN_METRICS, add_scan_samples),
    JobKind.BLOCKLIST: (BLOCKLIST_METRICS, add_blocklist_samples),
    JobKind.REVOCATION: (REVOCATION_METRICS, add_revocation_samples),
}
_HEADERS = {spec.name: family_header(spec) for specs, _ in RESULT_FAMILIES.values() for spec in specs}


def renderer(kind: JobKind) -> Callable[[object, object], dict[str, bytes]]:
    """What a result store calls once per stored result of `kind` (on the event loop, ~1 ms)."""
    specs, add = RESULT_FAMILIES[kind]
    return functools.partial(render_result, specs, add)


def exposition_chunks(rendered: Iterable[Mapping[str, bytes]]) -> Iterator[bytes]:
    """The stored results' text (what `renderer` made of each), one chunk per family with
    its header: a scrape streams them rather than holding a second copy of every result's text."""
    parts: dict[str, list[bytes]] = {name: [] for name in _HEADERS}
    for families in rendered:
        for name, text in families.items():
            parts[name].append(text)
    for name, texts in parts.items():
        if texts:
            yield _HEADERS[name] + b"".join(texts)


@dataclass
class StoreText:
    """The exposition text of one result store at one generation: a chunk per family, with
    its header; compressed on first demand."""

    generation: int
    chunks: tuple[bytes, ...]
    _deflated: asyncio.Future[DeflatePiece] | None = field(default=None, repr=False)

    async def deflated(self) -> DeflatePiece:
        """The chunks as one deflate piece (metrics.gzipjoin); concurrent scrapes share one."""
        if self._deflated is None or self._deflated.get_loop() is not asyncio.get_running_loop():
            self._deflated = asyncio.ensure_future(asyncio.to_thread(deflate, self.chunks))
        return await asyncio.shield(self._deflated)


class StoreTexts:
    """The joined text of each result store, joined again only when the store changed."""

    def __init__(self) -> None:
        self._texts: dict[str, StoreText] = {}

    def text(self, store: str, generation: int, rendered: Callable[[], Iterable[Mapping[str, bytes]]]) -> StoreText:
        """The text of `store` at `generation`; `rendered` gives its results' families."""
        text = self._texts.get(store)
        if text is None or text.generation != generation:
            text = self._texts[store] = StoreText(generation, tuple(exposition_chunks(rendered())))
        return text
