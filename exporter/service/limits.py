"""The concurrency limits of one loaded configuration: how many probes run at once, all
servers together, and how many connect to one server address at once (mail servers
rate-limit and block scanners). The per-server limit counts addresses, not names: forty
names of one address share one slot, and every job (scheduled or on demand, probe or
deep scan) takes the slot of the address it connects to.

Domain checks (DNS lookups, one HTTPS fetch) and blocklist runs have a pool of their own
of the same size: ten thousand queued domains never delay the probe of an MX host (whose
chain DANE waits for), and a slow mail server never delays the domains."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import AsyncIterator

from ..config import GlobalSettings


class _AddressSlots:
    """The semaphore of one address, and how many hold it or wait for it."""

    def __init__(self, size: int):
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


class ConcurrencyLimits:
    def __init__(self, settings: GlobalSettings):
        self.overall = asyncio.Semaphore(settings.concurrency)
        self.domains = asyncio.Semaphore(settings.concurrency)
        self._per_address = settings.per_host_concurrency
        self._addresses: dict[str, _AddressSlots] = {}   # only addresses in use: no growth

    @contextlib.asynccontextmanager
    async def slot(self, address: str, wait_limit: float | None = None) -> AsyncIterator[None]:
        """Hold one of the slots (overall and for the server `address`) while probing it.

        Waiting for the slots gives up with TimeoutError after `wait_limit` seconds; the
        probe itself, inside the slot, is not bounded here.
        """
        key = str(ipaddress.ip_address(address))
        slots = self._addresses.get(key) or self._addresses.setdefault(key, _AddressSlots(self._per_address))
        slots.users += 1
        try:
            async with asyncio.timeout(wait_limit):
                await self.overall.acquire()
                try:
                    await slots.semaphore.acquire()
                except BaseException:
                    self.overall.release()
                    raise
            try:
                yield
            finally:
                slots.semaphore.release()
                self.overall.release()
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._addresses[key]
