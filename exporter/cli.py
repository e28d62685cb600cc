"""Command line: run the exporter, check a config file, or run a one-shot command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from . import __version__
from .config import ConfigError, load_config
from .config.web import WebConfig, WebConfigError, load_web_config
from .logfmt import setup_logging, with_fields
from .oneshot import add_check_parser, add_scan_parser, check_command, scan_command
from .sharding import Shard
from .webconfig import ssl_context

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
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        help="TLS and basic authentication, in the Prometheus exporter-toolkit format (default: plain HTTP, no auth)",
    )
    parser.add_argument("--shard.index", dest="shard_index", type=int, default=0,
                        help="which share of the targets this exporter probes, from 0 (default: %(default)s)")
    parser.add_argument("--shard.count", dest="shard_count", type=int, default=1,
                        help="how many exporters share the targets (default: %(default)s)")
    parser.add_argument("--log.level", dest="log_level", choices=["debug", "info", "warn", "error"], default="info")
    parser.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"], default="logfmt")
    parser.add_argument("--version", action="version", version=f"mailsec-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     description="without a command, the exporter runs and serves HTTP")
    add_scan_parser(commands)
    add_check_parser(commands)
    return parser


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(config.modules)} modules, {len(config.targets)} targets, {len(config.domains)} domains)")
    return 0


async def serve(args: argparse.Namespace, shard: Shard) -> int:
    from .app import Exporter  # the server's imports are not needed by --config.check
    from .web import build_app

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        shard = Shard(args.shard_index, args.shard_count)
    except ValueError as exc:
        parser.error(f"--shard.index/--shard.count: {exc}")
    setup_logging(args.log_level, args.log_format)
    if args.command == "scan":
        return scan_command(args)
    if args.command == "check":
        return check_command(args)
    if args.config_check:
        return check_config(args.config_file)
    return asyncio.run(serve(args, shard))


if __name__ == "__main__":
    sys.exit(main())
