"""What stalls the exporter's event loop, traced from inside its process (benchmarks only).

    python -c "import benchmarks._looptrace as t; t.run_exporter('trace.jsonl')" --config.file ...

Writes one JSON line per event, times on CLOCK_MONOTONIC (the same clock in every process
of the machine, so a benchmark can set them beside its own scrapes):
- {"gc": generation, "start": s, "ms": duration, "collected": n}: every collection of
  generation 1 or 2 (generation 0 ones only when over 2 ms);
- {"freeze": s, "ms": duration}: every gc.freeze();
- {"callback": repr, "start": s, "ms": duration}: every event-loop callback over 20 ms;
- at exit, {"exit": s, "garbage": n, "frozen_garbage": m}: unreachable objects a full
  collection finds, then those it finds once the frozen ones are unfrozen (cycles that
  became garbage after they were frozen: what freezing leaked).
"""

from __future__ import annotations

import asyncio.events
import atexit
import gc
import json
import runpy
import time

SLOW_CALLBACK_MS = 20.0
SLOW_YOUNG_GC_MS = 2.0


def run_exporter(path: str) -> None:
    """Trace into `path`, then run `python -m exporter` with the remaining arguments."""
    trace = open(path, "w", buffering=1)   # noqa: SIM115 - open for the process's lifetime

    def write(**event) -> None:
        trace.write(json.dumps(event) + "\n")

    _trace_collections(write)
    _trace_freezes(write)
    _trace_callbacks(write)
    atexit.register(_count_frozen_garbage, write)
    runpy.run_module("exporter", run_name="__main__", alter_sys=True)


def _trace_collections(write) -> None:
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.monotonic()
            return
        ms = 1000 * (time.monotonic() - started[0])
        if info["generation"] > 0 or ms > SLOW_YOUNG_GC_MS:
            write(gc=info["generation"], start=round(started[0], 4), ms=round(ms, 2), collected=info["collected"])

    gc.callbacks.append(callback)


def _trace_freezes(write) -> None:
    freeze = gc.freeze

    def traced() -> None:
        start = time.monotonic()
        freeze()
        # Not gc.get_freeze_count(): it walks every frozen object (~0.1 s for 700,000).
        write(freeze=round(start, 4), ms=round(1000 * (time.monotonic() - start), 2))

    gc.freeze = traced


def _trace_callbacks(write) -> None:
    run = asyncio.events.Handle._run

    def timed(handle) -> None:
        start = time.monotonic()
        run(handle)
        ms = 1000 * (time.monotonic() - start)
        if ms > SLOW_CALLBACK_MS:
            write(callback=_name(handle), start=round(start, 4), ms=round(ms, 2))

    asyncio.events.Handle._run = timed


def _name(handle) -> str:
    """The coroutine a task's step runs, else the handle's own text."""
    task = getattr(handle._callback, "__self__", None)
    coroutine = task.get_coro() if isinstance(task, asyncio.Task) else None
    return getattr(coroutine, "__qualname__", None) or repr(handle)[:300]


def _count_frozen_garbage(write) -> None:
    garbage = gc.collect()
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    write(exit=round(time.monotonic(), 4), garbage=garbage, frozen=frozen, frozen_garbage=gc.collect())
