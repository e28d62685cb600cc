"""Run the exporter: load both configurations, serve HTTP, reload on SIGHUP, stop on
SIGTERM/SIGINT. Imported only when the exporter runs, not for one-shot commands."""

from __future__ import annotations

import argparse
import asyncio
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

log = logging.getLogger("exporter")


def run(args: argparse.Namespace, shard: Shard) -> int:
    return asyncio.run(serve(args, shard))


async def serve(args: argparse.Namespace, shard: Shard) -> int:
    try:
        web_config = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
    except WebConfigError as exc:
        print(f"web config error: {exc}", file=sys.stderr)
        return 1
    exporter = Exporter(args.config_file, shard=shard)
    try:
        exporter.reload()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    runner = web.AppRunner(build_app(exporter, web_config), access_log=None, handle_signals=False)
    await runner.setup()
    listen = args.listen_address
    tls = ssl_context(web_config.tls) if web_config.tls else None
    site = web.TCPSite(runner, listen[0], listen[1], ssl_context=tls)
    await site.start()
    for address in runner.addresses:
        log.info("listening on %s:%s", *address[:2], extra=with_fields(
            scheme="https" if tls else "http", basic_auth=bool(web_config.basic_auth_users)))

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_quietly, exporter)
    await stopping.wait()
    log.info("shutting down")
    await exporter.stop()
    await runner.cleanup()
    return 0


def _reload_quietly(exporter) -> None:
    try:
        exporter.reload()
    except ConfigError:
        pass  # already logged; the previous config keeps running
