"""Configuration: typed, immutable settings and the strict YAML loaders.

- model:     the frozen dataclasses and enums the rest of the exporter reads
- values:    parsers of single values (durations, host names, ports, patterns...)
- yamlnodes: the strict YAML walker that gives every error its file and line
- loader:    the sections of the config file, and load_config
- web:       the --web.config.file model and its loader

The names below were those of the former module exporter/config.py; importing them from
here keeps working. `load_config` is resolved on first use (PEP 562): the loader imports
PyYAML and the node walker, which the one-shot commands need only with --config.file.
"""

from typing import TYPE_CHECKING

from .model import (
    RESERVED_LABELS,
    TLS_VERSIONS,
    Blocklist,
    BlocklistKind,
    BlocklistSettings,
    Config,
    ConfigError,
    DeepScanSettings,
    DNSSettings,
    Domain,
    DomainCheckSettings,
    GlobalSettings,
    IPNetwork,
    ListingMeaning,
    Module,
    Nameserver,
    ProbeSettings,
    MailProtocol,
    ReturnCodes,
    StartTLS,
    Target,
    TargetPattern,
    TLSSettings,
)
from .values import (
    check_ca_file,
    check_dkim_selector,
    check_ehlo_name,
    format_duration,
    normalize_dns_name,
    parse_domain_pattern,
    parse_duration,
    parse_host,
    parse_host_port,
    parse_nameserver,
    parse_port,
    parse_server_name,
    parse_target_pattern,
    split_host_port,
)

if TYPE_CHECKING:
    from .loader import load_config


def __getattr__(name: str):
    if name == "load_config":
        from .loader import load_config
        return load_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RESERVED_LABELS",
    "TLS_VERSIONS",
    "Blocklist",
    "BlocklistKind",
    "BlocklistSettings",
    "Config",
    "ConfigError",
    "DeepScanSettings",
    "DNSSettings",
    "Domain",
    "DomainCheckSettings",
    "GlobalSettings",
    "IPNetwork",
    "ListingMeaning",
    "Module",
    "Nameserver",
    "ProbeSettings",
    "MailProtocol",
    "ReturnCodes",
    "StartTLS",
    "Target",
    "TargetPattern",
    "TLSSettings",
    "check_ca_file",
    "check_dkim_selector",
    "check_ehlo_name",
    "format_duration",
    "load_config",
    "normalize_dns_name",
    "parse_domain_pattern",
    "parse_duration",
    "parse_host",
    "parse_host_port",
    "parse_nameserver",
    "parse_port",
    "parse_server_name",
    "parse_target_pattern",
    "split_host_port",
]
