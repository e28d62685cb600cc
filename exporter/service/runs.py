"""How one run of each job kind is started, whoever starts it (the scheduler, /probe, the
`check` command): the probe functions, their timeouts, and failed results for probes that
overrun or raise."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import time
from dataclasses import dataclass
from typing import AsyncContextManager, Awaitable, Callable

from ..config import DNSSettings, DomainCheckSettings, Domain, Module, Target
from ..dnsclient import DNSClient, DNSError, PinnedResolver
from ..domains.check import DomainResult, check_domain
from ..domains.dane import ChainFor
from ..logfmt import with_fields
from ..probes.endpoint import probe_endpoint
from ..results import EndpointResult, FailureReason, HostResult, SkipReason, address_order
from ..tlsscan.results import TLSScanResult

log = logging.getLogger(__name__)


EndpointProbe = Callable[[Target, Module, DNSClient], Awaitable[EndpointResult]]
SlotFor = Callable[[str], AsyncContextManager[None]]   # the concurrency slot of an address
DomainCheck = Callable[..., Awaitable[DomainResult]]   # check_domain's signature
DeepScan = Callable[..., Awaitable[TLSScanResult]]     # scan_endpoint's signature


async def scan_endpoint_on_demand(*args, **kwargs) -> TLSScanResult:
    """`tlsscan.scanner.scan_endpoint`, imported on the first deep scan: the `check`
    command, which uses the other probes, never pays for importing the scanner."""
    from ..tlsscan.scanner import scan_endpoint

    return await scan_endpoint(*args, **kwargs)


@dataclass(frozen=True)
class Probes:
    """What the exporter runs; tests put in-process stand-ins here."""

    endpoint: EndpointProbe = probe_endpoint
    domain: DomainCheck = check_domain
    deep_scan: DeepScan = scan_endpoint_on_demand
    dns: Callable[[DNSSettings], DNSClient] = DNSClient    # every lookup, host addresses included


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


# Each address of a host is probed (a sending MTA may pick any); beyond this many, the rest
# are reported as skipped. Eight covers round-robin pools; it bounds what one DNS name
# can make the exporter connect to.
MAX_ADDRESSES_PER_HOST = 8

_NO_ROUTE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})


def has_route(address: str) -> bool:
    """Whether this machine can send to `address` at all (commonly false for IPv6 on an
    IPv4-only network). A UDP connect() only consults the routing table: nothing is sent."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))
    except OSError as exc:
        if exc.errno in _NO_ROUTE_ERRNOS:
            return False
        raise
    return True


def plan_addresses(addresses: list[str]) -> tuple[list[str], list[tuple[str, SkipReason]]]:
    """Which addresses to probe, in `address_order`, and which are skipped and why."""
    ordered = sorted(set(addresses), key=address_order)
    probed: list[str] = []
    skipped: list[tuple[str, SkipReason]] = []
    for address in ordered:
        if not has_route(address):
            skipped.append((address, SkipReason.NO_ROUTE))
        elif len(probed) >= MAX_ADDRESSES_PER_HOST:
            skipped.append((address, SkipReason.OVER_LIMIT))
        else:
            probed.append(address)
    return probed, skipped


async def probe_host(
    probe: EndpointProbe, target: Target, module: Module, resolver: DNSClient | PinnedResolver,
    slot: SlotFor, deadline: float | None = None, every_key_type: bool = False,
) -> HostResult:
    """Probe every address of `target` (each within its own concurrency slot); a lookup
    that fails or finds nothing is the result's `resolve_failure`. With `deadline` (loop
    time), no address probe runs past it. With `every_key_type`, each address that
    answered is also asked, on one more connection, for its certificate of the other key
    type (RSA or ECDSA), which DANE must match too."""
    observed_at, started = time.time(), time.monotonic()
    try:
        async with asyncio.timeout(module.timeout):
            addresses = await resolver.resolve_addresses(target.host)
    except (DNSError, TimeoutError) as exc:
        detail = str(exc) if isinstance(exc, DNSError) else f"{target.host}: no address within {module.timeout:g}s"
        return HostResult(observed_at, time.monotonic() - started, (), (), FailureReason.DNS_ERROR, detail)
    probed, skipped = plan_addresses(addresses)
    for address, reason in skipped:
        _log_skip_once(address, reason)

    async def one(address: str) -> EndpointResult:
        waited_from = time.time()
        try:
            async with slot(address):
                timeout = module.timeout if deadline is None else min(module.timeout, deadline - _now())
                pinned = PinnedResolver(target.host, [address], _client_of(resolver))
                budgeted = dataclasses.replace(module, timeout=max(timeout, 0.001))
                result = await guarded_probe(probe, target, budgeted, pinned)
                if every_key_type:
                    result = await _with_other_key_type(probe, target, budgeted, pinned, result)
                return result if result.address == address else dataclasses.replace(result, address=address)
        except TimeoutError:   # guarded_probe never raises it: only the wait for the slot can
            detail = ("no probe slot became free in time (global.concurrency and "
                      "global.per_host_concurrency are all in use)")
            return dataclasses.replace(failed_result(FailureReason.TIMEOUT, detail, waited_from,
                                                     time.time() - waited_from), address=address)

    results = await asyncio.gather(*(one(address) for address in probed))
    return HostResult(observed_at, time.monotonic() - started, tuple(results), tuple(skipped))


async def first_address(resolver: DNSClient, host: str) -> str:
    """The first address of `host` in `address_order`: the server a deep scan looks at, the
    same one whatever order DNS answers in. Raises DNSError."""
    return min(await resolver.resolve_addresses(host), key=address_order)


def failed_scan(error: DNSError, observed_at: float) -> TLSScanResult:
    return TLSScanResult(success=False, failure=FailureReason.DNS_ERROR, failure_detail=str(error),
                         observed_at=observed_at, duration_seconds=0.0, connections=0)


# The key type a server is asked for next to the one a default handshake gets.
_OTHER_KEY_TYPE = {"rsa": "ec", "ec": "rsa"}


async def _with_other_key_type(probe: EndpointProbe, target: Target, module: Module,
                               pinned: PinnedResolver, result: EndpointResult) -> EndpointResult:
    """`result` with the chain of the server's other key type, when it has one: a
    handshake offering only suites of that type gets it, or fails (no such certificate)."""
    if result.tls is None or not result.tls.chain or result.tls.leaf.key_type not in _OTHER_KEY_TYPE:
        return result
    other = _OTHER_KEY_TYPE[result.tls.leaf.key_type]
    restricted = dataclasses.replace(module, tls=dataclasses.replace(module.tls, only_key_type=other))
    answer = await guarded_probe(probe, target, restricted, pinned)
    tls = answer.tls
    if not answer.success or tls is None or not tls.chain or tls.leaf.key_type != other:
        return result
    return dataclasses.replace(result, other_chains=(tls.chain,))


def _client_of(resolver: DNSClient | PinnedResolver) -> DNSClient | None:
    return resolver.client if isinstance(resolver, PinnedResolver) else resolver


def _now() -> float:
    return asyncio.get_running_loop().time()


_skips_logged: set[SkipReason] = set()


def _log_skip_once(address: str, reason: SkipReason) -> None:
    """A machine without IPv6 skips every IPv6 address of every host: say so once."""
    if reason not in _skips_logged:
        _skips_logged.add(reason)
        log.warning("addresses skipped: %s (first: %s); later ones are counted in mailsec_host_addresses_skipped",
                    reason.value, address)


async def run_domain_check(
    check: DomainCheck, domain: Domain, dns: DNSClient, settings: DomainCheckSettings,
    chain_for: ChainFor | None, budget: float = DOMAIN_CHECK_TIMEOUT_SECONDS,
    address_allowed: Callable[[str], bool] | None = None,
) -> DomainResult:
    """Every check of `domain` with the configured MTA-STS CA and HTTPS timeout, within
    `budget` seconds (TimeoutError past it). `chain_for(mx)`: the chains DANE is matched to;
    `address_allowed`: where the checks may connect (None: anywhere), for on-demand checks."""
    guard = {"address_allowed": address_allowed} if address_allowed is not None else {}
    async with asyncio.timeout(budget):
        return await check(domain, dns, chain_for=chain_for, https_ca_file=settings.mta_sts_ca_file,
                           https_timeout=min(settings.https_timeout, budget), **guard)
