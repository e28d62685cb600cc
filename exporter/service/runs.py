"""How one run of each job kind is started, whoever starts it (the scheduler, /probe, the
`check` command): the probe functions, their timeouts, and failed results for probes that
overrun or raise."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from ..config import DomainCheckSettings, Domain, Module, Target
from ..dnsclient import DNSClient
from ..domains.check import DomainResult, check_domain
from ..domains.dane import ChainFor
from ..logfmt import with_fields
from ..probes.endpoint import probe_endpoint
from ..results import EndpointResult, FailureReason

if TYPE_CHECKING:
    from ..tlsscan.results import TLSScanResult

log = logging.getLogger(__name__)


EndpointProbe = Callable[[Target, Module, DNSClient], Awaitable[EndpointResult]]
DomainCheck = Callable[..., Awaitable[DomainResult]]   # check_domain's signature
DeepScan = Callable[..., Awaitable["TLSScanResult"]]   # scan_endpoint's signature


async def deep_scan(*args, **kwargs) -> TLSScanResult:
    """`tlsscan.scanner.scan_endpoint`, imported on the first deep scan: the `check`
    command, which uses the other probes, never pays for importing the scanner."""
    from ..tlsscan.scanner import scan_endpoint

    return await scan_endpoint(*args, **kwargs)


@dataclass(frozen=True)
class Probes:
    """What the exporter runs; tests put in-process stand-ins here."""

    endpoint: EndpointProbe = probe_endpoint
    domain: DomainCheck = check_domain
    deep_scan: DeepScan = deep_scan


# Every lookup has the DNS timeout, but an SPF evaluation may chain ten of them: bound a
# whole domain run generously, so that only a stuck resolver hits this.
DOMAIN_CHECK_TIMEOUT_SECONDS = 120.0

# A probe enforces its own timeout; this margin only catches a probe that fails to.
TIMEOUT_GRACE_SECONDS = 2.0


def failed_result(reason: FailureReason, detail: str, started_at: float, duration: float) -> EndpointResult:
    return EndpointResult(
        success=False,
        failure=reason,
        failure_detail=detail,
        observed_at=started_at,
        duration_seconds=duration,
    )


async def guarded_probe(probe: EndpointProbe, target: Target, module: Module, dns: DNSClient) -> EndpointResult:
    """Run `probe`, turning a probe that overruns its timeout or raises into a failed result."""
    started_at, started = time.time(), time.monotonic()
    try:
        async with asyncio.timeout(module.timeout + TIMEOUT_GRACE_SECONDS):
            return await probe(target, module, dns)
    except TimeoutError:
        detail = f"probe did not finish within {module.timeout:g}s"
        return failed_result(FailureReason.TIMEOUT, detail, started_at, time.monotonic() - started)
    except Exception as exc:
        log.exception("probe raised", extra=with_fields(target=target.address, module=module.name))
        detail = f"{type(exc).__name__}: {exc}"
        return failed_result(FailureReason.INTERNAL_ERROR, detail, started_at, time.monotonic() - started)


async def run_domain_check(
    check: DomainCheck, domain: Domain, dns: DNSClient, settings: DomainCheckSettings,
    chain_for: ChainFor | None, budget: float = DOMAIN_CHECK_TIMEOUT_SECONDS,
) -> DomainResult:
    """Every check of `domain` with the configured MTA-STS CA and HTTPS timeout, within
    `budget` seconds (TimeoutError past it). `chain_for(mx)`: the chain DANE is matched to."""
    async with asyncio.timeout(budget):
        return await check(domain, dns, chain_for=chain_for, https_ca_file=settings.mta_sts_ca_file,
                           https_timeout=min(settings.https_timeout, budget))
