"""A small, strict HTTP/1.1 client on asyncio streams: the MTA-STS policy fetch (HTTPS) and
the revocation checks' CRL and OCSP fetches (plain HTTP) share it.

* The host's name is resolved first, through the exporter's DNS client, never the system
  resolver; an IP literal is used as it is. An optional guard refuses addresses; refused
  ones are never connected to. The addresses are tried in order until one accepts.
* One request (GET, or POST with a body), then the connection is closed
  (`Connection: close`). No content encoding is asked for, so no compressed body can
  expand beyond what was read. Redirects are not followed: a 3xx is a failure, and so is
  any status other than 200.
* Limits: a status line and each header line at most 8 KiB, at most 100 header lines and
  64 KiB of them; the body at most the caller's size limit, framed by Content-Length, by
  the chunked coding, or by the end of the connection. The whole exchange, connection
  included, has one time limit.

Each way of failing is an `HTTPFetchError` carrying a closed-set `HTTPFailure`; the callers
map those onto their own reasons.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import re
import ssl
from dataclasses import dataclass
from typing import Callable

from .dnsclient import DNSError, Resolver, addresses_of

LINE_LIMIT = 8 * 1024            # the status line, each header line, each chunk-size line
HEADER_COUNT_LIMIT = 100
HEADER_BYTES_LIMIT = 64 * 1024   # all header lines of the answer together
CLOSE_GRACE_SECONDS = 1.0        # for the server's TLS close_notify after a complete answer

AddressAllowed = Callable[[str], bool]


class HTTPFailure(enum.StrEnum):
    """Why a fetch failed: a closed set the callers map onto their own reasons."""

    NO_ADDRESS = "no_address"                   # the host has no A/AAAA record
    DNS_ERROR = "dns_error"                     # the lookup itself failed (see HTTPFetchError.dns_error)
    ADDRESS_NOT_ALLOWED = "address_not_allowed"  # the guard refused every address of the host
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"                     # handshake failed or the certificate did not verify
    MALFORMED = "malformed"                     # no connection, reset, or an answer that is not HTTP/1.x
    REDIRECT = "redirect"
    STATUS = "status"                           # any other status than 200
    CONTENT_TYPE = "content_type"
    TOO_LARGE = "too_large"


class AnswerRefused(Exception):
    """The exchange breaks a rule: why (the failure) and how (the detail, without the URL)."""

    def __init__(self, failure: HTTPFailure, detail: str, dns_error: DNSError | None = None):
        self.failure, self.detail, self.dns_error = failure, detail, dns_error
        super().__init__(detail)


class HTTPFetchError(AnswerRefused):
    """A fetch failed; the detail starts with the URL."""


def _malformed(detail: str) -> AnswerRefused:
    return AnswerRefused(HTTPFailure.MALFORMED, detail)


@dataclass(frozen=True)
class HTTPRequest:
    """One request: where (host, port, path), how (method, body), and over TLS or not."""

    host: str                          # a DNS name or an IP literal (IPv6 without brackets)
    port: int
    path: str                          # with the query, starting with "/"
    user_agent: str
    method: str = "GET"
    body: bytes = b""
    body_type: str | None = None       # the Content-Type of `body`
    # The context that verifies the server for `host`, asked for only once the host has an
    # address (building one can cost more than the rest of a fetch); None: plain HTTP.
    tls: Callable[[], ssl.SSLContext] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme, default_port = ("https", 443) if self.tls is not None else ("http", 80)
        port = "" if self.port == default_port else f":{self.port}"
        return f"{scheme}://{host}{port}{self.path}"

    def encoded(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.tls is not None else 80
        lines = [f"{self.method} {self.path} HTTP/1.1",
                 f"Host: {host}" + ("" if self.port == default_port else f":{self.port}"),
                 f"User-Agent: {self.user_agent}", "Accept-Encoding: identity", "Connection: close"]
        if self.body_type is not None:
            lines.append(f"Content-Type: {self.body_type}")
        if self.body or self.method == "POST":
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + self.body


@dataclass(frozen=True)
class AnswerRules:
    """What the caller accepts: at most `size_limit` body bytes, of one of `content_types`
    (lower-case media types without parameters; empty: any)."""

    size_limit: int
    content_types: tuple[str, ...] = ()


# ---- the answer's head: pure parsers ------------------------------------------------

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9]{2})(?: [^\r\n]*)?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?")


@dataclass(frozen=True)
class ResponseHead:
    status: int
    fields: tuple[tuple[str, str], ...]   # (lower-case name, value), in order

    def values(self, name: str) -> list[str]:
        return [value for field, value in self.fields if field == name]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None


def parse_status_line(line: bytes) -> int:
    """The status code of `HTTP/1.x NNN reason`; AnswerRefused when it is none."""
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise _malformed(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(match.group(1))


def parse_field_line(line: bytes) -> tuple[str, str]:
    """`Name: value` -> (name lower-cased, value without surrounding white space).
    Obsolete line folding and white space before the colon are refused (RFC 9112 §5)."""
    name, colon, value = line.partition(b":")
    if not colon or not _FIELD_NAME.fullmatch(name):
        raise _malformed(f"malformed header line: {line[:80]!r}")
    return name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")


def parse_chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (extensions after `;` ignored)."""
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise _malformed(f"malformed chunk size line: {line[:80]!r}")
    return int(match.group(1), 16)


@dataclass(frozen=True)
class BodyFraming:
    """How the body ends (RFC 9112 §6.3): after `length` bytes, after the last chunk, or
    (neither) when the server closes the connection."""

    chunked: bool = False
    length: int | None = None


_DIGITS = re.compile(r"[0-9]+")


def body_framing(head: ResponseHead) -> BodyFraming:
    """The framing the head announces; AnswerRefused for one that could be read two ways
    or that this client does not speak."""
    codings = [coding.strip().lower() for value in head.values("transfer-encoding") for coding in value.split(",")]
    lengths = set(head.values("content-length"))
    if codings:
        if codings != ["chunked"]:
            raise _malformed(f"unsupported Transfer-Encoding {', '.join(codings)[:80]!r}")
        if lengths:
            raise _malformed("both Transfer-Encoding and Content-Length (RFC 9112 §6.3)")
        return BodyFraming(chunked=True)
    if not lengths:
        return BodyFraming()
    text = lengths.pop()
    if lengths or not _DIGITS.fullmatch(text):
        raise _malformed(f"invalid Content-Length {head.values('content-length')!r:.100}")
    # int() refuses over 4,300 digits; anything over 18 is too large anyway.
    return BodyFraming(length=int(text) if len(text) <= 18 else 10 ** 18)


def check_head(head: ResponseHead, rules: AnswerRules) -> BodyFraming:
    """The rules on the head: 200, an accepted media type, not announced over the size limit."""
    if 300 <= head.status < 400:
        location = head.value("location") or "nowhere"
        raise AnswerRefused(HTTPFailure.REDIRECT, f"HTTP {head.status} to {location[:200]}")
    if head.status != 200:
        raise AnswerRefused(HTTPFailure.STATUS, f"HTTP {head.status}")
    content_type = head.value("content-type") or ""
    if rules.content_types and content_type.split(";", 1)[0].strip().lower() not in rules.content_types:
        raise AnswerRefused(HTTPFailure.CONTENT_TYPE,
                            f"Content-Type {content_type[:100]!r}, not {' or '.join(rules.content_types)}")
    framing = body_framing(head)
    if framing.length is not None and framing.length > rules.size_limit:
        raise AnswerRefused(HTTPFailure.TOO_LARGE,
                            f"Content-Length {head.value('content-length')[:30]} over {rules.size_limit} bytes")
    return framing


# ---- the exchange --------------------------------------------------------------------

async def fetch(
    request: HTTPRequest, rules: AnswerRules, dns: Resolver, *, timeout: float,
    address_allowed: AddressAllowed | None = None,
) -> bytes:
    """The body of the answer to `request`; raises HTTPFetchError.
    `address_allowed(address)`: False for an address the fetch must not connect to."""
    try:
        async with asyncio.timeout(timeout):
            addresses = await _allowed_addresses(request.host, dns, address_allowed)
            context = request.tls() if request.tls is not None else None
            reader, writer = await _connect(addresses, request.port)
            try:
                if context is not None:
                    await writer.start_tls(context, server_hostname=request.host)
                writer.write(request.encoded())
                body = await _read_response(reader, rules)
            except BaseException:
                writer.transport.abort()    # a broken, hostile or late answer gets no goodbye
                raise
    except AnswerRefused as exc:
        raise HTTPFetchError(exc.failure, f"{request.url}: {exc.detail}", exc.dns_error) from None
    except TimeoutError:
        raise HTTPFetchError(HTTPFailure.TIMEOUT, f"{request.url}: no complete answer within {timeout:g}s") from None
    except ssl.SSLError as exc:
        raise HTTPFetchError(HTTPFailure.TLS_ERROR, f"{request.url}: {exc}") from None
    except OSError as exc:
        raise HTTPFetchError(HTTPFailure.MALFORMED, f"{request.url}: {type(exc).__name__}: {exc}") from None
    await _close(writer)        # outside the time limit: the answer is had, whatever the close does
    return body


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close (with a TLS close_notify), but wait for the server's at most CLOSE_GRACE_SECONDS:
    a server that never answers it must not hold the socket (asyncio would wait 30 s)."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE_SECONDS):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def _allowed_addresses(host: str, dns: Resolver, address_allowed: AddressAllowed | None) -> list[str]:
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await addresses_of(dns, host)
        except DNSError as exc:
            failure = HTTPFailure.NO_ADDRESS if exc.kind.is_negative_answer else HTTPFailure.DNS_ERROR
            raise AnswerRefused(failure, str(exc), exc) from None
    if address_allowed is None:
        return addresses
    allowed = [address for address in addresses if address_allowed(address)]
    if not allowed:
        raise AnswerRefused(HTTPFailure.ADDRESS_NOT_ALLOWED,
                            f"no address of {host} may be contacted ({', '.join(addresses)[:200]})")
    return allowed


async def _connect(addresses: list[str], port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the first of `addresses` that accepts one."""
    errors = []
    for address in addresses:
        try:
            return await asyncio.open_connection(address, port, limit=LINE_LIMIT)
        except OSError as exc:
            errors.append(f"{address}: {exc.strerror or exc}")
    raise _malformed(f"cannot connect: {'; '.join(errors)[:300]}")


async def _read_response(reader: asyncio.StreamReader, rules: AnswerRules) -> bytes:
    framing = check_head(await _read_head(reader), rules)
    if framing.chunked:
        return await _read_chunked(reader, rules.size_limit)
    if framing.length is not None:
        return await _read_exactly(reader, framing.length, "body")
    return await _read_to_end(reader, rules.size_limit)


async def _read_head(reader: asyncio.StreamReader) -> ResponseHead:
    """The status line and header fields, skipping interim (1xx) answers, within the limits."""
    budget = HeaderBudget()
    while True:
        status = parse_status_line(budget.take(await _read_line(reader, "status line")))
        fields = []
        while line := budget.take(await _read_line(reader, "header line")):
            fields.append(parse_field_line(line))
        if not 100 <= status < 200:
            return ResponseHead(status, tuple(fields))


class HeaderBudget:
    """Counts the head's lines and bytes against the limits (interim answers included)."""

    def __init__(self) -> None:
        self.lines, self.size = 0, 0

    def take(self, line: bytes) -> bytes:
        self.lines += 1
        self.size += len(line) + 2
        if self.lines > HEADER_COUNT_LIMIT + 1:      # the status line is not a header line
            raise _malformed(f"over {HEADER_COUNT_LIMIT} header lines")
        if self.size > HEADER_BYTES_LIMIT:
            raise _malformed(f"header over {HEADER_BYTES_LIMIT} bytes")
        return line


async def _read_line(reader: asyncio.StreamReader, what: str) -> bytes:
    """One line without its CRLF (or bare LF); at most LINE_LIMIT bytes."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise _malformed(f"{what} over {LINE_LIMIT} bytes") from None
    except asyncio.IncompleteReadError:
        raise _malformed(f"connection closed in a {what}") from None
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


async def _read_exactly(reader: asyncio.StreamReader, size: int, what: str) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise _malformed(f"connection closed after {len(exc.partial)} of {size} {what} bytes") from None


def _too_large(limit: int) -> AnswerRefused:
    return AnswerRefused(HTTPFailure.TOO_LARGE, f"body over {limit} bytes")


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    """The chunks up to the last (size 0); trailer fields are not read."""
    body = bytearray()
    while size := parse_chunk_size(await _read_line(reader, "chunk size line")):
        if len(body) + size > limit:
            raise _too_large(limit)
        body += await _read_exactly(reader, size, "chunk")
        if await _read_line(reader, "chunk end"):
            raise _malformed("a chunk is longer than its size line says")
    return bytes(body)


async def _read_to_end(reader: asyncio.StreamReader, limit: int) -> bytes:
    """The body framed by the end of the connection, or until it exceeds the limit."""
    body = bytearray()
    while chunk := await reader.read(min(limit + 1 - len(body), 1 << 20)):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)
