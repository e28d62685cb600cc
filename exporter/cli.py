"""Command line: run the exporter, or check a config file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from . import __version__
from .config import ConfigError, load_config
from .logfmt import setup_logging

log = logging.getLogger("exporter")

DEFAULT_LISTEN_ADDRESS = ":10054"


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """":10054" -> (None, 10054) (all interfaces); "127.0.0.1:0"; "[::1]:10054"."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: expected [HOST]:PORT")
    host = host.strip("[]")
    return (host or None), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailsec-exporter",
        description="Prometheus exporter for the security of mail servers and mail domains.",
    )
    parser.add_argument("--config.file", dest="config_file", default="config.yml", help="configuration file (default: %(default)s)")
    parser.add_argument("--config.check", dest="config_check", action="store_true", help="validate the configuration file and exit")
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        type=parse_listen_address,
        default=DEFAULT_LISTEN_ADDRESS,
        help="address to serve metrics on (default: %(default)s)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=["debug", "info", "warn", "error"], default="info")
    parser.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"], default="logfmt")
    parser.add_argument("--version", action="version", version=f"mailsec-exporter {__version__}")
    return parser


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(config.modules)} modules, {len(config.targets)} targets, {len(config.domains)} domains)")
    return 0


async def serve(config_path: str, listen: tuple[str | None, int]) -> int:
    from .app import Exporter  # the server's imports are not needed by --config.check
    from .web import build_app

    exporter = Exporter(config_path)
    try:
        exporter.reload()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    runner = web.AppRunner(build_app(exporter), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, listen[0], listen[1])
    await site.start()
    for address in runner.addresses:
        log.info("listening on %s:%s", *address[:2])

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.config_check:
        return check_config(args.config_file)
    return asyncio.run(serve(args.config_file, args.listen_address))


if __name__ == "__main__":
    sys.exit(main())
