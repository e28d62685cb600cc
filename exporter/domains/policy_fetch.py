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

HTTP/1.1 is spoken by the exporter's own small, strict client (`exporter.httpclient`, one
GET, then the connection is closed; its limits on lines, header and framing). Each way of
failing is a `PolicyFetchError` carrying a closed-set `CheckFailureReason`.
"""

from __future__ import annotations

import functools
import os
import ssl

from ..dnsclient import Resolver
from ..httpclient import AddressAllowed, AnswerRules, HTTPFailure, HTTPFetchError, HTTPRequest, fetch
from .common import CheckFailure, CheckFailureReason, failure_from

POLICY_PATH = "/.well-known/mta-sts.txt"
POLICY_SIZE_LIMIT = 64 * 1024
USER_AGENT = "mailsec-exporter (MTA-STS policy check)"
HTTPS_PORT = 443


class PolicyFetchError(Exception):
    def __init__(self, failure: CheckFailure):
        self.failure = failure
        super().__init__(failure.detail)


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


# ---- the exchange --------------------------------------------------------------------

POLICY_RULES = AnswerRules(size_limit=POLICY_SIZE_LIMIT, content_types=("text/plain",))

_REASON_OF_FAILURE = {
    HTTPFailure.NO_ADDRESS: CheckFailureReason.HTTPS_NO_ADDRESS,
    HTTPFailure.ADDRESS_NOT_ALLOWED: CheckFailureReason.ADDRESS_NOT_ALLOWED,
    HTTPFailure.TIMEOUT: CheckFailureReason.HTTPS_TIMEOUT,
    HTTPFailure.TLS_ERROR: CheckFailureReason.TLS_ERROR,
    HTTPFailure.MALFORMED: CheckFailureReason.HTTPS_ERROR,
    HTTPFailure.REDIRECT: CheckFailureReason.HTTP_REDIRECT,
    HTTPFailure.STATUS: CheckFailureReason.HTTP_STATUS,
    HTTPFailure.CONTENT_TYPE: CheckFailureReason.CONTENT_TYPE,
    HTTPFailure.TOO_LARGE: CheckFailureReason.TOO_LARGE,
}


def failure_of(exc: HTTPFetchError) -> CheckFailure:
    """The check failure of a failed fetch: a failed lookup is its dns_* reason."""
    if exc.dns_error is not None and exc.failure is HTTPFailure.DNS_ERROR:
        return failure_from(exc.dns_error)
    return CheckFailure(_REASON_OF_FAILURE[exc.failure], exc.detail)


async def fetch_policy(
    domain: str, dns: Resolver, *, ca_file: str | None, timeout: float,
    address_allowed: AddressAllowed | None = None,
) -> bytes:
    """The body of https://mta-sts.<domain>/.well-known/mta-sts.txt; raises PolicyFetchError.
    `address_allowed(address)`: False for an address the fetch must not connect to."""
    request = HTTPRequest(policy_host(domain), HTTPS_PORT, POLICY_PATH, USER_AGENT,
                          tls=functools.partial(tls_context, ca_file))
    try:
        return await fetch(request, POLICY_RULES, dns, timeout=timeout, address_allowed=address_allowed)
    except HTTPFetchError as exc:
        raise PolicyFetchError(failure_of(exc)) from None
