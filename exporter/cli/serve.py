"""Run the exporter: load both configurations, serve HTTP, reload on SIGHUP, stop on
SIGTERM/SIGINT. Imported only when the exporter runs, not for one-shot commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys

from aiohttp import web

from ..config import ConfigError
from ..logfmt import with_fields
from ..service.exporter import Exporter
from ..service.sharding import Shard
from ..web.app import build_app
from ..config.web import WebConfig, WebConfigError, load_web_config
from ..web.auth import ssl_context
from ..web.server import ConnectionGuard, EventTally, ServerEvent, ServerLimits, ServerLog, listening_sockets

log = logging.getLogger("exporter")

FREEZE_CHECK_SECONDS = 10.0
FREEZE_SHARE = 0.1         # a tenth as many results put (new or replacing one) since the last freeze as are stored...
FREEZE_MIN_RESULTS = 500   # ...and at least this many stored
# Objects alive at a freeze that later die in a reference cycle stay frozen: ~100 per freeze
# measured (in-flight checks). Every this many freezes, they are collected (one full pass, ~1 s).
FREEZES_BETWEEN_RECLAIMS = 1000
PREPARE_SECONDS = 1.0      # how often the changed results' text is joined and compressed ahead


def run(args: argparse.Namespace, shard: Shard) -> int:
    return asyncio.run(serve(args, shard))


async def serve(args: argparse.Namespace, shard: Shard) -> int:
    try:
        web_config = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
    except WebConfigError as exc:
        print(f"web config error: {exc}", file=sys.stderr)
        return 1
    host, port = args.listen_address
    try:
        listeners = listening_sockets(host, port)
    except OSError as exc:
        print(f"cannot listen on {format_listen_address(host, port)}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    exporter = Exporter(args.config_file, shard=shard)
    try:
        exporter.reload()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        for sock in listeners:
            sock.close()
        return 1
    tls = ssl_context(web_config.tls) if web_config.tls else None
    limits = ServerLimits.for_this_process()
    for event in ServerEvent:
        exporter.metrics.http_events.labels(event.value)   # exported as 0 until it happens
    tally = EventTally(count=lambda event: exporter.metrics.http_events.labels(event.value).inc())
    guard = ConnectionGuard(limits, tally, tls)
    app = build_app(exporter, web_config, lifecycle=args.enable_lifecycle, outer_middlewares=(guard.middleware,))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=ServerLog(tally),
                           **limits.handler_args())
    await runner.setup()
    guard.start(listeners, runner.server)
    for sock in listeners:
        log.info("listening on %s:%s", *sock.getsockname()[:2], extra=with_fields(
            scheme="https" if tls else "http", basic_auth=bool(web_config.basic_auth_users),
            lifecycle_api=args.enable_lifecycle, max_connections=limits.max_connections,
            read_timeout=f"{limits.read_timeout:g}s"))

    stopping = asyncio.Event()
    reloads: set[asyncio.Task] = set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, _start_reload, exporter, reloads)
    freezer = asyncio.ensure_future(_freeze_as_results_change(exporter))
    preparer = asyncio.ensure_future(_prepare_exposition(exporter))
    await stopping.wait()
    log.info("shutting down")
    freezer.cancel()
    preparer.cancel()
    guard.close()
    await exporter.stop()
    await runner.cleanup()
    return 0


async def _freeze_as_results_change(exporter: Exporter) -> None:
    """Freeze the objects alive (gc.freeze) each time a tenth of the stored results are new,
    whether the stores grew or results were replaced: long-lived results out of the
    collector's full passes, which walk every object not frozen. In the first cycle of
    10,000 domains those passes stalled scrapes up to 0.7 s (0.14 s frozen); in steady
    state, freezing only on growth, every result was replaced within an interval by one
    not frozen, and the passes grew from 0.06 to 0.29 s within 90 s, towards the
    ~1 s of a pass over everything (docs/benchmarks-dns.md, "Garbage collection")."""
    frozen_at = 0   # results put at the last freeze
    freezes = 0
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(FREEZE_CHECK_SECONDS)
            count, put = exporter.results.count(), exporter.results.stored()
            if count >= FREEZE_MIN_RESULTS and put - frozen_at >= FREEZE_SHARE * count:
                freezes += 1
                if freezes % FREEZES_BETWEEN_RECLAIMS == 0:
                    gc.unfreeze()
                    gc.collect()
                gc.freeze()
                frozen_at = put


async def _prepare_exposition(exporter: Exporter) -> None:
    """Join and compress, every PREPARE_SECONDS, the text of the results that changed: a
    scrape then has at most a second's changes to join and compress, however long ago the
    last one was (10,000 domains every 300 s: ~33 results a second)."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(PREPARE_SECONDS)
            await exporter.results.prepare_exposition()


def format_listen_address(host: str | None, port: int) -> str:
    if host is None:
        return f":{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _start_reload(exporter: Exporter, running: set[asyncio.Task]) -> None:
    """SIGHUP: reload as POST /-/reload does, the file parsed off the event loop."""
    task = asyncio.ensure_future(_reload_quietly(exporter))
    running.add(task)
    task.add_done_callback(running.discard)


async def _reload_quietly(exporter: Exporter) -> None:
    try:
        await exporter.reload_off_loop()
    except ConfigError:
        pass  # already logged; the previous config keeps running
