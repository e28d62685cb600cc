"""Revocation checks of the presented certificates, run beside the endpoint probes.

After each stored endpoint result, the chains it saw are checked (`revocation.check`) in a
task of their own: the probe's result, its metrics and its schedule never wait for a CA
server. One run per target at a time; a probe that ends while its target's previous run
is still going starts none. Results go to their own store (`ResultStores.revocations`).

Answers are cached, shared by every target: an OCSP answer per (URL, issuer, serial), a
CRL per (URL, issuer), verified and indexed once, judged anew for each certificate. An answer is asked for again at its
nextUpdate, but never sooner than MIN_REFRESH_SECONDS nor later than MAX_REFRESH_SECONDS;
a failed fetch is tried again after MIN_REFRESH_SECONDS. The cache holds at most
OCSP_ENTRIES answers and CRL_ENTRIES CRLs (least recently used go first). At most
FETCHES_AT_ONCE fetches run at once, whatever the number of targets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Awaitable, Callable, Generic, Iterable, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..config import Module, Target
from ..dnsclient import Resolver
from ..logfmt import with_fields
from ..metrics.selfmetrics import ExporterMetrics
from ..results import HostResult, JobKind
from ..revocation.check import FETCH_TIMEOUT_SECONDS, Fetcher, check_chains, presented_chains, trust_anchors
from ..revocation.results import RevocationResult, Verdict
from ..revocation.verify import HTTPLocation, VerifiedCRL
from .store import LatestResults

log = logging.getLogger(__name__)

RUN_TIMEOUT_SECONDS = 60.0           # a whole run; only a stuck fetch queue reaches it
MIN_REFRESH_SECONDS = 300.0
MAX_REFRESH_SECONDS = 6 * 3600.0
NO_NEXT_UPDATE_REFRESH_SECONDS = 3600.0   # an answer without nextUpdate (RFC 6960 allows one)
OCSP_ENTRIES = 4096
CRL_ENTRIES = 32
FETCHES_AT_ONCE = 8


def refresh_after(next_update: float | None, failed: bool, now: float) -> float:
    """Seconds until an answer fetched `now` is asked for again."""
    if failed:
        return MIN_REFRESH_SECONDS
    if next_update is None:
        return NO_NEXT_UPDATE_REFRESH_SECONDS
    return min(max(next_update - now, MIN_REFRESH_SECONDS), MAX_REFRESH_SECONDS)


Value = TypeVar("Value")


class ExpiringCache(Generic[Value]):
    """At most `size` values by key, each until its expiry (monotonic seconds), least
    recently used dropped first. Concurrent askers of a missing key share one production."""

    def __init__(self, size: int):
        self.size = size
        self._values: collections.OrderedDict[object, tuple[float, Value]] = collections.OrderedDict()
        self._producing: dict[object, asyncio.Future[Value]] = {}

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: object, produce: Callable[[], Awaitable[Value]],
                  lifetime: Callable[[Value], float]) -> Value:
        kept = self._values.get(key)
        if kept is not None and kept[0] > time.monotonic():
            self._values.move_to_end(key)
            return kept[1]
        pending = self._producing.get(key)
        if pending is None:
            pending = self._producing[key] = asyncio.ensure_future(self._produce(key, produce, lifetime))
        return await asyncio.shield(pending)

    def pending(self) -> list[asyncio.Future[Value]]:
        """The productions under way (a stop cancels them)."""
        return list(self._producing.values())

    async def _produce(self, key: object, produce: Callable[[], Awaitable[Value]],
                       lifetime: Callable[[Value], float]) -> Value:
        try:
            value = await produce()
        finally:
            self._producing.pop(key, None)
        self._values[key] = (time.monotonic() + lifetime(value), value)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)
        return value


class AnswerCache:
    """The `Answers` of `check_chains`, cached (see the module), fetched by a `Fetcher` made
    for each run (the resolver may change with a reload; the cache stays)."""

    def __init__(self) -> None:
        self.ocsp_answers: ExpiringCache[tuple[Verdict, float]] = ExpiringCache(OCSP_ENTRIES)
        self.crls: ExpiringCache[tuple[VerifiedCRL | Verdict, float]] = ExpiringCache(CRL_ENTRIES)
        self.fetches = asyncio.Semaphore(FETCHES_AT_ONCE)

    def through(self, fetcher: Fetcher) -> "_CachedAnswers":
        return _CachedAnswers(self, fetcher)


def _verdict_lifetime(answer: tuple[Verdict, float]) -> float:
    verdict, fetched_at = answer
    return refresh_after(verdict.next_update, verdict.failure is not None, fetched_at)


def _crl_lifetime(answer: tuple[VerifiedCRL | Verdict, float]) -> float:
    crl, fetched_at = answer
    if isinstance(crl, Verdict):
        return refresh_after(None, True, fetched_at)
    return refresh_after(crl.next_update, False, fetched_at)


class _CachedAnswers:
    def __init__(self, cache: AnswerCache, fetcher: Fetcher):
        self.cache, self.fetcher = cache, fetcher

    async def ocsp(self, url: str, location: HTTPLocation, cert: x509.Certificate,
                   issuer: x509.Certificate) -> tuple[Verdict, float]:
        async def produce() -> tuple[Verdict, float]:
            async with self.cache.fetches:
                return await self.fetcher.ocsp(url, location, cert, issuer)
        key = (url, issuer.fingerprint(hashes.SHA256()), cert.serial_number)
        return await self.cache.ocsp_answers.get(key, produce, _verdict_lifetime)

    async def crl(self, url: str, location: HTTPLocation,
                  issuer: x509.Certificate) -> tuple[VerifiedCRL | Verdict, float]:
        async def produce() -> tuple[VerifiedCRL | Verdict, float]:
            async with self.cache.fetches:
                return await self.fetcher.crl(url, location, issuer)
        return await self.cache.crls.get((url, issuer.fingerprint(hashes.SHA256())), produce, _crl_lifetime)


class RevocationChecks:
    """Runs the checks after each endpoint probe and stores their results."""

    def __init__(self, store: LatestResults[Target, RevocationResult], metrics: ExporterMetrics):
        self._store = store
        self._metrics = metrics
        self.cache = AnswerCache()
        self._running: dict[str, asyncio.Task] = {}

    def after_probe(self, target: Target, module: Module, result: HostResult, dns: Resolver) -> None:
        """Check the chains `result` saw, in a task of its own. A probe that saw none (it
        failed before TLS) leaves the previous result in place: the certificates it checked
        are still the ones last seen."""
        chains = presented_chains(result)
        running = self._running.get(target.key)
        if not chains or (running is not None and not running.done()):
            return
        task = asyncio.create_task(self._run(target, module, chains, dns), name=f"revocation {target.key}")
        self._running[target.key] = task
        task.add_done_callback(lambda done: self._forget_task(target.key, done))

    def _forget_task(self, key: str, task: asyncio.Task) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    async def _run(self, target: Target, module: Module, chains: dict[str, tuple[bytes, ...]], dns: Resolver) -> None:
        observed_at, started = time.time(), time.monotonic()
        try:
            async with asyncio.timeout(RUN_TIMEOUT_SECONDS):
                anchors = await asyncio.to_thread(trust_anchors, module.tls.ca_file)
                fetcher = Fetcher(dns, timeout=FETCH_TIMEOUT_SECONDS)
                checks = await check_chains(chains, anchors, self.cache.through(fetcher))
        except Exception:   # TimeoutError included: a bug of ours, or a stuck queue
            log.exception("revocation check failed", extra=with_fields(target=target.address, module=module.name))
            self._metrics.record_probe(JobKind.REVOCATION, module.name, False, time.monotonic() - started)
            return
        result = RevocationResult(observed_at, time.monotonic() - started, checks)
        self._metrics.record_probe(JobKind.REVOCATION, module.name, result.success, result.duration_seconds)
        self._store.put(target.key, target, result)
        for check in result.revoked:
            log.warning("certificate revoked", extra=with_fields(
                target=target.address, address=check.address, position=check.position, method=check.method.value,
                serial=check.serial, subject=check.subject))

    def retain(self, keys: Iterable[str]) -> None:
        """Forget the results of targets no longer probed, and stop their runs."""
        keep = set(keys)
        self._store.retain(keep)
        for key, task in list(self._running.items()):
            if key not in keep:
                task.cancel()

    def discard(self, key: str) -> None:
        """Forget one target's result and stop its run (an MX host no domain names any more)."""
        self._store.discard(key)
        running = self._running.get(key)
        if running is not None:
            running.cancel()

    async def stop(self) -> None:
        tasks = list(self._running.values()) + self.cache.ocsp_answers.pending() + self.cache.crls.pending()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
