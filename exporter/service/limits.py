"""The concurrency limits of one loaded configuration: how many probes run at once, all
hosts together, and how many connect to one host at once (mail servers rate-limit and
block scanners)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from ..config import GlobalSettings


class ConcurrencyLimits:
    def __init__(self, settings: GlobalSettings):
        self.overall = asyncio.Semaphore(settings.concurrency)
        self._per_host = settings.per_host_concurrency
        self._hosts: dict[str, asyncio.Semaphore] = {}

    def for_host(self, host: str) -> asyncio.Semaphore:
        key = host.lower().rstrip(".")
        if key not in self._hosts:
            self._hosts[key] = asyncio.Semaphore(self._per_host)
        return self._hosts[key]

    @contextlib.asynccontextmanager
    async def slot(self, host: str, wait_limit: float | None = None) -> AsyncIterator[None]:
        """Hold one of the slots (overall and for `host`) while probing.

        Waiting for the slots gives up with TimeoutError after `wait_limit` seconds; the
        probe itself, inside the slot, is not bounded here.
        """
        host_limit = self.for_host(host)
        async with asyncio.timeout(wait_limit):
            await self.overall.acquire()
            try:
                await host_limit.acquire()
            except BaseException:
                self.overall.release()
                raise
        try:
            yield
        finally:
            host_limit.release()
            self.overall.release()
