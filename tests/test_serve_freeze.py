"""The running exporter freezes its long-lived objects (gc.freeze) as the stored results grow,
and prepares the text of changed results ahead of the scrapes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from exporter.cli import serve


async def test_objects_are_frozen_each_time_the_results_grew_a_fifth(monkeypatch):
    monkeypatch.setattr(serve, "FREEZE_CHECK_SECONDS", 0.001)
    counts = iter([100, 600, 650, 719, 720, 800, 10_000] + [10_000] * 1000)
    stored = [0]

    def count() -> int:
        stored[0] = next(counts)
        return stored[0]

    frozen: list[int] = []
    monkeypatch.setattr(serve.gc, "freeze", lambda: frozen.append(stored[0]))
    task = asyncio.ensure_future(serve._freeze_as_results_grow(SimpleNamespace(results=SimpleNamespace(count=count))))
    while stored[0] < 10_000:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert frozen == [600, 720, 10_000]


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
