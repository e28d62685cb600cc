"""Command line: run the exporter, check a config file, or run a one-shot command.

Only the arguments are defined here; each command's module (serve, scan, check) is
imported when that command runs, so that `--help` or `scan` do not pay for importing the
HTTP server and every check.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import re
import sys
from typing import Callable

from .. import __version__
from ..config import ConfigError, Module
from ..logfmt import setup_logging
from ..service.sharding import Shard

DEFAULT_LISTEN_ADDRESS = ":10054"


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """":10054" -> (None, 10054) (all interfaces); "127.0.0.1:0"; "[::1]:10054"; "localhost:80".
    An IPv6 address must be in brackets, as in Prometheus; anything else is refused."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: expected [HOST]:PORT")
    problem = _listen_host_problem(host)
    if problem:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: {problem}")
    if host.startswith("["):
        host = host[1:-1]
    return (host or None), int(port)


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")


def _listen_host_problem(host: str) -> str | None:
    """Why `host` (the part before the port) cannot be listened on, or None."""
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")) or "[" in host[1:] or "]" in host[:-1]:
            return "unbalanced brackets"
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host[1:-1]!r} in brackets is not an IPv6 address"
        return None
    if ":" in host:
        return "an IPv6 address must be in brackets, e.g. [::1]:10054"
    if host and not _HOST_NAME.fullmatch(host):
        return f"{host!r} is neither an IP address nor a host name"
    return None


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
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="allow reloading the configuration with POST /-/reload (default: off; SIGHUP always reloads)",
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


# --starttls names the dialogue; without it TLS starts at once (SMTPS, IMAPS, POP3S alike
# for the scan, which only sends hellos).
STARTTLS_PROTOCOLS = ("imap", "pop3", "smtp")


def add_scan_parser(commands: argparse._SubParsersAction) -> None:
    scan = commands.add_parser(
        "scan",
        help="deep TLS scan of one endpoint: versions, cipher suites, groups, graded",
        description="Deep TLS scan of one mail endpoint, printed as a table (or JSON).",
    )
    scan.add_argument("endpoint", help="HOST:PORT ([IPv6]:PORT); the port defaults to the protocol's")
    scan.add_argument("--starttls", choices=STARTTLS_PROTOCOLS,
                      help="speak this protocol and STARTTLS first; without it, TLS starts at once (465, 993, 995)")
    scan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    scan.add_argument("--timeout", type=float, default=10.0, help="seconds per connection (default: %(default)s)")
    scan.add_argument("--budget", type=float, default=300.0, help="seconds for the whole scan (default: %(default)s)")
    scan.add_argument("--min-delay", type=float, default=0.0,
                      help="seconds between two connections, for servers that rate-limit (default: %(default)s)")
    scan.add_argument("--tls.server-name", dest="server_name", help="SNI to send (default: the host name)")
    scan.add_argument("--ehlo", default=Module.ehlo, help="EHLO name for SMTP (default: %(default)s)")
    scan.add_argument("--revocation", action="store_true",
                      help="also check the revocation of the presented certificates by OCSP and CRL "
                           "(asks the CAs' servers, as testssl.sh's --phone-out)")
    scan.add_argument("--dns.nameserver", dest="nameservers", action="append", default=[],
                      help="ADDR[:PORT] of the resolver to use, repeatable (default: the system's)")


def add_check_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check mail domains: MX, SPF, DMARC, DKIM, MTA-STS, TLS-RPT, BIMI, DNSSEC, DANE and each MX's TLS",
        description="Check mail domains once and print the findings, grouped by check, each with a fix. "
                    "Exit 0 when clean, 1 with findings, 2 when a check could not run.",
    )
    check.add_argument("domains", nargs="+", metavar="DOMAIN")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.add_argument("--config.file", dest="check_config_file",
                       help="take the resolver, the MX module, the MTA-STS CA and the DKIM selectors of listed "
                            "domains from this configuration")
    check.add_argument("--dns.nameserver", dest="nameservers", action="append", default=[],
                       help="ADDR[:PORT] of the resolver, repeatable (default: the system's); "
                            "a validating resolver gives DNSSEC status")
    check.add_argument("--tls.ca-file", dest="ca_file",
                       help="CA bundle for the MX certificates and the MTA-STS policy hosts (default: system store)")
    check.add_argument("--dkim-selector", dest="selectors", action="append", default=[],
                       help="DKIM selector to look up, repeatable")


def check_config(path: str) -> int:
    from ..config.loader import load_config   # PyYAML and the node walker: only for a file

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(config.modules)} modules, {len(config.targets)} targets, {len(config.domains)} domains)")
    return 0


def one_shot_command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function of `scan` or `check`, imported with the cyclic garbage collector off.

    Importing allocates a few hundred thousand objects and no garbage: the collector's
    passes over them cost ~15% of the import. Once imported they are frozen (moved where
    the collector never looks again), which also spares the interpreter's last collection
    at exit (~20 ms). The command itself then runs with the collector on, as usual.
    """
    gc.disable()
    try:
        if name == "scan":
            from .scan import scan_command as command
        else:
            from .check import check_command as command
    finally:
        gc.freeze()
        gc.enable()
    return command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        shard = Shard(args.shard_index, args.shard_count)
    except ValueError as exc:
        parser.error(f"--shard.index/--shard.count: {exc}")
    setup_logging(args.log_level, args.log_format)
    if args.command in ("scan", "check"):
        return one_shot_command(args.command)(args)
    if args.config_check:
        return check_config(args.config_file)
    from .serve import run
    return run(args, shard)


if __name__ == "__main__":
    sys.exit(main())
