"""Runs every configured probe on its interval, within the concurrency limits.

One asyncio task per target, so a target never runs twice at once; a global semaphore
and one per host bound the connections (mail servers rate-limit and block scanners);
each probe is bounded by its timeout; a probe that raises becomes a failed result with
reason `internal_error` and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import AsyncIterator, Awaitable, Callable

from .config import Config, Module, Target
from .dnsclient import DNSClient
from .logfmt import with_fields
from .results import EndpointResult, FailureReason
from .selfmetrics import ExporterMetrics
from .store import LatestResults

log = logging.getLogger(__name__)

EndpointProbe = Callable[[Target, Module, DNSClient], Awaitable[EndpointResult]]

# A probe enforces its own timeout; this margin only catches a probe that fails to.
_TIMEOUT_GRACE_SECONDS = 2.0


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
        async with asyncio.timeout(module.timeout + _TIMEOUT_GRACE_SECONDS):
            return await probe(target, module, dns)
    except TimeoutError:
        detail = f"probe did not finish within {module.timeout:g}s"
        return failed_result(FailureReason.TIMEOUT, detail, started_at, time.monotonic() - started)
    except Exception as exc:
        log.exception("probe raised", extra=with_fields(target=target.address, module=module.name))
        detail = f"{type(exc).__name__}: {exc}"
        return failed_result(FailureReason.INTERNAL_ERROR, detail, started_at, time.monotonic() - started)


class Scheduler:
    def __init__(
        self,
        endpoints: LatestResults[Target, EndpointResult],
        metrics: ExporterMetrics,
        probe: EndpointProbe,
    ):
        self._endpoints = endpoints
        self._metrics = metrics
        self._probe = probe
        self._loops: dict[str, tuple[Target, Module, asyncio.Task]] = {}
        self._last_failure: dict[str, FailureReason | None] = {}
        self.next_run: dict[str, float] = {}   # target key -> Unix time of its next run
        self.config = Config()
        self.dns = DNSClient(self.config.dns)
        self._limits = _Limits(self.config)

    def apply(self, config: Config) -> None:
        """Start, restart or stop target loops so they match `config`.

        Results of targets whose settings did not change survive; removed targets vanish.
        """
        self.config = config
        self.dns = DNSClient(config.dns)
        self._limits = _Limits(config)
        wanted = {target.key: (target, config.modules[target.module]) for target in config.targets}
        for key in list(self._loops):
            target, module, task = self._loops[key]
            if wanted.get(key) != (target, module):
                task.cancel()
                del self._loops[key]
                self.next_run.pop(key, None)
        for key, (target, module) in wanted.items():
            if key not in self._loops:
                task = asyncio.create_task(self._loop(target, module), name=f"probe {key}")
                self._loops[key] = (target, module, task)
        self._endpoints.retain(wanted)
        self._last_failure = {k: v for k, v in self._last_failure.items() if k in wanted}
        self._metrics.targets.labels("endpoint").set(len(wanted))

    async def stop(self) -> None:
        tasks = [task for _, _, task in self._loops.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()

    async def _loop(self, target: Target, module: Module) -> None:
        # A random first offset spreads the load; runs then keep a regular interval.
        due = time.monotonic() + random.uniform(0, min(self.config.global_.jitter, module.interval))
        while True:
            self.next_run[target.key] = time.time() + (due - time.monotonic())
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.run_once(target, module, due=due)
            due += module.interval
            if due < time.monotonic():   # fell behind (e.g. the process was suspended): skip, don't burst
                due = time.monotonic() + module.interval

    async def run_once(self, target: Target, module: Module, due: float | None = None) -> EndpointResult:
        """Probe `target` now (within the limits), store and return the result."""
        async with self.slot(target.host):
            if due is not None:
                self._metrics.scheduler_lag.observe(max(0.0, time.monotonic() - due))
            result = await guarded_probe(self._probe, target, module, self.dns)
        self._endpoints.put(target.key, target, result)
        self._metrics.record_probe(module.name, result.success, result.duration_seconds)
        self._log_state_change(target, result)
        return result

    @contextlib.asynccontextmanager
    async def slot(self, host: str, wait_limit: float | None = None) -> AsyncIterator[None]:
        """Hold one of the concurrency slots (overall and for `host`) while probing.

        Waiting for the slots gives up with TimeoutError after `wait_limit` seconds; the
        probe itself, inside the slot, is not bounded here.
        """
        limits = self._limits
        host_limit = limits.for_host(host)
        async with asyncio.timeout(wait_limit):
            await limits.overall.acquire()
            try:
                await host_limit.acquire()
            except BaseException:
                limits.overall.release()
                raise
        try:
            yield
        finally:
            host_limit.release()
            limits.overall.release()

    def _log_state_change(self, target: Target, result: EndpointResult) -> None:
        """Log a target's first result and each change of its failure reason, not every run."""
        previous = self._last_failure.get(target.key, "unknown")
        if result.failure == previous:
            return
        self._last_failure[target.key] = result.failure
        if result.failure is None:
            log.info("probe succeeded", extra=with_fields(target=target.address, module=target.module))
        else:
            log.warning("probe failed", extra=with_fields(
                target=target.address, module=target.module,
                reason=result.failure.value, detail=result.failure_detail,
            ))


class _Limits:
    """The concurrency limits of one loaded configuration."""

    def __init__(self, config: Config):
        self.overall = asyncio.Semaphore(config.global_.concurrency)
        self._per_host = config.global_.per_host_concurrency
        self._hosts: dict[str, asyncio.Semaphore] = {}

    def for_host(self, host: str) -> asyncio.Semaphore:
        key = host.lower().rstrip(".")
        if key not in self._hosts:
            self._hosts[key] = asyncio.Semaphore(self._per_host)
        return self._hosts[key]
