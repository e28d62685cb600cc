"""Configuration: typed, immutable settings and the strict YAML loader.

Everything the rest of the exporter reads from the config file is one of the frozen
dataclasses below. `load_config` refuses anything it does not understand with a
`ConfigError` that names the file, the line and the reason.
"""

from __future__ import annotations

import difflib
import enum
import fnmatch
import functools
import ipaddress
import math
import os
import re
import ssl
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import yaml


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
class DeepScanSettings:
    """The deep TLS scan of a module's targets: every version and cipher suite, graded.

    It costs about one connection per accepted suite, so it runs rarely and one connection
    at a time; its result stays exported between runs.
    """

    interval: float = 6 * 3600.0      # seconds between two scans of a target
    min_delay: float = 0.0            # seconds between two connections of one scan
    budget: float = 300.0             # seconds one whole scan may take


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
    deep_scan: DeepScanSettings | None = None   # None: no deep TLS scan for this module


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
    backoff_max: float = 3600.0       # seconds a refusing host's runs may be pushed back; 0: no backoff


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TargetPattern:
    """One entry of probe.allowed_targets: a host-name glob or an IP network, maybe with a port.

    Exactly one of `host_glob` and `network` is set.
    """

    text: str                         # as written, for messages
    host_glob: str | None = None      # lower-case fnmatch pattern, matched against DNS names only
    network: IPNetwork | None = None  # matched against IP addresses (literals or resolved names)
    port: int | None = None           # None: any port

    def matches_port(self, port: int) -> bool:
        return self.port is None or self.port == port

    def matches_name(self, name: str, port: int) -> bool:
        """`name` is a normalized DNS name (lower case, no final dot)."""
        return self.host_glob is not None and self.matches_port(port) and fnmatch.fnmatchcase(name, self.host_glob)

    def matches_address(self, address: str, port: int) -> bool:
        return self.network is not None and self.matches_port(port) and ipaddress.ip_address(address) in self.network


@dataclass(frozen=True)
class ProbeSettings:
    """The /probe HTTP endpoint, which probes a target named in the request."""

    allowed_targets: tuple[TargetPattern, ...] = ()   # empty: /probe refuses every target
    allowed_domains: tuple[str, ...] = ()   # lower-case globs; empty: /probe refuses every domain
    timeout_offset: float = 0.5       # seconds kept from Prometheus's scrape timeout for the answer


@dataclass(frozen=True)
class DomainCheckSettings:
    """How the `domains:` are checked."""

    interval: float | None = None         # seconds between two runs of a domain; None: global interval
    mta_sts_ca_file: str | None = None    # CA bundle for the MTA-STS policy hosts; None: system store
    https_timeout: float = 10.0           # seconds for one MTA-STS policy fetch
    probe_mx: bool = True                 # probe every MX host as an SMTP endpoint (and check DANE)
    mx_module: str = "smtp"               # the module those MX endpoints are probed with


@dataclass(frozen=True)
class Config:
    global_: GlobalSettings = GlobalSettings()
    dns: DNSSettings = DNSSettings()
    probe: ProbeSettings = ProbeSettings()
    domain_checks: DomainCheckSettings = DomainCheckSettings()
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



# Labels the exporter puts on its own metrics (docs/metrics.md), and the `instance` and `job`
# labels Prometheus adds when scraping. A user label with one of these names would clash.
RESERVED_LABELS = frozenset({
    "target", "module", "host", "port", "reason", "domain", "instance", "job",
    "phase", "version", "cipher", "key_type",
    "subject", "issuer", "serial", "fingerprint_sha256", "sans", "signature_hash",
    "selector", "mx", "address", "zone", "check", "qualifier", "class", "group",
})


def load_config(path: str) -> Config:
    """Read and strictly validate a YAML config file; raise ConfigError on any problem."""
    try:
        with open(path, "rb") as config_file:
            data = config_file.read()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, line, "the file is not valid UTF-8") from None
    root = _compose_yaml(text, path)
    try:
        return _parse_config(root, path)
    except _Invalid as exc:
        raise ConfigError(path, exc.node.start_mark.line + 1, exc.reason) from None


# ---------------------------------------------------------------------------------------
# Parsers of single values. They take plain strings and raise ValueError with a reason
# that reads well after "<key path>: ".
# ---------------------------------------------------------------------------------------

# Prometheus duration syntax: each unit at most once, largest first.
_DURATION_RE = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_DURATION_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_DURATION_HELP = "a duration such as 30s, 5m, 1h30m, 500ms or 1d, or a number of seconds"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration string: "30s", "5m", "1h30m", "500ms", "1d", "0"."""
    if text == "0":
        return 0.0
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"must be {_DURATION_HELP}; got {text!r}")
    milliseconds = sum(int(count) * unit for count, unit in zip(match.groups(), _DURATION_UNITS_MS) if count)
    return milliseconds / 1000


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration for messages: 300 -> "5m", 5400 -> "1h30m", 0.5 -> "500ms"."""
    milliseconds = round(seconds * 1000)
    if milliseconds <= 0 or not math.isclose(milliseconds, seconds * 1000):
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# One label of a host name (RFC 1123): letters, digits, hyphens; no hyphen at either end.
_LDH_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _dotted_name_problem(name: str) -> str | None:
    """Why `name` is not a dot-separated sequence of RFC 1123 labels, or None when it is."""
    if not name:
        return "must not be empty"
    if not name.isascii():
        return f"{name!r} has non-ASCII characters: write an internationalized name in its xn-- form"
    if len(name) > 253:
        return "is longer than 253 characters"
    for label in name.split("."):
        if not _LDH_LABEL_RE.fullmatch(label):
            return (
                f"{name!r} has an invalid part {label!r}: each dot-separated part must be 1 to 63 "
                "letters, digits or hyphens, not starting or ending with a hyphen"
            )
    return None


def _host_name_problem(name: str) -> str | None:
    """Why `name` is not a DNS host name, or None when it is."""
    problem = _dotted_name_problem(name)
    if problem is None and name.rsplit(".", 1)[-1].isdigit():
        # A top-level domain is never all digits: this is a mistyped IPv4 address.
        problem = f"{name!r} is neither an IP address nor a host name"
    return problem


def normalize_dns_name(text: str) -> str:
    """A DNS host name in the form the exporter uses: lower case, without the final dot."""
    name = text[:-1] if text.endswith(".") else text
    problem = _host_name_problem(name)
    if problem:
        raise ValueError(problem)
    return name.lower()


def parse_host(text: str) -> str:
    """A target host: an IP address in canonical form, or a normalized DNS name."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if text.startswith("["):
        raise ValueError(f"write an IPv6 address without brackets; got {text!r}")
    return normalize_dns_name(text)


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """"mx.example.org", "mx.example.org:2525", "192.0.2.1:25", "[2001:db8::1]:25" or
    "2001:db8::1" -> (normalized host, port); ValueError names what is wrong."""
    try:
        host_text, port_text = split_host_port(text)
        return parse_host(host_text), default_port if port_text is None else parse_port(port_text, text)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def parse_server_name(text: str) -> str:
    """A TLS server name (SNI): a DNS name, never an IP address (RFC 6066 section 3)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return normalize_dns_name(text)
    raise ValueError(
        "must be a DNS name: TLS cannot send an IP address as server name; "
        "leave it out to check the certificate against the target's address"
    )


def check_ehlo_name(text: str) -> str:
    """An EHLO argument (RFC 5321 section 4.1.3): a host name, "[IPv4]" or "[IPv6:address]"."""
    if text.startswith("[") and text.endswith("]"):
        literal = text[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an address literal such as [192.0.2.1] or [IPv6:2001:db8::1]"
            ) from None
        return text
    problem = _host_name_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def check_dkim_selector(text: str) -> str:
    """A DKIM selector (RFC 6376 section 3.1): one or more dot-separated host name labels."""
    problem = _dotted_name_problem(text)
    if problem:
        raise ValueError(problem)
    return text


_PORT_TEXT_RE = re.compile(r"[0-9]{1,5}")


def split_host_port(text: str) -> tuple[str, str | None]:
    """"host", "host:port", "IPv4:port", "[IPv6]" or "[IPv6]:port" -> (host, port text or
    None). An IPv6 address, which has several colons, takes a port only in brackets."""
    if not text.startswith("["):
        if text.count(":") == 1:
            host, _, port = text.partition(":")
            return host, port
        return text, None
    host, bracket, rest = text[1:].partition("]")
    if not bracket:
        raise ValueError(f"{text!r} has '[' without ']'")
    if rest and not rest.startswith(":"):
        raise ValueError(f"expected ':port' after ']' in {text!r}")
    if ":" not in host:
        raise ValueError(f"brackets are only for IPv6 addresses; got {text!r}")
    return host, (rest[1:] if rest else None)


def parse_port(port_text: str, text: str) -> int:
    """The port of `text` ("host:port"), from 1 to 65535."""
    if not _PORT_TEXT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be an integer from 1 to 65535; got {port_text!r} in {text!r}")
    return int(port_text)


def parse_nameserver(text: str) -> Nameserver:
    """A name server: "address", "IPv4:port" or "[IPv6]:port"; the port defaults to 53."""
    address_text, port_text = split_host_port(text)
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise ValueError(
            f"{address_text!r} is not an IP address (name servers are given by address, not by name)"
        ) from None
    if port_text is None:
        return Nameserver(str(address))
    return Nameserver(str(address), parse_port(port_text, text))


def _parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text)    # strict: 192.0.2.1/24 is a typo, not 192.0.2.0/24
    except ValueError as exc:
        if "has host bits set" in str(exc):
            raise ValueError(f"{text!r} has host bits set: write the network address, e.g. "
                             f"{ipaddress.ip_network(text, strict=False)}") from None
        raise ValueError(f"{text!r} is not an IP address or network") from None


def parse_target_pattern(text: str) -> TargetPattern:
    """An allowed /probe target: "*.example.org", "mx?.example.org:25", "192.0.2.0/24",
    "192.0.2.25:465", "2001:db8::/32", "[2001:db8::/32]:993". A port restricts the
    pattern to that port; without one, every port matches."""
    host_text, port_text = split_host_port(text)
    port = None if port_text is None else parse_port(port_text, text)

    if ":" in host_text or "/" in host_text or _looks_like_ipv4(host_text):
        return TargetPattern(text=text, network=_parse_network(host_text), port=port)
    # A glob: check it as a host name with each wildcard standing for one letter.
    problem = _dotted_name_problem(host_text.replace("*", "a").replace("?", "a"))
    if problem:
        raise ValueError(
            f"{host_text!r} is neither an IP address or network nor a host-name pattern "
            "(letters, digits, hyphens and dots, with * and ? as wildcards)"
        )
    return TargetPattern(text=text, host_glob=host_text.lower(), port=port)


def parse_domain_pattern(text: str) -> str:
    """A glob on domain names for probe.allowed_domains: "example.org", "*.example.org", "*"."""
    pattern = text.strip().lower().rstrip(".")
    if not pattern or not re.fullmatch(r"[a-z0-9*?-]+(\.[a-z0-9*?-]+)*", pattern):
        raise ValueError(f"{text!r} is not a domain name pattern (letters, digits, '-', '.', '*' and '?')")
    return pattern


def _looks_like_ipv4(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+", text))


def check_ca_file(path: str) -> str:
    """Check that `path` is a readable PEM file with at least one CA certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:  # before OSError, its base class
        raise ValueError(f"{path} holds no PEM certificate ({exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return path


# ---------------------------------------------------------------------------------------
# Walking the YAML node tree. Nodes (not Python values) are kept so that every error can
# point at the line of the offending value.
# ---------------------------------------------------------------------------------------

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_KINDS = {_BOOL: "a boolean", "tag:yaml.org,2002:timestamp": "a date"}

# Its construct_yaml_int/float turn scalars into numbers as YAML defines them (0x1F, 1_000, .inf).
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class _Invalid(Exception):
    """A problem with one node; load_config turns it into a ConfigError with the node's line."""

    def __init__(self, node: yaml.Node, reason: str):
        super().__init__(reason)
        self.node = node
        self.reason = reason


def _compose_yaml(text: str, path: str) -> yaml.Node | None:
    """The YAML node tree of `text`, or None for a document with no content."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(path, mark.line + 1 if mark else None, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(path, line, f"invalid YAML: character U+{exc.character:04X} is not allowed") from None
    except RecursionError:
        raise ConfigError(path, None, "invalid YAML: nested too deeply") from None


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _describe(node: yaml.Node) -> str:
    """A YAML value as quoted in error messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping" if node.tag == _MAP else f"a mapping tagged {node.tag}"
    if isinstance(node, yaml.SequenceNode):
        return "a list" if node.tag == _SEQ else f"a list tagged {node.tag}"
    if node.tag == _STR:
        return repr(node.value if len(node.value) <= 60 else node.value[:60] + "...")
    if node.tag in (_INT, _FLOAT):
        return node.value
    if node.tag == _NULL:
        return "null"
    if node.tag in _SCALAR_KINDS:
        return f"{node.value} ({_SCALAR_KINDS[node.tag]})"
    return f"a value tagged {node.tag}"


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _entries(node: yaml.Node | None, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) of a mapping whose keys are strings, each at most once."""
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
        raise _Invalid(node, f"{path}: must be a mapping, got {_describe(node)}")
    where = path or "the top level"
    entries: list[tuple[str, yaml.Node, yaml.Node]] = []
    first_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            raise _Invalid(key_node, f"{where}: merge keys (<<) are not supported")
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
            raise _Invalid(key_node, f"{where}: keys must be strings, got {_describe(key_node)}")
        key = key_node.value
        key_path = f"{path}.{key}" if path else key
        if key in first_lines:
            raise _Invalid(key_node, f"{key_path}: duplicate key (first on line {first_lines[key]})")
        first_lines[key] = key_node.start_mark.line + 1
        entries.append((key, key_node, value_node))
    return entries


@dataclass(frozen=True)
class _Fields:
    """The keys of one YAML mapping, all known to be allowed there."""

    node: yaml.Node | None      # None when the mapping was left out or null
    path: str
    values: Mapping[str, yaml.Node]

    def path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> yaml.Node | None:
        """The value node of `key`; None when the key is absent or null (null means "not set")."""
        node = self.values.get(key)
        return None if node is None or _is_null(node) else node

    def require(self, key: str) -> yaml.Node:
        node = self.get(key)
        if node is None:
            where = self.values.get(key) or self.node
            assert where is not None, "a mapping with required keys is never left out, only null"
            raise _Invalid(where, f"{self.path}: {key!r} is required")
        return node


def _fields(node: yaml.Node | None, path: str, allowed: tuple[str, ...]) -> _Fields:
    values = {}
    for key, key_node, value_node in _entries(node, path):
        if key not in allowed:
            key_path = f"{path}.{key}" if path else key
            raise _Invalid(
                key_node,
                f"{key_path}: unknown key{_did_you_mean(key, list(allowed))}; allowed here: {', '.join(allowed)}",
            )
        values[key] = value_node
    return _Fields(node, path, values)


def _items(node: yaml.Node | None, path: str) -> list[yaml.Node]:
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode) or node.tag != _SEQ:
        raise _Invalid(node, f"{path}: must be a list, got {_describe(node)}")
    return list(node.value)


def _string(node: yaml.Node, path: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        hint = "; put it in quotes to make it text" if isinstance(node, yaml.ScalarNode) else ""
        raise _Invalid(node, f"{path}: must be a string, got {_describe(node)}{hint}")
    return node.value


def _checked_string(check: Callable[[str], Any], node: yaml.Node, path: str) -> Any:
    """A string run through one of the parsers above, whose ValueError becomes an _Invalid."""
    try:
        return check(_string(node, path))
    except ValueError as exc:
        raise _Invalid(node, f"{path}: {exc}") from None


def _integer(node: yaml.Node, path: str, low: int, high: int | None = None) -> int:
    value = _CONSTRUCTOR.construct_yaml_int(node) if node.tag == _INT else None
    if value is None or value < low or (high is not None and value > high):
        expected = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
        raise _Invalid(node, f"{path}: must be {expected}, got {_describe(node)}")
    return value


_port = functools.partial(_integer, low=1, high=65535)


def _choice(choices: tuple[str, ...], node: yaml.Node, path: str) -> str:
    if node.tag != _STR or node.value not in choices:
        raise _Invalid(node, f"{path}: must be one of {', '.join(choices)}; got {_describe(node)}")
    return node.value


def _duration(node: yaml.Node, path: str, allow_zero: bool = False) -> float:
    if node.tag in (_INT, _FLOAT):
        construct = _CONSTRUCTOR.construct_yaml_int if node.tag == _INT else _CONSTRUCTOR.construct_yaml_float
        seconds = float(construct(node))
        if not math.isfinite(seconds):
            raise _Invalid(node, f"{path}: must be {_DURATION_HELP}; got {_describe(node)}")
    elif node.tag == _STR:
        seconds = _checked_string(parse_duration, node, path)
    else:
        raise _Invalid(node, f"{path}: must be {_DURATION_HELP}; got {_describe(node)}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        expected = "must not be negative" if allow_zero else "must be greater than 0"
        raise _Invalid(node, f"{path}: {expected}, got {_describe(node)}")
    return seconds


_non_negative_duration = functools.partial(_duration, allow_zero=True)


def _labels(node: yaml.Node | None, path: str) -> Mapping[str, str]:
    labels = {}
    for name, key_node, value_node in _entries(node, path):
        label_path = f"{path}.{name}"
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise _Invalid(
                key_node,
                f"{label_path}: not a valid label name (letters, digits and _, not starting with a digit)",
            )
        if name.startswith("__"):
            raise _Invalid(key_node, f"{label_path}: label names starting with __ are reserved for Prometheus")
        if name in RESERVED_LABELS:
            raise _Invalid(
                key_node,
                f"{label_path}: the exporter sets a label named {name!r} itself; choose another name",
            )
        value = _string(value_node, label_path)
        if not value:
            raise _Invalid(value_node, f"{label_path}: must not be empty (Prometheus drops empty labels)")
        labels[name] = value
    return MappingProxyType(labels)


def _given(fields: _Fields, parsers: Mapping[str, Callable[[yaml.Node, str], Any]]) -> dict[str, Any]:
    """The parsed values of the keys that are set; the dataclass defaults fill in the others."""
    return {
        key: parse(node, fields.path_of(key))
        for key, parse in parsers.items()
        if (node := fields.get(key)) is not None
    }


def _check_timeout_fits(fields: _Fields, timeout: float, interval: float) -> None:
    """A probe must end before the next run of the same target begins."""
    if timeout > interval:
        # At least one of the two is set here: the global defaults passed this same check.
        culprit = fields.get("timeout") or fields.get("interval")
        raise _Invalid(
            culprit,
            f"{fields.path}: timeout ({format_duration(timeout)}) must not exceed "
            f"interval ({format_duration(interval)})",
        )


# ---------------------------------------------------------------------------------------
# The sections of the file.
# ---------------------------------------------------------------------------------------

_TOP_LEVEL_KEYS = ("global", "dns", "probe", "domain_checks", "modules", "targets", "domains")


def _parse_config(root: yaml.Node | None, source: str) -> Config:
    if root is not None and _is_null(root):
        root = None
    if root is not None and (not isinstance(root, yaml.MappingNode) or root.tag != _MAP):
        raise _Invalid(
            root, f"the top level must be a mapping with keys {', '.join(_TOP_LEVEL_KEYS)}; got {_describe(root)}"
        )
    top = _fields(root, "", _TOP_LEVEL_KEYS)
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
        source=source,
    )


_GLOBAL_PARSERS = {
    "interval": _duration,
    "timeout": _duration,
    "concurrency": functools.partial(_integer, low=1),
    "per_host_concurrency": functools.partial(_integer, low=1),
    "jitter": _non_negative_duration,
    "backoff_max": _non_negative_duration,
}


def _parse_global(node: yaml.Node | None, path: str) -> GlobalSettings:
    fields = _fields(node, path, tuple(_GLOBAL_PARSERS))
    settings = GlobalSettings(**_given(fields, _GLOBAL_PARSERS))
    _check_timeout_fits(fields, settings.timeout, settings.interval)
    return settings


def _parse_nameservers(node: yaml.Node, path: str) -> tuple[Nameserver, ...]:
    nameservers: dict[Nameserver, int] = {}     # -> line, to name the first of two duplicates
    for index, item in enumerate(_items(node, path)):
        item_path = f"{path}[{index}]"
        nameserver = _checked_string(parse_nameserver, item, item_path)
        if nameserver in nameservers:
            raise _Invalid(item, f"{item_path}: duplicate name server (first on line {nameservers[nameserver]})")
        nameservers[nameserver] = item.start_mark.line + 1
    return tuple(nameservers)


_DNS_PARSERS = {
    "nameservers": _parse_nameservers,
    "timeout": _duration,
    "retries": functools.partial(_integer, low=0),
}


def _parse_dns(node: yaml.Node | None, path: str) -> DNSSettings:
    fields = _fields(node, path, tuple(_DNS_PARSERS))
    return DNSSettings(**_given(fields, _DNS_PARSERS))


def _parse_patterns(parse: Callable[[str], Any], node: yaml.Node, path: str) -> tuple[Any, ...]:
    patterns: dict[str, int] = {}      # text -> line, to name the first of two duplicates
    parsed: list[Any] = []
    for index, item in enumerate(_items(node, path)):
        item_path = f"{path}[{index}]"
        pattern = _checked_string(parse, item, item_path)
        text = getattr(pattern, "text", pattern)
        if text in patterns:
            raise _Invalid(item, f"{item_path}: duplicate pattern (first on line {patterns[text]})")
        patterns[text] = item.start_mark.line + 1
        parsed.append(pattern)
    return tuple(parsed)


_PROBE_PARSERS = {
    "allowed_targets": functools.partial(_parse_patterns, parse_target_pattern),
    "allowed_domains": functools.partial(_parse_patterns, parse_domain_pattern),
    "timeout_offset": _non_negative_duration,
}


def _parse_probe(node: yaml.Node | None, path: str) -> ProbeSettings:
    fields = _fields(node, path, tuple(_PROBE_PARSERS))
    return ProbeSettings(**_given(fields, _PROBE_PARSERS))


def _boolean(node: yaml.Node, path: str) -> bool:
    if node.tag != _BOOL:
        raise _Invalid(node, f"{path}: must be true or false, got {_describe(node)}")
    return bool(_CONSTRUCTOR.construct_yaml_bool(node))


def _parse_domain_checks(
    node: yaml.Node | None, path: str, modules: Mapping[str, Module], config_dir: str
) -> DomainCheckSettings:
    parsers = {
        "interval": _duration,
        "mta_sts_ca_file": functools.partial(
            _checked_string, lambda name: check_ca_file(os.path.normpath(os.path.join(config_dir, name)))
        ),
        "https_timeout": _duration,
        "probe_mx": _boolean,
        "mx_module": _string,
    }
    fields = _fields(node, path, tuple(parsers))
    settings = DomainCheckSettings(**_given(fields, parsers))
    module = modules.get(settings.mx_module)
    if module is None or module.protocol.family != "smtp":
        problem = "no module named" if module is None else "not an SMTP module:"
        raise _Invalid(
            fields.get("mx_module"), f"{fields.path_of('mx_module')}: {problem} {settings.mx_module!r}"
        )
    return settings


def _default_starttls(protocol: Protocol) -> StartTLS:
    return StartTLS.NONE if protocol.implicit_tls else StartTLS.REQUIRED


def _builtin_module(protocol: Protocol, global_: GlobalSettings) -> Module:
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
    modules = {protocol.value: _builtin_module(protocol, global_) for protocol in Protocol}
    for name, key_node, value_node in _entries(node, path):
        module_path = f"{path}.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise _Invalid(key_node, f"{module_path}: a module name may only have letters, digits, '_', '.' and '-'")
        modules[name] = _parse_module(name, value_node, module_path, global_, config_dir)
    return modules


_MODULE_KEYS = ("protocol", "port", "starttls", "timeout", "interval", "tls", "ehlo", "deep_scan")
_PROTOCOLS = tuple(protocol.value for protocol in Protocol)


def _parse_module(name: str, node: yaml.Node, path: str, global_: GlobalSettings, config_dir: str) -> Module:
    fields = _fields(node, path, _MODULE_KEYS)
    protocol = Protocol(_choice(_PROTOCOLS, fields.require("protocol"), fields.path_of("protocol")))

    starttls = _default_starttls(protocol)
    if (starttls_node := fields.get("starttls")) is not None:
        starttls = StartTLS(_choice(tuple(StartTLS), starttls_node, fields.path_of("starttls")))
        if protocol.implicit_tls and starttls != StartTLS.NONE:
            raise _Invalid(
                starttls_node,
                f"{fields.path_of('starttls')}: {protocol} starts TLS at once, without STARTTLS; "
                "leave starttls out or set it to none",
            )

    ehlo = Module.ehlo  # the dataclass default
    if (ehlo_node := fields.get("ehlo")) is not None:
        if protocol.family != "smtp":
            raise _Invalid(
                ehlo_node, f"{fields.path_of('ehlo')}: only SMTP modules send EHLO, this one is {protocol}"
            )
        ehlo = _checked_string(check_ehlo_name, ehlo_node, fields.path_of("ehlo"))

    port_node, timeout_node, interval_node = fields.get("port"), fields.get("timeout"), fields.get("interval")
    module = Module(
        name=name,
        protocol=protocol,
        port=protocol.default_port if port_node is None else _port(port_node, fields.path_of("port")),
        starttls=starttls,
        timeout=global_.timeout if timeout_node is None else _duration(timeout_node, fields.path_of("timeout")),
        interval=(
            global_.interval if interval_node is None else _duration(interval_node, fields.path_of("interval"))
        ),
        tls=_parse_tls(fields.get("tls"), fields.path_of("tls"), config_dir),
        ehlo=ehlo,
        deep_scan=_parse_deep_scan(fields.values.get("deep_scan"), fields.path_of("deep_scan")),
    )
    _check_timeout_fits(fields, module.timeout, module.interval)
    return module


def _parse_tls(node: yaml.Node | None, path: str, config_dir: str) -> TLSSettings:
    parsers = {
        # A relative ca_file is relative to the config file, not to the working directory.
        "ca_file": functools.partial(
            _checked_string, lambda name: check_ca_file(os.path.normpath(os.path.join(config_dir, name)))
        ),
        "server_name": functools.partial(_checked_string, parse_server_name),
        "min_version": functools.partial(_choice, TLS_VERSIONS),
        "max_version": functools.partial(_choice, TLS_VERSIONS),
    }
    fields = _fields(node, path, tuple(parsers))
    settings = TLSSettings(**_given(fields, parsers))
    if (
        settings.min_version
        and settings.max_version
        and TLS_VERSIONS.index(settings.min_version) > TLS_VERSIONS.index(settings.max_version)
    ):
        raise _Invalid(
            fields.get("max_version"),
            f"{path}: min_version ({settings.min_version}) is above max_version ({settings.max_version})",
        )
    return settings


def _parse_deep_scan(node: yaml.Node | None, path: str) -> DeepScanSettings | None:
    """Absent: no deep scan. Present (even empty or null): scans with these settings."""
    if node is None:
        return None
    parsers = {"interval": _duration, "min_delay": _non_negative_duration, "budget": _duration}
    fields = _fields(None if _is_null(node) else node, path, tuple(parsers))
    settings = DeepScanSettings(**_given(fields, parsers))
    if settings.budget > settings.interval:
        raise _Invalid(
            fields.get("budget") or fields.get("interval") or node,
            f"{path}: budget ({format_duration(settings.budget)}) must not exceed "
            f"interval ({format_duration(settings.interval)})",
        )
    return settings


_TARGET_KEYS = ("host", "port", "module", "labels")


def _parse_targets(node: yaml.Node | None, path: str, modules: Mapping[str, Module]) -> tuple[Target, ...]:
    targets: list[Target] = []
    first_seen: dict[str, tuple[str, int]] = {}  # Target.key -> (path, line)
    for index, item in enumerate(_items(node, path)):
        item_path = f"{path}[{index}]"
        fields = _fields(item, item_path, _TARGET_KEYS)
        host = _checked_string(parse_host, fields.require("host"), fields.path_of("host"))
        module_node = fields.require("module")
        module_name = _string(module_node, fields.path_of("module"))
        if module_name not in modules:
            raise _Invalid(
                module_node,
                f"{fields.path_of('module')}: no module named {module_name!r}"
                f"{_did_you_mean(module_name, list(modules))}; defined: {', '.join(modules)}",
            )
        port_node = fields.get("port")
        target = Target(
            host=host,
            port=modules[module_name].port if port_node is None else _port(port_node, fields.path_of("port")),
            module=module_name,
            labels=_labels(fields.get("labels"), fields.path_of("labels")),
        )
        if target.key in first_seen:
            first_path, first_line = first_seen[target.key]
            raise _Invalid(
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
    for index, item in enumerate(_items(node, path)):
        item_path = f"{path}[{index}]"
        selector = _checked_string(check_dkim_selector, item, item_path)
        if len(f"{selector}._domainkey.{domain}") > 253:
            raise _Invalid(item, f"{item_path}: {selector}._domainkey.{domain} is longer than 253 characters")
        if selector.lower() in first_lines:
            raise _Invalid(item, f"{item_path}: duplicate selector (first on line {first_lines[selector.lower()]})")
        first_lines[selector.lower()] = item.start_mark.line + 1
        selectors.append(selector)
    return tuple(selectors)


_DOMAIN_KEYS = ("name", "dkim_selectors", "labels")


def _parse_domains(node: yaml.Node | None, path: str) -> tuple[Domain, ...]:
    domains: list[Domain] = []
    first_seen: dict[str, tuple[str, int]] = {}  # name -> (path, line)
    for index, item in enumerate(_items(node, path)):
        item_path = f"{path}[{index}]"
        fields = _fields(item, item_path, _DOMAIN_KEYS)
        name = _checked_string(normalize_dns_name, fields.require("name"), fields.path_of("name"))
        if name in first_seen:
            first_path, first_line = first_seen[name]
            raise _Invalid(item, f"{item_path}: duplicate of {first_path} on line {first_line} (same name: {name})")
        first_seen[name] = (item_path, item.start_mark.line + 1)
        domains.append(
            Domain(
                name=name,
                dkim_selectors=_parse_dkim_selectors(
                    fields.get("dkim_selectors"), fields.path_of("dkim_selectors"), name
                ),
                labels=_labels(fields.get("labels"), fields.path_of("labels")),
            )
        )
    return tuple(domains)
