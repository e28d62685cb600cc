"""Configuration: typed, immutable settings and the strict YAML loader.

Everything the rest of the exporter reads from the config file is one of the frozen
dataclasses below. `load_config` refuses anything it does not understand with a
`ConfigError` that names the file, the line and the reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


class Protocol(enum.StrEnum):
    SMTP = "smtp"
    SUBMISSION = "submission"
    SMTPS = "smtps"
    IMAP = "imap"
    IMAPS = "imaps"
    POP3 = "pop3"
    POP3S = "pop3s"

    @property
    def default_port(self) -> int:
        return _DEFAULT_PORTS[self]

    @property
    def implicit_tls(self) -> bool:
        """True for the protocols that start TLS before the first byte (465, 993, 995)."""
        return self in (Protocol.SMTPS, Protocol.IMAPS, Protocol.POP3S)

    @property
    def family(self) -> str:
        """The dialogue spoken over the connection: "smtp", "imap" or "pop3"."""
        return _FAMILIES[self]


_DEFAULT_PORTS = {
    Protocol.SMTP: 25,
    Protocol.SUBMISSION: 587,
    Protocol.SMTPS: 465,
    Protocol.IMAP: 143,
    Protocol.IMAPS: 993,
    Protocol.POP3: 110,
    Protocol.POP3S: 995,
}
_FAMILIES = {
    Protocol.SMTP: "smtp",
    Protocol.SUBMISSION: "smtp",
    Protocol.SMTPS: "smtp",
    Protocol.IMAP: "imap",
    Protocol.IMAPS: "imap",
    Protocol.POP3: "pop3",
    Protocol.POP3S: "pop3",
}


class StartTLS(enum.StrEnum):
    """What the probe does about STARTTLS on a plaintext protocol.

    required: a missing or refused STARTTLS fails the probe.
    optional: STARTTLS is used when offered; its absence is reported, not a failure.
    none:     no TLS is attempted (plaintext facts only).
    Implicit-TLS protocols (smtps, imaps, pop3s) always use `none`: TLS starts at once.
    """

    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"


TLS_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@dataclass(frozen=True)
class TLSSettings:
    ca_file: str | None = None        # PEM bundle; None means the system trust store
    server_name: str | None = None    # SNI and the name the certificate must match; default: target host
    min_version: str | None = None    # one of TLS_VERSIONS, None for the library default
    max_version: str | None = None


@dataclass(frozen=True)
class Module:
    name: str
    protocol: Protocol
    port: int                 # the protocol's default unless set
    starttls: StartTLS        # default: required for smtp/submission/imap/pop3, none otherwise
    timeout: float            # seconds; default: global timeout
    interval: float           # seconds; default: global interval
    tls: TLSSettings = TLSSettings()
    ehlo: str = "mailsec-exporter.localhost"


@dataclass(frozen=True)
class Target:
    host: str                 # DNS name or IP literal
    port: int                 # the module's port unless set
    module: str               # name of a Module
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def key(self) -> str:
        """The identity of a target: two targets with the same key are duplicates."""
        return f"{self.module}/{self.address}"

    @property
    def address(self) -> str:
        """host:port, with brackets around an IPv6 literal."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Domain:
    name: str
    dkim_selectors: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Nameserver:
    address: str              # IPv4 or IPv6 literal
    port: int = 53


@dataclass(frozen=True)
class DNSSettings:
    nameservers: tuple[Nameserver, ...] = ()   # empty: the system's (/etc/resolv.conf)
    timeout: float = 5.0                       # seconds per lookup, all retries included
    retries: int = 2


@dataclass(frozen=True)
class GlobalSettings:
    interval: float = 300.0           # seconds between two runs of a target
    timeout: float = 10.0             # seconds a probe may take
    concurrency: int = 32             # probes running at once, all hosts together
    per_host_concurrency: int = 1     # connections at once to one host
    jitter: float = 30.0              # seconds: each run starts up to this much later, at random


@dataclass(frozen=True)
class Config:
    global_: GlobalSettings = GlobalSettings()
    dns: DNSSettings = DNSSettings()
    modules: Mapping[str, Module] = field(default_factory=lambda: MappingProxyType({}))
    targets: tuple[Target, ...] = ()
    domains: tuple[Domain, ...] = ()
    source: str = "<defaults>"        # the file this was loaded from


class ConfigError(Exception):
    """A config file was refused. str() gives "FILE:LINE: reason"."""

    def __init__(self, file: str, line: int | None, reason: str):
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


def load_config(path: str) -> Config:
    """Read and strictly validate a YAML config file; raise ConfigError on any problem."""
    raise NotImplementedError  # written by the config loader work item
