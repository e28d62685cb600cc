"""Fetch an MTA-STS policy file over HTTPS exactly as RFC 8461 §3.3 tells senders to.

* The policy host's name is resolved through the exporter's DNS client (an aiohttp
  resolver adapter), never the system resolver, so the configured resolver applies.
* The certificate must verify for the policy host, against the system's trust store or
  a configured CA file.
* Redirects are not followed: a 3xx is a failure. Only status 200 is a policy.
* The media type must be text/plain (parameters such as charset allowed).
* At most 64 KiB are read; a larger body is a failure. No content encoding is asked for,
  so no compressed body can expand beyond what was read.
* The whole fetch, connection included, has one time limit.

Each way of failing is a `PolicyFetchError` carrying a closed-set `CheckFailureReason`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..dnsclient import DNSError, Resolver, addresses_of
from .common import CheckFailure, CheckFailureReason, failure_from

POLICY_PATH = "/.well-known/mta-sts.txt"
POLICY_SIZE_LIMIT = 64 * 1024
USER_AGENT = "mailsec-exporter (MTA-STS policy check)"


class PolicyFetchError(Exception):
    def __init__(self, failure: CheckFailure):
        self.failure = failure
        super().__init__(failure.detail)


def _error(reason: CheckFailureReason, detail: str) -> PolicyFetchError:
    return PolicyFetchError(CheckFailure(reason, detail))


class _HostLookupError(OSError):
    """Raised by the resolver adapter; aiohttp wraps any OSError of a resolver in a
    ClientConnectorError, from which the DNSError is taken back out."""

    def __init__(self, error: DNSError):
        self.dns_error = error
        super().__init__(str(error))


class DNSClientResolver(AbstractResolver):
    """aiohttp's host-name resolution, answered by the exporter's DNS client."""

    def __init__(self, dns: Resolver):
        self._dns = dns

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            addresses = await addresses_of(self._dns, host)
        except DNSError as exc:
            raise _HostLookupError(exc) from None
        return [
            ResolveResult(hostname=host, host=address, port=port,
                          family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                          proto=0, flags=socket.AI_NUMERICHOST)
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def policy_url(domain: str) -> str:
    return f"https://mta-sts.{domain}{POLICY_PATH}"


async def fetch_policy(domain: str, dns: Resolver, *, ca_file: str | None, timeout: float) -> bytes:
    """The body of https://mta-sts.<domain>/.well-known/mta-sts.txt; raises PolicyFetchError."""
    url = policy_url(domain)
    try:
        async with asyncio.timeout(timeout):
            ssl_context = ssl.create_default_context(cafile=ca_file)   # cafile=None: the system store
            connector = aiohttp.TCPConnector(resolver=DNSClientResolver(dns), ssl=ssl_context,
                                             use_dns_cache=False, force_close=True)
            async with aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                trust_env=False, timeout=aiohttp.ClientTimeout(total=None),
            ) as session:
                async with session.get(url, allow_redirects=False, headers={
                    "Accept-Encoding": "identity", "User-Agent": USER_AGENT,
                }) as response:
                    _check_response(url, response)
                    return await _read_limited(url, response.content)
    except TimeoutError:
        raise _error(CheckFailureReason.HTTPS_TIMEOUT, f"{url}: no complete answer within {timeout:g}s") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, _HostLookupError):
            raise _host_lookup_failure(url, exc.os_error.dns_error) from None
        reason = CheckFailureReason.TLS_ERROR if isinstance(exc, aiohttp.ClientSSLError) else CheckFailureReason.HTTPS_ERROR
        raise _error(reason, f"{url}: {exc}") from None
    except ssl.SSLError as exc:
        raise _error(CheckFailureReason.TLS_ERROR, f"{url}: {exc}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _error(CheckFailureReason.HTTPS_ERROR, f"{url}: {type(exc).__name__}: {exc}") from None


def _host_lookup_failure(url: str, error: DNSError) -> PolicyFetchError:
    if error.kind.is_negative_answer:
        return _error(CheckFailureReason.HTTPS_NO_ADDRESS, f"{url}: {error}")
    return PolicyFetchError(failure_from(error))


def _check_response(url: str, response: aiohttp.ClientResponse) -> None:
    if 300 <= response.status < 400:
        location = response.headers.get("Location", "nowhere")
        raise _error(CheckFailureReason.HTTP_REDIRECT, f"{url}: HTTP {response.status} to {location[:200]}")
    if response.status != 200:
        raise _error(CheckFailureReason.HTTP_STATUS, f"{url}: HTTP {response.status}")
    content_type = response.headers.get("Content-Type", "")
    if content_type.split(";", 1)[0].strip().lower() != "text/plain":
        raise _error(CheckFailureReason.CONTENT_TYPE,
                     f"{url}: Content-Type {content_type[:100]!r}, not text/plain")
    if response.content_length is not None and response.content_length > POLICY_SIZE_LIMIT:
        raise _error(CheckFailureReason.TOO_LARGE,
                     f"{url}: Content-Length {response.content_length} over {POLICY_SIZE_LIMIT} bytes")


async def _read_limited(url: str, content: aiohttp.StreamReader) -> bytes:
    """The body, read until its end or until it exceeds the limit (then stop reading)."""
    body = bytearray()
    while chunk := await content.read(POLICY_SIZE_LIMIT + 1 - len(body)):
        body += chunk
        if len(body) > POLICY_SIZE_LIMIT:
            raise _error(CheckFailureReason.TOO_LARGE, f"{url}: body over {POLICY_SIZE_LIMIT} bytes")
    return bytes(body)
