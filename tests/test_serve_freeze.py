"""The running exporter freezes its long-lived objects (gc.freeze) as the stored results grow
or are replaced, and prepares the text of changed results ahead of the scrapes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from exporter.cli import serve
from exporter.config import Target
from exporter.service.store import ResultStores
from results_factory import host_result, tls_result


async def test_objects_are_frozen_each_time_a_tenth_of_the_results_are_new_or_replaced(monkeypatch):
    monkeypatch.setattr(serve, "FREEZE_CHECK_SECONDS", 0.001)
    # (results stored, results put since the start): the stores fill, then results are replaced
    checks = iter([(100, 100), (600, 600), (650, 650), (740, 740), (750, 750), (750, 800), (750, 899),
                   (750, 900), (750, 1000)] + [(750, 1000)] * 1000)
    put = [0]

    def count() -> int:
        stored, put[0] = next(checks)
        return stored

    frozen: list[int] = []
    monkeypatch.setattr(serve.gc, "freeze", lambda: frozen.append(put[0]))
    results = SimpleNamespace(count=count, stored=lambda: put[0])
    task = asyncio.ensure_future(serve._freeze_as_results_change(SimpleNamespace(results=results)))
    while put[0] < 1000:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert frozen == [600, 740, 899, 1000]   # grown by a tenth (600, 740), then by replacement (899, 1000)


async def test_frozen_objects_are_collected_once_every_so_many_freezes(monkeypatch):
    monkeypatch.setattr(serve, "FREEZE_CHECK_SECONDS", 0.001)
    monkeypatch.setattr(serve, "FREEZES_BETWEEN_RECLAIMS", 3)
    put = [0]

    def stored() -> int:   # every check, a fifth of the 1,000 results replaced
        put[0] += 200
        return put[0]

    calls: list[str] = []
    for name in ("freeze", "unfreeze", "collect"):
        monkeypatch.setattr(serve.gc, name, lambda name=name: calls.append(name))
    results = SimpleNamespace(count=lambda: 1000, stored=stored)
    task = asyncio.ensure_future(serve._freeze_as_results_change(SimpleNamespace(results=results)))
    while calls.count("freeze") < 6:
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert calls[:8] == ["freeze", "freeze", "unfreeze", "collect", "freeze", "freeze", "freeze", "unfreeze"]


def test_the_stores_count_results_put_replaced_ones_included():
    results = ResultStores()
    first, second = Target("mx1.example.test", 25, "smtp"), Target("mx2.example.test", 25, "smtp")
    for target in (first, second, first):
        results.endpoints.put(target.key, target, host_result(tls_result()))
    results.endpoints.discard(second.key)
    assert (results.count(), results.stored()) == (1, 3)


async def test_the_changed_results_text_is_prepared_ahead_every_second(monkeypatch):
    monkeypatch.setattr(serve, "PREPARE_SECONDS", 0.001)
    prepared: list[int] = []

    async def prepare_exposition() -> None:
        prepared.append(1)

    exporter = SimpleNamespace(results=SimpleNamespace(prepare_exposition=prepare_exposition))
    task = asyncio.ensure_future(serve._prepare_exposition(exporter))
    while len(prepared) < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
