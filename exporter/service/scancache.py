"""Deep TLS scans for /probe, served from a cache.

A deep scan opens about one connection per accepted cipher suite and takes seconds to
minutes: far too much to run on every 15-second scrape, and more than a scrape timeout
allows. So /probe answers with the latest scan of the target when it is younger than the
module's `deep_scan.interval`, and a missing or older one is refreshed in the background,
one scan per target at a time, within the scheduler's concurrency limits. The first scrapes
of a new target therefore carry no scan metrics; later ones do.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..config import Module, Target
from ..logfmt import with_fields
from .scheduler import Scheduler
from ..tlsscan.results import TLSScanResult

log = logging.getLogger(__name__)

# /probe may name any allowed target: bound what is remembered of them.
MAX_CACHED_TARGETS = 1000


class ProbeScanCache:
    def __init__(self, scheduler: Scheduler):
        self._scheduler = scheduler
        self._results: dict[str, TLSScanResult] = {}          # target key -> latest scan
        self._running: dict[str, asyncio.Task] = {}

    def latest(self, target: Target, module: Module) -> TLSScanResult | None:
        """The newest scan of `target` (None if there is none yet); starts a background
        scan when there is none or it is older than the module's deep-scan interval."""
        settings = module.deep_scan
        assert settings is not None, "only modules with deep_scan are scanned"
        result = self._results.get(target.key)
        fresh = result is not None and time.time() - result.observed_at < settings.interval
        if not fresh and target.key not in self._running:
            task = asyncio.create_task(self._refresh(target, module), name=f"/probe deep scan {target.key}")
            self._running[target.key] = task
        return result

    async def _refresh(self, target: Target, module: Module) -> None:
        settings = module.deep_scan
        try:
            async with self._scheduler.limits.slot(target.host):
                result = await self._scheduler.deep_scan(target, module, settings)
            if result is not None:
                self._remember(target.key, result)
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
