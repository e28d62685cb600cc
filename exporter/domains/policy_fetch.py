"""Fetch an MTA-STS policy file over HTTPS exactly as RFC 8461 §3.3 tells senders to.

* The policy host's name is resolved first, through the exporter's DNS client, never the
  system resolver: a host without an address costs no TLS work at all. An optional guard
  refuses addresses (for on-demand checks); refused ones are never connected to.
* The certificate must verify for the policy host, against the system's trust store or
  a configured CA file. The TLS context of each setting is built once and reused:
  loading the system store costs ~20 ms of CPU, more than all the rest of a fetch.
* Redirects are not followed: a 3xx is a failure. Only status 200 is a policy.
* The media type must be text/plain (parameters such as charset allowed).
* At most 64 KiB of body are read; a larger body is a failure. No content encoding is
  asked for, so no compressed body can expand beyond what was read.
* The whole fetch, connection included, has one time limit.

HTTP/1.1 is spoken here by a small, strict client on asyncio streams (one GET, then the
connection is closed): a status line and each header line at most 8 KiB, at most 100
header lines and 64 KiB of them; the body framed by Content-Length, by the chunked coding,
or by the end of the connection. Each way of failing is a `PolicyFetchError` carrying a
closed-set `CheckFailureReason`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import ssl
from dataclasses import dataclass
from typing import Callable

from ..dnsclient import DNSError, Resolver, addresses_of
from .common import CheckFailure, CheckFailureReason, failure_from

POLICY_PATH = "/.well-known/mta-sts.txt"
POLICY_SIZE_LIMIT = 64 * 1024
USER_AGENT = "mailsec-exporter (MTA-STS policy check)"
HTTPS_PORT = 443

LINE_LIMIT = 8 * 1024            # the status line, each header line, each chunk-size line
HEADER_COUNT_LIMIT = 100
HEADER_BYTES_LIMIT = 64 * 1024   # all header lines of the answer together
CLOSE_GRACE_SECONDS = 1.0        # for the server's TLS close_notify after a complete answer

AddressAllowed = Callable[[str], bool]


class PolicyFetchError(Exception):
    def __init__(self, failure: CheckFailure):
        self.failure = failure
        super().__init__(failure.detail)


def _error(reason: CheckFailureReason, detail: str) -> PolicyFetchError:
    return PolicyFetchError(CheckFailure(reason, detail))


class AnswerRefused(Exception):
    """The answer breaks a rule: why (the reason) and how (the detail, without the URL,
    which `fetch_policy` puts in front)."""

    def __init__(self, reason: CheckFailureReason, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(detail)


def _malformed(detail: str) -> AnswerRefused:
    return AnswerRefused(CheckFailureReason.HTTPS_ERROR, detail)


def policy_host(domain: str) -> str:
    return f"mta-sts.{domain}"


def policy_url(domain: str) -> str:
    return f"https://{policy_host(domain)}{POLICY_PATH}"


# The TLS contexts, one per CA setting. A CA file is keyed by its path and its state on
# disk too, so that a replaced file is read again (after a reload, say).
@functools.lru_cache(maxsize=16)
def _context_for(ca_file: str | None, file_state: tuple[int, int] | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)   # cafile=None: the system store


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The verifying client context for `ca_file` (None: the system store), built once."""
    if ca_file is None:
        return _context_for(None, None)
    state = os.stat(ca_file)
    return _context_for(ca_file, (state.st_mtime_ns, state.st_size))


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


def check_head(head: ResponseHead) -> BodyFraming:
    """RFC 8461 §3.3 on the head: 200, text/plain, not announced over the size limit."""
    if 300 <= head.status < 400:
        location = head.value("location") or "nowhere"
        raise AnswerRefused(CheckFailureReason.HTTP_REDIRECT, f"HTTP {head.status} to {location[:200]}")
    if head.status != 200:
        raise AnswerRefused(CheckFailureReason.HTTP_STATUS, f"HTTP {head.status}")
    content_type = head.value("content-type") or ""
    if content_type.split(";", 1)[0].strip().lower() != "text/plain":
        raise AnswerRefused(CheckFailureReason.CONTENT_TYPE, f"Content-Type {content_type[:100]!r}, not text/plain")
    framing = body_framing(head)
    if framing.length is not None and framing.length > POLICY_SIZE_LIMIT:
        raise AnswerRefused(CheckFailureReason.TOO_LARGE,
                            f"Content-Length {head.value('content-length')[:30]} over {POLICY_SIZE_LIMIT} bytes")
    return framing


# ---- the exchange --------------------------------------------------------------------

async def fetch_policy(
    domain: str, dns: Resolver, *, ca_file: str | None, timeout: float,
    address_allowed: AddressAllowed | None = None,
) -> bytes:
    """The body of https://mta-sts.<domain>/.well-known/mta-sts.txt; raises PolicyFetchError.
    `address_allowed(address)`: False for an address the fetch must not connect to."""
    url, host = policy_url(domain), policy_host(domain)
    try:
        async with asyncio.timeout(timeout):
            addresses = await _allowed_addresses(host, dns, address_allowed)
            context = tls_context(ca_file)
            reader, writer = await _connect(addresses)
            try:
                await writer.start_tls(context, server_hostname=host)
                writer.write(_request(host))
                body = await _read_response(reader)
            except BaseException:
                writer.transport.abort()    # a broken, hostile or late answer gets no goodbye
                raise
    except AnswerRefused as exc:
        raise _error(exc.reason, f"{url}: {exc.detail}") from None
    except TimeoutError:
        raise _error(CheckFailureReason.HTTPS_TIMEOUT, f"{url}: no complete answer within {timeout:g}s") from None
    except ssl.SSLError as exc:
        raise _error(CheckFailureReason.TLS_ERROR, f"{url}: {exc}") from None
    except OSError as exc:
        raise _error(CheckFailureReason.HTTPS_ERROR, f"{url}: {type(exc).__name__}: {exc}") from None
    await _close(writer)        # outside the time limit: the policy is had, whatever the close does
    return body


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close with a TLS close_notify, but wait for the server's at most CLOSE_GRACE_SECONDS:
    a server that never answers it must not hold the socket (asyncio would wait 30 s)."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE_SECONDS):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


def _request(host: str) -> bytes:
    return (f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept-Encoding: identity\r\nConnection: close\r\n\r\n").encode("ascii")


async def _allowed_addresses(host: str, dns: Resolver, address_allowed: AddressAllowed | None) -> list[str]:
    try:
        addresses = await addresses_of(dns, host)
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            raise AnswerRefused(CheckFailureReason.HTTPS_NO_ADDRESS, str(exc)) from None
        raise PolicyFetchError(failure_from(exc)) from None   # the resolver failed: a dns_* reason
    if address_allowed is None:
        return addresses
    allowed = [address for address in addresses if address_allowed(address)]
    if not allowed:
        raise AnswerRefused(CheckFailureReason.ADDRESS_NOT_ALLOWED,
                            f"no address of {host} may be contacted ({', '.join(addresses)[:200]})")
    return allowed


async def _connect(addresses: list[str]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the first of `addresses` that accepts one."""
    errors = []
    for address in addresses:
        try:
            return await asyncio.open_connection(address, HTTPS_PORT, limit=LINE_LIMIT)
        except OSError as exc:
            errors.append(f"{address}: {exc.strerror or exc}")
    raise _malformed(f"cannot connect: {'; '.join(errors)[:300]}")


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    framing = check_head(await _read_head(reader))
    if framing.chunked:
        return await _read_chunked(reader)
    if framing.length is not None:
        return await _read_exactly(reader, framing.length, "body")
    return await _read_to_end(reader)


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


def _too_large() -> AnswerRefused:
    return AnswerRefused(CheckFailureReason.TOO_LARGE, f"body over {POLICY_SIZE_LIMIT} bytes")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """The chunks up to the last (size 0); trailer fields are not read."""
    body = bytearray()
    while size := parse_chunk_size(await _read_line(reader, "chunk size line")):
        if len(body) + size > POLICY_SIZE_LIMIT:
            raise _too_large()
        body += await _read_exactly(reader, size, "chunk")
        if await _read_line(reader, "chunk end"):
            raise _malformed("a chunk is longer than its size line says")
    return bytes(body)


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    """The body framed by the end of the connection, or until it exceeds the limit."""
    body = bytearray()
    while chunk := await reader.read(POLICY_SIZE_LIMIT + 1 - len(body)):
        body += chunk
        if len(body) > POLICY_SIZE_LIMIT:
            raise _too_large()
    return bytes(body)
