"""The strict loader of the config file: its sections, each parsed into the model.

`load_config` refuses anything it does not understand with a `ConfigError` that names
the file, the line and the reason.
"""

from __future__ import annotations

import functools
import os
import re
from types import MappingProxyType
from typing import Any, Callable, Mapping

import yaml

from . import yamlnodes as nodes
from .blocklists import parse_blocklists
from .model import (
    TLS_VERSIONS,
    Config,
    ConfigError,
    DeepScanSettings,
    DNSSettings,
    Domain,
    DomainCheckSettings,
    GlobalSettings,
    IMAPSecurity,
    IMAPSource,
    Module,
    Nameserver,
    OpenRelayTest,
    ProbeSettings,
    MailProtocol,
    ProcessedAction,
    ReportLimits,
    ReportReceiver,
    ReportSettings,
    StartTLS,
    Target,
    TLSSettings,
)
from .web import WebConfigError, load_web_config   # the receiver's own TLS and users
from .values import (
    check_ca_file,
    check_dkim_selector,
    check_ehlo_name,
    format_duration,
    normalize_dns_name,
    parse_domain_pattern,
    parse_host,
    parse_nameserver,
    parse_server_name,
    parse_target_pattern,
    parse_byte_size,
    check_readable_file,
)


def load_config(path: str) -> Config:
    """Read and strictly validate a YAML config file; raise ConfigError on any problem."""
    return nodes.load_yaml_file(path, functools.partial(_parse_config, source=path), ConfigError)


def _check_timeout_fits(fields: nodes.Fields, timeout: float, interval: float) -> None:
    """A probe must end before the next run of the same target begins."""
    if timeout > interval:
        # At least one of the two is set here: the global defaults passed this same check.
        culprit = fields.get("timeout") or fields.get("interval")
        raise nodes.Invalid(
            culprit,
            f"{fields.path}: timeout ({format_duration(timeout)}) must not exceed "
            f"interval ({format_duration(interval)})",
        )


# The longest durations that make sense: beyond them a value is a mistake (an interval of
# 10000y passed the check, then overflowed the status page's clock).
_YEAR, _DAY, _HOUR = 365 * 86400.0, 86400.0, 3600.0
_interval = functools.partial(nodes.duration, maximum=_YEAR)    # between two runs of a job
_timeout = functools.partial(nodes.duration, maximum=_DAY)      # of a probe or a deep scan
_wait = functools.partial(nodes.duration, maximum=_HOUR)        # of one lookup or fetch

_TOP_LEVEL_KEYS = ("global", "dns", "probe", "domain_checks", "modules", "targets", "domains", "blocklists",
                   "reports")


def _parse_config(root: yaml.Node | None, source: str) -> Config:
    top = nodes.top_level(root, _TOP_LEVEL_KEYS)
    global_ = _parse_global(top.get("global"), "global")
    config_dir = os.path.dirname(os.path.abspath(source))
    modules = _parse_modules(top.get("modules"), "modules", global_, config_dir)
    return Config(
        global_=global_,
        dns=_parse_dns(top.get("dns"), "dns"),
        probe=_parse_probe(top.get("probe"), "probe"),
        domain_checks=_parse_domain_checks(top.get("domain_checks"), "domain_checks", modules, config_dir),
        modules=MappingProxyType(modules),
        targets=_parse_targets(top.get("targets"), "targets", modules),
        domains=_parse_domains(top.get("domains"), "domains"),
        blocklists=parse_blocklists(top.get("blocklists"), "blocklists"),
        reports=_parse_reports(top.get("reports"), "reports", config_dir),
        source=source,
    )


_GLOBAL_PARSERS = {
    "interval": _interval,
    "timeout": _timeout,
    "concurrency": functools.partial(nodes.integer, low=1),
    "per_host_concurrency": functools.partial(nodes.integer, low=1),
    "jitter": functools.partial(nodes.duration, maximum=_YEAR, allow_zero=True),
    "backoff_max": functools.partial(nodes.duration, maximum=_YEAR, allow_zero=True),
    "revocation_checks": nodes.boolean,
}


def _parse_global(node: yaml.Node | None, path: str) -> GlobalSettings:
    fields = nodes.fields(node, path, tuple(_GLOBAL_PARSERS))
    settings = GlobalSettings(**nodes.given(fields, _GLOBAL_PARSERS))
    _check_timeout_fits(fields, settings.timeout, settings.interval)
    return settings


def _parse_nameservers(node: yaml.Node, path: str) -> tuple[Nameserver, ...]:
    nameservers: dict[Nameserver, int] = {}     # -> line, to name the first of two duplicates
    for index, item in enumerate(nodes.items(node, path)):
        item_path = f"{path}[{index}]"
        nameserver = nodes.checked_string(parse_nameserver, item, item_path)
        if nameserver in nameservers:
            raise nodes.Invalid(item, f"{item_path}: duplicate name server (first on line {nameservers[nameserver]})")
        nameservers[nameserver] = item.start_mark.line + 1
    return tuple(nameservers)


_DNS_PARSERS = {
    "nameservers": _parse_nameservers,
    "timeout": _wait,
    "retries": functools.partial(nodes.integer, low=0),
}


def _parse_dns(node: yaml.Node | None, path: str) -> DNSSettings:
    fields = nodes.fields(node, path, tuple(_DNS_PARSERS))
    return DNSSettings(**nodes.given(fields, _DNS_PARSERS))


def _parse_patterns(parse: Callable[[str], Any], node: yaml.Node, path: str) -> tuple[Any, ...]:
    patterns: dict[str, int] = {}      # text -> line, to name the first of two duplicates
    parsed: list[Any] = []
    for index, item in enumerate(nodes.items(node, path)):
        item_path = f"{path}[{index}]"
        pattern = nodes.checked_string(parse, item, item_path)
        text = getattr(pattern, "text", pattern)
        if text in patterns:
            raise nodes.Invalid(item, f"{item_path}: duplicate pattern (first on line {patterns[text]})")
        patterns[text] = item.start_mark.line + 1
        parsed.append(pattern)
    return tuple(parsed)


_PROBE_PARSERS = {
    "allowed_targets": functools.partial(_parse_patterns, parse_target_pattern),
    "allowed_domains": functools.partial(_parse_patterns, parse_domain_pattern),
    "timeout_offset": functools.partial(nodes.duration, maximum=_HOUR, allow_zero=True),
}


def _parse_probe(node: yaml.Node | None, path: str) -> ProbeSettings:
    fields = nodes.fields(node, path, tuple(_PROBE_PARSERS))
    return ProbeSettings(**nodes.given(fields, _PROBE_PARSERS))



def _parse_domain_checks(
    node: yaml.Node | None, path: str, modules: Mapping[str, Module], config_dir: str
) -> DomainCheckSettings:
    parsers = {
        "interval": _interval,
        "mta_sts_ca_file": functools.partial(
            nodes.checked_string, lambda name: check_ca_file(os.path.normpath(os.path.join(config_dir, name)))
        ),
        "https_timeout": _wait,
        "probe_mx": nodes.boolean,
        "mx_module": nodes.string,
    }
    fields = nodes.fields(node, path, tuple(parsers))
    settings = DomainCheckSettings(**nodes.given(fields, parsers))
    module = modules.get(settings.mx_module)
    if module is None or module.protocol.family != "smtp":
        problem = "no module named" if module is None else "not an SMTP module:"
        raise nodes.Invalid(
            fields.get("mx_module"), f"{fields.path_of('mx_module')}: {problem} {settings.mx_module!r}"
        )
    return settings


def _default_starttls(protocol: MailProtocol) -> StartTLS:
    return StartTLS.NONE if protocol.implicit_tls else StartTLS.REQUIRED


def _builtin_module(protocol: MailProtocol, global_: GlobalSettings) -> Module:
    """The module a target gets by naming a protocol, with every setting at its default."""
    return Module(
        name=protocol.value,
        protocol=protocol,
        port=protocol.default_port,
        starttls=_default_starttls(protocol),
        timeout=global_.timeout,
        interval=global_.interval,
    )


def _parse_modules(
    node: yaml.Node | None, path: str, global_: GlobalSettings, config_dir: str
) -> dict[str, Module]:
    modules = {protocol.value: _builtin_module(protocol, global_) for protocol in MailProtocol}
    for name, key_node, value_node in nodes.entries(node, path):
        module_path = f"{path}.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise nodes.Invalid(key_node, f"{module_path}: a module name may only have letters, digits, '_', '.' and '-'")
        modules[name] = _parse_module(name, value_node, module_path, global_, config_dir)
    return modules


_MODULE_KEYS = (
    "protocol", "port", "starttls", "timeout", "interval", "tls", "ehlo", "deep_scan", "open_relay_test", "check_ptr",
)
# Keys that only SMTP modules have, and what to say when another module sets one.
_SMTP_ONLY_MODULE_KEYS = {
    "ehlo": "only SMTP modules send EHLO",
    "open_relay_test": "only SMTP modules can relay mail",
    "check_ptr": "only SMTP modules have their names compared",
}
_PROTOCOLS = tuple(protocol.value for protocol in MailProtocol)


def _parse_module(name: str, node: yaml.Node, path: str, global_: GlobalSettings, config_dir: str) -> Module:
    fields = nodes.fields(node, path, _MODULE_KEYS)
    protocol = MailProtocol(nodes.choice(_PROTOCOLS, fields.require("protocol"), fields.path_of("protocol")))

    starttls = _default_starttls(protocol)
    if (starttls_node := fields.get("starttls")) is not None:
        starttls = StartTLS(nodes.choice(tuple(StartTLS), starttls_node, fields.path_of("starttls")))
        if protocol.implicit_tls and starttls != StartTLS.NONE:
            raise nodes.Invalid(
                starttls_node,
                f"{fields.path_of('starttls')}: {protocol} starts TLS at once, without STARTTLS; "
                "leave starttls out or set it to none",
            )

    if protocol.family != "smtp":
        for key, reason in _SMTP_ONLY_MODULE_KEYS.items():
            if (smtp_node := fields.get(key)) is not None:
                raise nodes.Invalid(smtp_node, f"{fields.path_of(key)}: {reason}, this one is {protocol}")
    ehlo = Module.ehlo  # the dataclass default
    if (ehlo_node := fields.get("ehlo")) is not None:
        ehlo = nodes.checked_string(check_ehlo_name, ehlo_node, fields.path_of("ehlo"))
    check_ptr_node = fields.get("check_ptr")

    port_node, timeout_node, interval_node = fields.get("port"), fields.get("timeout"), fields.get("interval")
    module = Module(
        name=name,
        protocol=protocol,
        port=protocol.default_port if port_node is None else nodes.port(port_node, fields.path_of("port")),
        starttls=starttls,
        timeout=global_.timeout if timeout_node is None else _timeout(timeout_node, fields.path_of("timeout")),
        interval=(
            global_.interval if interval_node is None else _interval(interval_node, fields.path_of("interval"))
        ),
        tls=_parse_tls(fields.get("tls"), fields.path_of("tls"), config_dir),
        ehlo=ehlo,
        deep_scan=_parse_deep_scan(fields.values.get("deep_scan"), fields.path_of("deep_scan")),
        open_relay_test=_parse_open_relay_test(
            fields.values.get("open_relay_test"), fields.path_of("open_relay_test")
        ),
        check_ptr=False if check_ptr_node is None else nodes.boolean(check_ptr_node, fields.path_of("check_ptr")),
    )
    _check_timeout_fits(fields, module.timeout, module.interval)
    return module


def _parse_tls(node: yaml.Node | None, path: str, config_dir: str) -> TLSSettings:
    parsers = {
        # A relative ca_file is relative to the config file, not to the working directory.
        "ca_file": functools.partial(
            nodes.checked_string, lambda name: check_ca_file(os.path.normpath(os.path.join(config_dir, name)))
        ),
        "server_name": functools.partial(nodes.checked_string, parse_server_name),
        "min_version": functools.partial(nodes.choice, TLS_VERSIONS),
        "max_version": functools.partial(nodes.choice, TLS_VERSIONS),
    }
    fields = nodes.fields(node, path, tuple(parsers))
    settings = TLSSettings(**nodes.given(fields, parsers))
    if (
        settings.min_version
        and settings.max_version
        and TLS_VERSIONS.index(settings.min_version) > TLS_VERSIONS.index(settings.max_version)
    ):
        raise nodes.Invalid(
            fields.get("max_version"),
            f"{path}: min_version ({settings.min_version}) is above max_version ({settings.max_version})",
        )
    return settings


def _parse_deep_scan(node: yaml.Node | None, path: str) -> DeepScanSettings | None:
    """Absent: no deep scan. Present (even empty or null): scans with these settings."""
    if node is None:
        return None
    parsers = {
        "interval": _interval,
        "min_delay": functools.partial(nodes.duration, maximum=_HOUR, allow_zero=True),
        "budget": _timeout,
    }
    fields = nodes.fields(None if nodes.is_null(node) else node, path, tuple(parsers))
    settings = DeepScanSettings(**nodes.given(fields, parsers))
    if settings.budget > settings.interval:
        raise nodes.Invalid(
            fields.get("budget") or fields.get("interval") or node,
            f"{path}: budget ({format_duration(settings.budget)}) must not exceed "
            f"interval ({format_duration(settings.interval)})",
        )
    return settings


# A mailbox as the SMTP commands carry it (RFC 5321 section 4.1.2), in the dot-atom form only:
# quoted local parts and address literals have no use in a canary address.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _parse_mailbox(text: str) -> str:
    """local@domain, the domain a host name; returned with the domain in lower case."""
    local, at, domain = text.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or len(local) > 64:
        raise ValueError(f"{text!r} is not a mail address such as canary@example.org (no <>, quotes or spaces)")
    try:
        return f"{local}@{normalize_dns_name(domain)}"
    except ValueError as exc:
        raise ValueError(f"{text!r}: the domain {exc}") from None


def _parse_reverse_path(text: str) -> str:
    """A MAIL FROM address; "<>" (or "") is the null reverse-path, kept as ""."""
    return "" if text in ("", "<>") else _parse_mailbox(text)


def _parse_open_relay_test(node: yaml.Node | None, path: str) -> OpenRelayTest | None:
    """Absent: no test. Present, even null: `recipient` is required (it has no sensible default)."""
    if node is None:
        return None
    if nodes.is_null(node):
        raise nodes.Invalid(node, f"{path}: 'recipient' is required (an outside address you control)")
    parsers = {
        "recipient": functools.partial(nodes.checked_string, _parse_mailbox),
        "sender": functools.partial(nodes.checked_string, _parse_reverse_path),
    }
    fields = nodes.fields(node, path, tuple(parsers))
    fields.require("recipient")
    return OpenRelayTest(**nodes.given(fields, parsers))


_TARGET_KEYS = ("host", "port", "module", "labels")


def _parse_targets(node: yaml.Node | None, path: str, modules: Mapping[str, Module]) -> tuple[Target, ...]:
    targets: list[Target] = []
    first_seen: dict[str, tuple[str, int]] = {}  # Target.key -> (path, line)
    for index, item in enumerate(nodes.items(node, path)):
        item_path = f"{path}[{index}]"
        fields = nodes.fields(item, item_path, _TARGET_KEYS)
        host = nodes.checked_string(parse_host, fields.require("host"), fields.path_of("host"))
        module_node = fields.require("module")
        module_name = nodes.string(module_node, fields.path_of("module"))
        if module_name not in modules:
            raise nodes.Invalid(
                module_node,
                f"{fields.path_of('module')}: no module named {module_name!r}"
                f"{nodes.did_you_mean(module_name, list(modules))}; defined: {', '.join(modules)}",
            )
        port_node = fields.get("port")
        target = Target(
            host=host,
            port=modules[module_name].port if port_node is None else nodes.port(port_node, fields.path_of("port")),
            module=module_name,
            labels=nodes.labels(fields.get("labels"), fields.path_of("labels")),
        )
        if target.key in first_seen:
            first_path, first_line = first_seen[target.key]
            raise nodes.Invalid(
                item,
                f"{item_path}: duplicate of {first_path} on line {first_line} "
                f"(same host, port and module: {target.key})",
            )
        first_seen[target.key] = (item_path, item.start_mark.line + 1)
        targets.append(target)
    return tuple(targets)


def _parse_dkim_selectors(node: yaml.Node | None, path: str, domain: str) -> tuple[str, ...]:
    selectors: list[str] = []
    first_lines: dict[str, int] = {}  # lower-cased selector -> line (DNS names ignore case)
    for index, item in enumerate(nodes.items(node, path)):
        item_path = f"{path}[{index}]"
        selector = nodes.checked_string(check_dkim_selector, item, item_path)
        if len(f"{selector}._domainkey.{domain}") > 253:
            raise nodes.Invalid(item, f"{item_path}: {selector}._domainkey.{domain} is longer than 253 characters")
        if selector.lower() in first_lines:
            raise nodes.Invalid(item, f"{item_path}: duplicate selector (first on line {first_lines[selector.lower()]})")
        first_lines[selector.lower()] = item.start_mark.line + 1
        selectors.append(selector)
    return tuple(selectors)


_DOMAIN_KEYS = ("name", "dkim_selectors", "labels", "blocklist_spf")


def _parse_domains(node: yaml.Node | None, path: str) -> tuple[Domain, ...]:
    domains: list[Domain] = []
    first_seen: dict[str, tuple[str, int]] = {}  # name -> (path, line)
    for index, item in enumerate(nodes.items(node, path)):
        item_path = f"{path}[{index}]"
        fields = nodes.fields(item, item_path, _DOMAIN_KEYS)
        name = nodes.checked_string(normalize_dns_name, fields.require("name"), fields.path_of("name"))
        if name in first_seen:
            first_path, first_line = first_seen[name]
            raise nodes.Invalid(item, f"{item_path}: duplicate of {first_path} on line {first_line} (same name: {name})")
        first_seen[name] = (item_path, item.start_mark.line + 1)
        domains.append(
            Domain(
                name=name,
                dkim_selectors=_parse_dkim_selectors(
                    fields.get("dkim_selectors"), fields.path_of("dkim_selectors"), name
                ),
                labels=nodes.labels(fields.get("labels"), fields.path_of("labels")),
                **nodes.given(fields, {"blocklist_spf": nodes.boolean}),
            )
        )
    return tuple(domains)


# --- reports: (docs/reports.md) ---------------------------------------------------------


def _byte_size(node: yaml.Node, path: str) -> int:
    if node.tag == "tag:yaml.org,2002:int":
        size = nodes.integer(node, path, low=1)
    else:
        size = nodes.checked_string(parse_byte_size, node, path)
    if size < 1:
        raise nodes.Invalid(node, f"{path}: must be at least 1 byte")
    return size


def _ratio(node: yaml.Node, path: str) -> float:
    if node.tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") or not 1 <= float(node.value) <= 100000:
        raise nodes.Invalid(node, f"{path}: must be a number from 1 to 100000, got {nodes.describe(node)}")
    return float(node.value)


def _file_in(config_dir: str) -> Callable[[yaml.Node, str], str]:
    """A file name relative to the config file's directory, as every other one in it."""
    def parse(node: yaml.Node, path: str) -> str:
        name = nodes.string(node, path)
        if not name:
            raise nodes.Invalid(node, f"{path}: must not be empty")
        return os.path.normpath(os.path.join(config_dir, name))
    return parse


_REPORT_LIMIT_PARSERS = {
    "max_message_bytes": _byte_size,
    "max_attachments": functools.partial(nodes.integer, low=1, high=1000),
    "max_compressed_bytes": _byte_size,
    "max_decompressed_bytes": _byte_size,
    "max_ratio": _ratio,
}


def _parse_reports(node: yaml.Node | None, path: str, config_dir: str) -> ReportSettings | None:
    """Absent: no report ingestion. Present: at least one source, the IMAP mailbox or the receiver."""
    if node is None:
        return None
    parsers = {
        "state_file": _file_in(config_dir),
        "retention": functools.partial(nodes.duration, maximum=_YEAR),
        "reporter_labels": functools.partial(nodes.integer, low=0, high=1000),
        "correlation_window": functools.partial(nodes.duration, maximum=_YEAR),
        "limits": lambda item, item_path: ReportLimits(**nodes.given(
            nodes.fields(item, item_path, tuple(_REPORT_LIMIT_PARSERS)), _REPORT_LIMIT_PARSERS)),
        "imap": functools.partial(_parse_imap_source, config_dir=config_dir),
        "http": functools.partial(_parse_receiver, config_dir=config_dir),
    }
    fields = nodes.fields(None if nodes.is_null(node) else node, path, tuple(parsers))
    settings = ReportSettings(**nodes.given(fields, parsers))
    if settings.imap is None and settings.http is None:
        raise nodes.Invalid(node, f"{path}: needs a source: imap (a mailbox) or http (the TLS-RPT receiver), or both")
    return settings


_IMAP_KEYS = ("host", "port", "security", "ca_file", "server_name", "username", "password_file", "password_env",
              "folder", "processed", "processed_flag", "processed_folder", "interval", "timeout", "batch")


def _imap_folder(node: yaml.Node, path: str) -> str:
    folder = nodes.string(node, path)
    if not folder or not folder.isascii() or not folder.isprintable() or '"' in folder or "\\" in folder:
        raise nodes.Invalid(node, f"{path}: a folder name must be printable ASCII, without quotes or backslashes")
    return folder


def _matching(pattern: str, expected: str) -> Callable[[yaml.Node, str], str]:
    """A parser of strings that match `pattern` in full; `expected` says what they must be."""
    def parse(node: yaml.Node, path: str) -> str:
        text = nodes.string(node, path)
        if not re.fullmatch(pattern, text):
            raise nodes.Invalid(node, f"{path}: must be {expected}, got {nodes.describe(node)}")
        return text
    return parse


# \Seen and the other system flags, or a keyword (RFC 3501 atom: no specials, no spaces).
_imap_flag = _matching(r"\\(Seen|Flagged|Answered)|\$?[A-Za-z0-9_.-]{1,64}",
                       "\\Seen, \\Flagged, \\Answered or a keyword such as $MailsecProcessed (letters, digits, $ . _ -)")
_password_env = _matching(r"[A-Za-z_][A-Za-z0-9_]*", "the name of an environment variable")
_receiver_path = _matching(r"/[A-Za-z0-9._~/-]*", "a URL path such as /tlsrpt")


def _parse_imap_source(node: yaml.Node, path: str, config_dir: str) -> IMAPSource:
    parsers = {
        "host": functools.partial(nodes.checked_string, parse_host),
        "port": nodes.port,
        "security": lambda item, item_path: IMAPSecurity(nodes.choice(tuple(IMAPSecurity), item, item_path)),
        "ca_file": functools.partial(
            nodes.checked_string, lambda name: check_ca_file(os.path.normpath(os.path.join(config_dir, name)))),
        "server_name": functools.partial(nodes.checked_string, parse_server_name),
        "username": nodes.string,
        "password_file": functools.partial(
            nodes.checked_string, lambda name: check_readable_file(os.path.normpath(os.path.join(config_dir, name)))),
        "password_env": _password_env,
        "folder": _imap_folder,
        "processed": lambda item, item_path: ProcessedAction(nodes.choice(tuple(ProcessedAction), item, item_path)),
        "processed_flag": _imap_flag,
        "processed_folder": _imap_folder,
        "interval": _interval,
        "timeout": _wait,
        "batch": functools.partial(nodes.integer, low=1, high=10000),
    }
    fields = nodes.fields(node, path, _IMAP_KEYS)
    fields.require("host"), fields.require("username")
    if (fields.get("password_file") is None) == (fields.get("password_env") is None):
        raise nodes.Invalid(node, f"{path}: set exactly one of password_file and password_env "
                                  "(the password itself never goes in this file)")
    values = nodes.given(fields, parsers)
    security = values.get("security", IMAPSecurity.TLS)
    values.setdefault("port", 993 if security is IMAPSecurity.TLS else 143)
    values.setdefault("password_file", None)
    values.setdefault("password_env", None)
    source = IMAPSource(**values)
    if source.processed is ProcessedAction.MOVE and source.processed_folder is None:
        raise nodes.Invalid(fields.get("processed"), f"{fields.path_of('processed')}: move needs processed_folder")
    if source.processed_folder is not None and source.processed is not ProcessedAction.MOVE:
        raise nodes.Invalid(fields.get("processed_folder"),
                            f"{fields.path_of('processed_folder')}: only used with processed: move")
    if source.processed_folder == source.folder:
        raise nodes.Invalid(fields.get("processed_folder"),
                            f"{fields.path_of('processed_folder')}: must differ from folder")
    if source.timeout > source.interval:
        raise nodes.Invalid(fields.get("timeout") or node, f"{path}: timeout must not exceed interval")
    return source


def _parse_receiver(node: yaml.Node, path: str, config_dir: str) -> ReportReceiver:
    def web_config_file(item: yaml.Node, item_path: str) -> str:
        name = os.path.normpath(os.path.join(config_dir, nodes.string(item, item_path)))
        try:
            load_web_config(name)
        except WebConfigError as exc:
            raise nodes.Invalid(item, f"{item_path}: {exc}") from None
        return name

    parsers = {
        "listen_address": functools.partial(nodes.checked_string, _listen_address),
        "path": _receiver_path,
        "web_config_file": web_config_file,
    }
    fields = nodes.fields(node, path, tuple(parsers))
    fields.require("listen_address")
    return ReportReceiver(**nodes.given(fields, parsers))


def _listen_address(text: str) -> tuple[str | None, int]:
    """As --web.listen-address: ":10055" (every interface), "127.0.0.1:10055", "[::1]:10055"."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or len(port) > 5 or int(port) > 65535:
        raise ValueError(f"must be [HOST]:PORT such as :10055 or 127.0.0.1:10055, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return (parse_host(host) if host else None), int(port)
