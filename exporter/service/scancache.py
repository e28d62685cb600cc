"""Deep TLS scans for /probe, served from a cache.

A deep scan opens about one connection per accepted cipher suite and takes seconds to
minutes: far too much to run on every 15-second scrape, and more than a scrape timeout
allows. So /probe answers with the latest scan of the target when it is younger than the
module's `deep_scan.interval`, and a missing or older one is refreshed in the background,
within the scheduler's concurrency limits. The first scrapes of a new target therefore
carry no scan metrics; later ones do.

/probe may name any allowed target, so what this does is bounded: at most
MAX_RUNNING_SCANS scans queued or running (further requests start none until one ends),
one at a time per server address (forty names of one server are one scan at a time), and
MAX_CACHED_TARGETS results remembered.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..config import Module, Target
from ..dnsclient import DNSClient, DNSError, PinnedResolver
from ..logfmt import with_fields
from ..tlsscan.results import TLSScanResult
from .runs import first_address
from .scheduler import Scheduler

log = logging.getLogger(__name__)

MAX_CACHED_TARGETS = 1000
MAX_RUNNING_SCANS = 4


class ProbeScanCache:
    def __init__(self, scheduler: Scheduler):
        self._scheduler = scheduler
        self._results: dict[str, TLSScanResult] = {}          # target key -> latest scan
        self._running: dict[str, asyncio.Task] = {}           # target key -> its refresh
        self._addresses: set[str] = set()                     # server addresses being scanned

    def latest(self, target: Target, module: Module, resolver: DNSClient | PinnedResolver) -> TLSScanResult | None:
        """The newest scan of `target` (None if there is none yet); starts a background
        scan when there is none or it is older than the module's deep-scan interval.
        `resolver`: the one the target was admitted with (pinned addresses, maybe)."""
        settings = module.deep_scan
        assert settings is not None, "only modules with deep_scan are scanned"
        result = self._results.get(target.key)
        fresh = result is not None and time.time() - result.observed_at < settings.interval
        if not fresh and target.key not in self._running and len(self._running) < MAX_RUNNING_SCANS:
            task = asyncio.create_task(self._refresh(target, module, resolver), name=f"/probe deep scan {target.key}")
            self._running[target.key] = task
        return result

    async def _refresh(self, target: Target, module: Module, resolver: DNSClient | PinnedResolver) -> None:
        try:
            address = await first_address(resolver, target.host)
            if address in self._addresses:
                return      # another name of this server is being scanned: one at a time
            self._addresses.add(address)
            try:
                pinned = PinnedResolver(target.host, [address], self._scheduler.dns)
                result = await self._scheduler.deep_scan(target, module, module.deep_scan,
                                                         self._scheduler.limits.slot, pinned)
            finally:
                self._addresses.discard(address)
            if result is not None:
                self._remember(target.key, result)
        except DNSError as exc:
            log.info("deep scan for /probe: no address", extra=with_fields(target=target.address, error=exc))
        except Exception:
            log.exception("deep scan for /probe failed", extra=with_fields(target=target.address, module=module.name))
        finally:
            del self._running[target.key]

    def _remember(self, key: str, result: TLSScanResult) -> None:
        self._results.pop(key, None)
        self._results[key] = result
        while len(self._results) > MAX_CACHED_TARGETS:   # dicts keep insertion order: oldest first
            del self._results[next(iter(self._results))]

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
