"""Parsers of single config values.

They take plain strings and raise ValueError with a reason that reads well after
"<key path>: ". The /probe endpoint and the one-shot commands use them too, on values
that come from requests and command lines rather than from the file.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import os
import re
import ssl
import stat

from .model import IPNetwork, Nameserver, TargetPattern

# Prometheus duration syntax: each unit at most once, largest first.
_DURATION_RE = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_DURATION_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
DURATION_HELP = "a duration such as 30s, 5m, 1h30m, 500ms or 1d, or a number of seconds"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration string: "30s", "5m", "1h30m", "500ms", "1d", "0"."""
    if text == "0":
        return 0.0
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"must be {DURATION_HELP}; got {text!r}")
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


_BYTE_SIZE_RE = re.compile(r"([0-9]+)\s*(B|KiB|MiB|GiB|kB|MB|GB)?")
_BYTE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 10**3, "MB": 10**6, "GB": 10**9}
BYTE_SIZE_HELP = "a size such as 512KiB, 10MiB or 1GB, or a number of bytes"


def parse_byte_size(text: str) -> int:
    """Bytes in a size string: "10MiB", "512KiB", "1GB", "4096"."""
    match = _BYTE_SIZE_RE.fullmatch(text.strip())
    if match is None or len(match.group(1)) > 15:
        raise ValueError(f"must be {BYTE_SIZE_HELP}; got {text!r}")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2)]


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


# Config, certificate and key files are kilobytes: a file this large is a mistake.
MAX_FILE_BYTES = 16 * 1024 * 1024


def read_regular_file(path: str) -> bytes:
    """The content of the regular file at `path`, or a ValueError whose reason reads well
    after "cannot read FILE: ". A device such as /dev/zero would be read forever and a FIFO
    would block until a writer comes, so they are refused."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(exc.strerror) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError(os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise ValueError("it is not a regular file (a device, FIFO or socket)")
        with open(descriptor, "rb", closefd=False) as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(exc.strerror) from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"it is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return data


def check_readable_file(path: str) -> str:
    """`path`, if it names a regular file that can be read."""
    try:
        read_regular_file(path)
    except ValueError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    return path


def check_ca_file(path: str) -> str:
    """Check that `path` is a readable PEM file with at least one CA certificate."""
    check_readable_file(path)   # before OpenSSL, which would read /dev/zero forever
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:  # before OSError, its base class
        raise ValueError(f"{path} holds no PEM certificate ({exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return path

