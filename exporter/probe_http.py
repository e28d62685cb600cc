"""/probe?target=HOST[:PORT]&module=NAME: probe one mail endpoint now, blackbox-exporter style.

The answer is built on a fresh registry: `probe_success` and `probe_duration_seconds`
(the blackbox exporter's names, so existing dashboards and alerts work) and the same
mailsec_* endpoint families as /metrics, plus the deep-scan families for a module with
`deep_scan`, served from a cache (see probe_scans). `&debug=true` answers with a readable report
of the probe's dialogue instead. Only targets allowed by `probe.allowed_targets` and
modules of the configuration are probed (see probeguard).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import fnmatch
import math
import time
from typing import Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .app import Exporter
from .checkreport import DomainReport, render_text
from .collector import ENDPOINT_METRICS, add_endpoint_samples
from .families import Families
from .config import Domain, Module, Target, check_dkim_selector, normalize_dns_name, parse_host_port
from .domain_metrics import DOMAIN_METRICS, add_domain_samples
from .domains.check import DomainResult
from .probeguard import TargetRefused, admit
from .results import EndpointResult, FailureReason
from .scheduler import failed_result, guarded_probe
from .tlsscan.results import TLSScanResult
from .tlsscan_metrics import TLSSCAN_METRICS, add_scan_samples

TARGET_PARAMETERS = ("target", "module", "debug")
DOMAIN_PARAMETERS = ("domain", "dkim_selector", "debug")
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"

PROBE_METRICS = (
    ("probe_success", "1 if the probe succeeded, else 0 (as the blackbox exporter)."),
    ("probe_duration_seconds", "How long the probe took, in seconds (as the blackbox exporter)."),
)


class BadRequest(Exception):
    """The request cannot be served as asked. str() is the reason given in the 400 answer."""


def parse_target(text: str, default_port: int) -> tuple[str, int]:
    try:
        return parse_host_port(text, default_port)
    except ValueError as exc:
        raise BadRequest(f"target {exc}") from None


def probe_budget(scrape_timeout_header: str | None, offset: float, module_timeout: float) -> float:
    """Seconds the probe may take: Prometheus's scrape timeout minus `offset` (time to
    send the answer), never more than the module's timeout."""
    if scrape_timeout_header is None:
        return module_timeout
    try:
        scrape_timeout = float(scrape_timeout_header)
    except ValueError:
        scrape_timeout = math.nan
    if not math.isfinite(scrape_timeout) or scrape_timeout <= 0:
        raise BadRequest(f"{SCRAPE_TIMEOUT_HEADER} must be a positive number of seconds; "
                         f"got {scrape_timeout_header!r}")
    budget = scrape_timeout - offset
    if budget <= 0:
        raise BadRequest(f"the scrape timeout ({scrape_timeout:g}s) leaves no time for the probe after "
                         f"probe.timeout_offset ({offset:g}s)")
    return min(budget, module_timeout)


def parse_debug(value: str | None) -> bool:
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise BadRequest(f"debug must be true or false; got {value!r}")


class _ProbeCollector(Collector):
    """The metrics of one /probe answer: the probe's, and the cached deep scan's if any."""

    def __init__(self, target: Target, result: EndpointResult, scan: TLSScanResult | None):
        self._target = target
        self._result = result
        self._scan = scan

    def collect(self) -> Iterator[Metric]:
        (success_name, success_help), (duration_name, duration_help) = PROBE_METRICS
        yield GaugeMetricFamily(success_name, success_help, value=float(self._result.success))
        yield GaugeMetricFamily(duration_name, duration_help, value=self._result.duration_seconds)
        families = Families(ENDPOINT_METRICS + TLSSCAN_METRICS)
        add_endpoint_samples(families, self._target, self._result)
        if self._scan is not None:
            add_scan_samples(families, self._target, self._scan)
        yield from families


def probe_registry(target: Target, result: EndpointResult, scan: TLSScanResult | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProbeCollector(target, result, scan))
    return registry


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _utc(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def debug_report(target: Target, module: Module, result: EndpointResult) -> str:
    """A readable account of one probe: outcome, facts, and the dialogue as it happened."""
    lines = [
        f"Probe of {target.address} with module {module.name} "
        f"(protocol {module.protocol}, STARTTLS {module.starttls}, timeout {module.timeout:.3g}s)",
        f"Started: {_utc(result.observed_at)}, took {result.duration_seconds:.3f}s",
        "Result: success" if result.success else f"Result: failure: {result.failure} ({result.failure_detail})",
        f"Address: {result.address or 'none'}",
    ]
    if not module.protocol.implicit_tls:
        lines.append(f"STARTTLS offered: {_yes_no(result.starttls_offered)}")
        lines.append(f"Password authentication offered before TLS: {_yes_no(result.plaintext_auth_exposed)}")
    lines.append(f"Capabilities before TLS: {' '.join(result.capabilities_before_tls) or 'none'}")
    lines.append(f"Capabilities after TLS: {' '.join(result.capabilities_after_tls) or 'none'}")
    tls = result.tls
    if tls is None:
        lines.append("TLS: no handshake completed")
    else:
        lines.append(f"TLS: {tls.version}, cipher {tls.cipher}")
        lines.append("Chain valid: yes" if tls.chain_valid else f"Chain valid: no ({tls.chain_error})")
        lines.append(f"Certificate valid for {tls.verified_name}: {_yes_no(tls.hostname_valid)}")
        for position, cert in enumerate(tls.chain):
            lines.append(
                f"Certificate {position}: subject {cert.subject}; issuer {cert.issuer}; "
                f"valid {_utc(cert.not_before)} to {_utc(cert.not_after)}; "
                f"{cert.key_type} {cert.key_bits} bits; SANs {', '.join(cert.sans) or 'none'}"
            )
    lines.append("")
    lines.append("Dialogue (C: client, S: server, TLS: handshake, *: events):")
    lines.extend(result.transcript or ("(nothing was exchanged)",))
    return "\n".join(lines) + "\n"


def _check_parameters(query: Mapping[str, str], accepted: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(query) - set(accepted))
    if unknown:
        raise BadRequest(f"unknown parameter {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    for name in required:
        if not query.get(name):
            raise BadRequest(f"the {name} parameter is required (accepted: {', '.join(accepted)})")


def _request_target(exporter: Exporter, query: Mapping[str, str]) -> tuple[Target, Module]:
    _check_parameters(query, TARGET_PARAMETERS, ("target", "module"))
    config = exporter.config
    assert config is not None, "the server starts after the first config load"
    module = config.modules.get(query["module"])
    if module is None:
        raise BadRequest(f"unknown module {query['module']!r}; configured: {', '.join(config.modules)}")
    host, port = parse_target(query["target"], module.port)
    return Target(host=host, port=port, module=module.name), module


async def _run(exporter: Exporter, target: Target, module: Module, budget: float) -> EndpointResult:
    """Admit the target, wait for a concurrency slot and probe, all within `budget` seconds."""
    config = exporter.config
    started_at, started = time.time(), time.monotonic()
    async with asyncio.timeout(budget):
        dns = await admit(target.host, target.port, config.probe.allowed_targets, exporter.scheduler.dns)
    try:
        async with exporter.scheduler.slot(target.host, wait_limit=budget - (time.monotonic() - started)):
            remaining = budget - (time.monotonic() - started)
            return await guarded_probe(exporter.probes.endpoint, target, dataclasses.replace(module, timeout=remaining), dns)
    except TimeoutError:
        detail = (f"no probe slot became free within {budget:.3g}s "
                  "(global.concurrency and global.per_host_concurrency are all in use)")
        return failed_result(FailureReason.TIMEOUT, detail, started_at, time.monotonic() - started)


async def answer_probe(exporter: Exporter, request: web.Request) -> web.Response:
    if "domain" in request.query:
        return await answer_domain_probe(exporter, request)
    metrics = exporter.metrics
    try:
        target, module = _request_target(exporter, request.query)
        debug = parse_debug(request.query.get("debug"))
        budget = probe_budget(
            request.headers.get(SCRAPE_TIMEOUT_HEADER), exporter.config.probe.timeout_offset, module.timeout
        )
    except BadRequest as exc:
        metrics.probe_requests.labels("invalid").inc()
        return web.Response(status=400, text=f"{exc}\n")
    try:
        result = await _run(exporter, target, module, budget)
    except TargetRefused as exc:
        metrics.probe_requests.labels("refused").inc()
        return web.Response(status=400, text=f"{exc}\n")
    except TimeoutError:
        metrics.probe_requests.labels("refused").inc()
        return web.Response(status=400, text=f"target {target.address}: could not check within {budget:.3g}s "
                                             "whether probe.allowed_targets allow it\n")
    metrics.probe_requests.labels("success" if result.success else "failure").inc()
    if debug:
        text = debug_report(target, dataclasses.replace(module, timeout=budget), result)
        return web.Response(text=text, headers={"X-Content-Type-Options": "nosniff"})
    scan = exporter.probe_scans.latest(target, module) if module.deep_scan is not None else None
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encoder(probe_registry(target, result, scan)))
    response.headers["Content-Type"] = content_type
    return response


# --- /probe?domain=NAME: the DNS checks of one mail domain -------------------------------

class _DomainProbeCollector(Collector):
    def __init__(self, domain: Domain, result: DomainResult | None, duration: float):
        self._domain, self._result, self._duration = domain, result, duration

    def collect(self) -> Iterator[Metric]:
        (success_name, success_help), (duration_name, duration_help) = PROBE_METRICS
        success = self._result is not None and self._result.success
        yield GaugeMetricFamily(success_name, success_help, value=float(success))
        yield GaugeMetricFamily(duration_name, duration_help, value=self._duration)
        if self._result is not None:
            families = Families(DOMAIN_METRICS)
            add_domain_samples(families, self._domain, self._result)
            yield from families


def _request_domain(exporter: Exporter, query) -> Domain:
    _check_parameters(query, DOMAIN_PARAMETERS, ("domain",))
    try:
        name = normalize_dns_name(query["domain"])
        selectors = tuple(dict.fromkeys(check_dkim_selector(s) for s in query.getall("dkim_selector", [])))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    allowed = exporter.config.probe.allowed_domains
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        raise TargetRefused(f"domain {name}: not allowed by probe.allowed_domains"
                            + ("" if allowed else " (empty: /probe checks no domain)"))
    listed = next((domain for domain in exporter.config.domains if domain.name == name), None)
    if listed is None:
        return Domain(name, selectors)
    return Domain(name, selectors or listed.dkim_selectors, listed.labels)


async def answer_domain_probe(exporter: Exporter, request: web.Request) -> web.Response:
    """Check one domain now (DANE uses the chains the scheduler's MX probes saw)."""
    metrics = exporter.metrics
    try:
        domain = _request_domain(exporter, request.query)
        debug = parse_debug(request.query.get("debug"))
    except BadRequest as exc:
        metrics.probe_requests.labels("invalid").inc()
        return web.Response(status=400, text=f"{exc}\n")
    except TargetRefused as exc:
        metrics.probe_requests.labels("refused").inc()
        return web.Response(status=400, text=f"{exc}\n")
    config = exporter.config
    budget = probe_budget(request.headers.get(SCRAPE_TIMEOUT_HEADER), config.probe.timeout_offset,
                          config.global_.timeout)
    started = time.monotonic()
    result = None
    try:
        async with asyncio.timeout(budget):
            result = await exporter.probes.domain(
                domain, exporter.scheduler.dns, chain_for=exporter.scheduler.mx_chain,
                https_ca_file=config.domain_checks.mta_sts_ca_file,
                https_timeout=min(config.domain_checks.https_timeout, budget),
            )
    except TimeoutError:
        pass   # probe_success 0: the checks did not finish within the scrape's budget
    duration = time.monotonic() - started
    metrics.probe_requests.labels("success" if result is not None and result.success else "failure").inc()
    if debug:
        if result is None:
            text = f"Checks of {domain.name} did not finish within {budget:.3g}s\n"
        else:
            text = render_text([DomainReport(result, ())], time.time())
        return web.Response(text=text, headers={"X-Content-Type-Options": "nosniff"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DomainProbeCollector(domain, result, duration))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encoder(registry))
    response.headers["Content-Type"] = content_type
    return response
