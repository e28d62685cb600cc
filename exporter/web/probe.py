"""/probe?target=HOST[:PORT]&module=NAME and /probe?domain=NAME: check one subject now,
blackbox-exporter style.

This module only reads the request and writes the answer; the exporter admits the subject
(`probe.allowed_targets`, `probe.allowed_domains`), runs the probe within its limits and
serves deep scans from a cache (service.exporter). `&debug=true` answers with a readable
report instead of metrics.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..config import Domain, Module, Target, check_dkim_selector, normalize_dns_name, parse_host_port
from ..domains.report import DomainReport, render_text
from ..metrics.probe import domain_probe_registry, probe_registry
from ..probes.report import debug_report
from ..reputation.report import failures as blocklist_failures
from ..reputation.report import findings as blocklist_findings
from ..service.exporter import Exporter
from ..service.guard import TargetRefused

TARGET_PARAMETERS = ("target", "module", "debug")
DOMAIN_PARAMETERS = ("domain", "dkim_selector", "debug")
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
MAX_DKIM_SELECTORS = 10   # each costs DNS questions: a request may not ask for hundreds


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
    module = config.modules.get(query["module"])
    if module is None:
        raise BadRequest(f"unknown module {query['module']!r}; configured: {', '.join(config.modules)}")
    host, port = parse_target(query["target"], module.port)
    return Target(host=host, port=port, module=module.name), module


def _metrics_answer(request: web.Request, registry: CollectorRegistry) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encoder(registry))
    response.headers["Content-Type"] = content_type
    return response


def _text_answer(text: str) -> web.Response:
    return web.Response(text=text, headers={"X-Content-Type-Options": "nosniff"})


def _refusal(exporter: Exporter, result: str, reason: str) -> web.Response:
    exporter.metrics.probe_requests.labels(result).inc()
    return web.Response(status=400, text=f"{reason}\n")


async def answer_probe(exporter: Exporter, request: web.Request) -> web.Response:
    if "domain" in request.query:
        return await answer_domain_probe(exporter, request)
    try:
        target, module = _request_target(exporter, request.query)
        debug = parse_debug(request.query.get("debug"))
        budget = probe_budget(
            request.headers.get(SCRAPE_TIMEOUT_HEADER), exporter.config.probe.timeout_offset, module.timeout
        )
    except BadRequest as exc:
        return _refusal(exporter, "invalid", str(exc))
    try:
        result, scan = await exporter.probe_now(target, module, budget)
    except TargetRefused as exc:
        return _refusal(exporter, "refused", str(exc))
    except TimeoutError:
        return _refusal(exporter, "refused", f"target {target.address}: could not check within {budget:.3g}s "
                                             "whether probe.allowed_targets allow it")
    exporter.metrics.probe_requests.labels("success" if result.success else "failure").inc()
    if debug:
        return _text_answer(debug_report(target, dataclasses.replace(module, timeout=budget), result))
    return _metrics_answer(request, probe_registry(target, result, scan))


def _request_domain(exporter: Exporter, query) -> Domain:
    _check_parameters(query, DOMAIN_PARAMETERS, ("domain",))
    try:
        name = normalize_dns_name(query["domain"])
        given = query.getall("dkim_selector", [])
        if len(given) > MAX_DKIM_SELECTORS:
            raise BadRequest(f"at most {MAX_DKIM_SELECTORS} dkim_selector parameters; got {len(given)}")
        selectors = tuple(dict.fromkeys(check_dkim_selector(s) for s in given))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return exporter.request_domain(name, selectors)


async def answer_domain_probe(exporter: Exporter, request: web.Request) -> web.Response:
    """Check one domain now (DANE uses the chains the scheduler's MX probes saw)."""
    config = exporter.config
    try:
        domain = _request_domain(exporter, request.query)
        debug = parse_debug(request.query.get("debug"))
        budget = probe_budget(request.headers.get(SCRAPE_TIMEOUT_HEADER), config.probe.timeout_offset,
                              config.global_.timeout)
    except BadRequest as exc:
        return _refusal(exporter, "invalid", str(exc))
    except TargetRefused as exc:
        return _refusal(exporter, "refused", str(exc))
    started = time.monotonic()
    result = await exporter.check_domain_now(domain, budget)
    duration = time.monotonic() - started
    exporter.metrics.probe_requests.labels("success" if result is not None and result.success else "failure").inc()
    blocklists = exporter.latest_blocklists(domain.name)
    if debug:
        if result is None:
            return _text_answer(f"Checks of {domain.name} did not finish within {budget:.3g}s\n")
        listed = [listed for _, listed in blocklists]
        report = DomainReport(result, (), {"blocklists": blocklist_findings(listed)}, blocklist_failures(listed))
        return _text_answer(render_text([report], time.time()))
    return _metrics_answer(request, domain_probe_registry(domain, result, duration, blocklists))
