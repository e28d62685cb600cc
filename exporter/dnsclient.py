"""The one place that talks DNS.

Every lookup the exporter makes goes through a `DNSClient`, so that the configured
nameservers, port, timeout and retries apply everywhere, the target host names included.
`dnswire` writes the queries and reads the answers; `dnstransport` carries them (a few
reused UDP sockets per nameserver, TCP when an answer is truncated).

Queries ask for DNSSEC data (EDNS0 with the DO bit, 1232-byte buffer) and set the AD bit,
so that a validating resolver says in each answer whether it validated it.

`lookup` returns a `DNSAnswer` or raises a `DNSError` whose `kind` tells NXDOMAIN, NODATA,
SERVFAIL and timeout apart: the checks treat "no such record" as a finding and the others
as a check that could not run. `LookupCache` wraps a client for one check run, so that
a name asked about by several checks is looked up once.

Answers, negative ones included, are also kept by the client for their TTL, at most
SHARED_CACHE_SECONDS: thousands of hosted domains include the same SPF records, report to
the same DMARC addresses and share MX hosts, and one cycle should ask for them once.
Failures (timeouts, SERVFAIL) are never kept: the next asker tries again.

The transport is imported by the first lookup, not with this module: a deep scan of an IP
address never resolves anything. dnspython (~50 ms to import) is only imported for what
`dnswire` leaves to it (a name with escapes or non-ASCII characters), the reverse name of
an address and the system's nameservers.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import ipaddress
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .config import DNSSettings
from .dnswire import MXRecord, Record, normalize_name

if TYPE_CHECKING:
    from .dnstransport import DNSTransport

SHARED_CACHE_SECONDS = 60.0     # longest an answer is reused across check runs (less if its TTL is)
NEGATIVE_CACHE_SECONDS = 30.0   # NXDOMAIN/NODATA: reused this long at most
# Least recently used answers go first: the shared names (provider SPF includes, report
# domains) are asked all the time and stay; names only one domain asks for soon leave.
MAX_SHARED_ENTRIES = 10_000


class DNSErrorKind(enum.StrEnum):
    NXDOMAIN = "nxdomain"     # the name does not exist
    NODATA = "nodata"         # the name exists, without records of the asked type
    SERVFAIL = "servfail"     # the resolver gave up; from a validating resolver, maybe bogus DNSSEC
    TIMEOUT = "timeout"       # no answer within the configured timeout
    ERROR = "error"           # REFUSED, malformed answers, unreachable nameservers

    @property
    def is_negative_answer(self) -> bool:
        """NXDOMAIN and NODATA are answers (the records do not exist), not failures."""
        return self in (DNSErrorKind.NXDOMAIN, DNSErrorKind.NODATA)


class DNSError(Exception):
    """A lookup gave no records. str() says which name, type and why."""

    def __init__(self, kind: DNSErrorKind, name: str, rdtype: str, detail: str = "", authenticated: bool = False):
        self.kind = kind
        self.name = name
        self.rdtype = rdtype
        self.detail = detail
        self.authenticated = authenticated   # a negative answer the resolver validated (AD bit)
        super().__init__(f"{name} {rdtype}: {_KIND_TEXT[kind]}" + (f" ({detail})" if detail else ""))

    def again(self) -> DNSError:
        """The same error as a new exception, to raise from a cache with a fresh traceback."""
        return DNSError(self.kind, self.name, self.rdtype, self.detail, self.authenticated)


_KIND_TEXT = {
    DNSErrorKind.NXDOMAIN: "no such domain (NXDOMAIN)",
    DNSErrorKind.NODATA: "no record of this type",
    DNSErrorKind.SERVFAIL: "server failure (SERVFAIL)",
    DNSErrorKind.TIMEOUT: "timed out",
    DNSErrorKind.ERROR: "lookup failed",
}


@dataclass(frozen=True)
class DNSAnswer:
    name: str                       # as asked, lower case, without the final dot
    rdtype: str                     # "TXT", "MX", ...
    records: tuple[Record, ...]     # dnswire records of the asked type, in the order received
    canonical_name: str             # the name at the end of any CNAME chain; == name when none
    authenticated: bool             # the resolver set AD: it validated the answer with DNSSEC

    @property
    def is_alias(self) -> bool:
        return self.canonical_name != self.name


class DNSClient:
    def __init__(self, settings: DNSSettings):
        self.settings = settings
        # (name, type, CD) -> (monotonic expiry, the answer or the negative DNSError), LRU order
        self._shared: collections.OrderedDict[tuple[str, str, bool], tuple[float, DNSAnswer | DNSError]] = (
            collections.OrderedDict()
        )
        # Questions on their way: concurrent runs asking the same one wait for one answer.
        self._in_flight: dict[tuple[str, str, bool], asyncio.Future[DNSAnswer | DNSError]] = {}

    @functools.cached_property
    def _transport(self) -> DNSTransport:
        from .dnstransport import DNSTransport

        return DNSTransport(_nameservers(self.settings), attempt_timeout=self.settings.timeout / (self.settings.retries + 1),
                            lifetime=self.settings.timeout)

    def close(self) -> None:
        """Close the client's sockets, each once the lookups waiting on it are answered. A
        lookup made afterwards still works, on a socket of its own."""
        transport = self.__dict__.get("_transport")
        if transport is not None:
            transport.close()

    async def lookup(self, name: str, rdtype: str, *, checking_disabled: bool = False) -> DNSAnswer:
        """The records of one type at `name`; raises DNSError when there are none."""
        return _answer_or_raise(await self._outcome((normalize_name(name), rdtype, checking_disabled)))

    # Outcomes travel between askers as values, a DNSError included, and each asker raises
    # a copy of its own: an error stored in a future and raised from several coroutines
    # would tie their frames into reference cycles, which only the garbage collector frees
    # (at a few thousand checks at once, its full passes were a tenth of the CPU).

    async def _outcome(self, key: tuple[str, str, bool]) -> DNSAnswer | DNSError:
        """The answer to (normalized name, type, CD), or the DNSError that is the answer."""
        remembered = self.remembered(key)
        if remembered is not None:
            return remembered
        return await asyncio.shield(self.pending(key))

    def pending(self, key: tuple[str, str, bool]) -> asyncio.Future[DNSAnswer | DNSError]:
        """The query of `key` on its way (started now if it is not), shared by every asker:
        await it through asyncio.shield, so that one asker's cancellation leaves it running."""
        pending = self._in_flight.get(key)
        # A future belongs to its event loop: a client used from another loop asks anew.
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = asyncio.ensure_future(self._query_and_remember(key))
            self._in_flight[key] = pending
            pending.add_done_callback(functools.partial(self._landed, key))
        return pending

    def remembered(self, key: tuple[str, str, bool]) -> DNSAnswer | DNSError | None:
        """The kept outcome of `key` while fresh; None when it must be asked."""
        cached = self._shared.get(key)
        if cached is None or cached[0] <= time.monotonic():
            return None
        self._shared.move_to_end(key)
        return cached[1]

    def _landed(self, key: tuple[str, str, bool], done: asyncio.Future) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]

    async def _query_and_remember(self, key: tuple[str, str, bool]) -> DNSAnswer | DNSError:
        asked_at = time.monotonic()
        try:
            answer, ttl = await self._query(*key)
        except DNSError as exc:
            # A copy never raised: no traceback, no frames held.
            error = exc.again()
            if error.kind.is_negative_answer:
                self._remember(key, asked_at + NEGATIVE_CACHE_SECONDS, error)
            return error
        self._remember(key, asked_at + min(ttl, SHARED_CACHE_SECONDS), answer)
        return answer

    def _remember(self, key: tuple[str, str, bool], expiry: float, outcome: DNSAnswer | DNSError) -> None:
        self._shared[key] = (expiry, outcome)
        self._shared.move_to_end(key)
        if len(self._shared) > MAX_SHARED_ENTRIES:
            self._shared.popitem(last=False)

    async def _query(self, qname: str, rdtype: str, checking_disabled: bool) -> tuple[DNSAnswer, float]:
        """Ask the nameservers; the answer and how long it may be reused (its TTL)."""
        from .dnstransport import NoUsableAnswer
        from .dnswire import NXDOMAIN, MalformedMessage, make_query

        try:
            # AD in a query asks for the AD bit in the answer (RFC 6840 §5.7); CD asks a
            # validating resolver to answer even when validation fails.
            query = make_query(qname, rdtype, checking_disabled)
        except Exception as exc:   # dnspython's errors on a name that cannot be one: too long, an empty label
            raise DNSError(DNSErrorKind.ERROR, qname, rdtype, str(exc)) from None
        try:
            response = await self._transport.resolve(query)   # reads resolv.conf the first time
            if response.rcode == NXDOMAIN:
                raise DNSError(DNSErrorKind.NXDOMAIN, qname, rdtype, authenticated=response.authenticated)
            chain = response.chain(query)
        except TimeoutError:
            raise DNSError(DNSErrorKind.TIMEOUT, qname, rdtype, f"{self.settings.timeout:g}s") from None
        except NoUsableAnswer as exc:
            raise DNSError(DNSErrorKind.SERVFAIL if exc.servfail else DNSErrorKind.ERROR, qname, rdtype) from None
        except MalformedMessage as exc:   # a CNAME chain too long, not one question
            raise DNSError(DNSErrorKind.ERROR, qname, rdtype, str(exc)) from None
        if chain.records is None:
            raise DNSError(DNSErrorKind.NODATA, qname, rdtype, authenticated=response.authenticated)
        return DNSAnswer(qname, rdtype, chain.records, chain.canonical_name, response.authenticated), chain.ttl

    async def resolve_addresses(self, host: str) -> list[str]:
        """IP addresses of `host`: IPv4 first, then IPv6. An IP literal is returned as is."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        return await addresses_of(self, host)


# Questions one domain check run may ask. A domain is checked in about 10 to 40 (SPF's own
# limits bound its part); this stops a domain whose records fan out (many MX hosts, many
# DKIM selectors) from costing thousands of queries.
QUERY_BUDGET = 400


class LookupCache:
    """A DNSClient for one check run: each (name, type) is asked once, its answer or its
    error kept. Concurrent askers of the same question share one query. At most `budget`
    distinct questions: any further one fails with a DNSError (kind ERROR)."""

    def __init__(self, client: DNSClient, budget: int = QUERY_BUDGET):
        self.client = client
        self._budget = budget
        self._outcomes: dict[tuple[str, str, bool], asyncio.Future[DNSAnswer | DNSError]] = {}

    async def lookup(self, name: str, rdtype: str, *, checking_disabled: bool = False) -> DNSAnswer:
        key = (normalize_name(name), rdtype, checking_disabled)
        outcome = self._outcomes.get(key)
        if outcome is None:
            if len(self._outcomes) >= self._budget:
                raise DNSError(DNSErrorKind.ERROR, name, rdtype,
                               f"query budget of this check run ({self._budget} questions) used up")
            outcome = self._outcomes[key] = self._ask(key)
        # Most questions of a run are asked again (MX host addresses by several checks),
        # or their answer is kept by the client: no shield for those.
        if not outcome.done():
            await asyncio.shield(outcome)
        return _answer_or_raise(outcome.result())

    def _ask(self, key: tuple[str, str, bool]) -> asyncio.Future[DNSAnswer | DNSError]:
        """The client's kept outcome as a done future, or its query on the way (no task of
        our own: the client's, shared with other runs asking the same)."""
        remembered = self.client.remembered(key)
        if remembered is None:
            return self.client.pending(key)
        known = asyncio.get_running_loop().create_future()
        known.set_result(remembered)
        return known


def _answer_or_raise(outcome: DNSAnswer | DNSError) -> DNSAnswer:
    """The answer; a DNSError raised as a fresh copy (see DNSClient._outcome)."""
    if isinstance(outcome, DNSError):
        raise outcome.again()
    return outcome


Resolver = DNSClient | LookupCache


async def txt_records(dns_: Resolver, name: str) -> list[str]:
    """The TXT records at `name`, each one's character-strings joined (RFC 7208 §3.3),
    the records kept apart. No records (NXDOMAIN or NODATA) is an empty list."""
    try:
        answer = await dns_.lookup(name, "TXT")
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            return []
        raise
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.records]


async def mx_records(dns_: Resolver, domain: str) -> list[MXRecord]:
    """The MX records of `domain`, by preference. No records is an empty list."""
    try:
        answer = await dns_.lookup(domain, "MX")
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            return []
        raise
    return sorted(answer.records, key=lambda mx: (mx.preference, mx.exchange))


class PinnedResolver:
    """Answers a probe's lookup of one host with addresses known beforehand: those the
    guard checked (so that a second lookup answering differently, DNS rebinding, cannot
    send the probe elsewhere), or the one address a per-address probe connects to."""

    def __init__(self, host: str, addresses: Sequence[str], client: "DNSClient | None" = None):
        self.host = host
        self.addresses = tuple(addresses)
        self.client = client

    async def resolve_addresses(self, host: str) -> list[str]:
        if host != self.host:
            raise DNSError(DNSErrorKind.ERROR, host, "A", f"only {self.host} may be resolved for this probe")
        return list(self.addresses)

    def __getattr__(self, name: str):
        """Every other question (a PTR, a TLSA) goes to `client`, if there is one."""
        if self.client is None:
            raise AttributeError(f"{name}: this resolver only knows the addresses of {self.host}")
        return getattr(self.client, name)


async def addresses_of(dns_: Resolver, host: str) -> list[str]:
    """The A then AAAA addresses of `host`. Raises DNSError when it has none: with kind
    NXDOMAIN or NODATA when that is the answer, otherwise the first failure's kind."""
    results = await asyncio.gather(
        dns_.lookup(host, "A"), dns_.lookup(host, "AAAA"), return_exceptions=True
    )
    addresses: list[str] = []
    errors: list[DNSError] = []
    for result in results:
        if isinstance(result, DNSAnswer):
            addresses.extend(rdata.address for rdata in result.records)
        elif isinstance(result, DNSError):
            errors.append(result)
        else:
            raise result
    if addresses:
        return addresses
    failures = [error for error in errors if not error.kind.is_negative_answer]
    raise failures[0] if failures else errors[0]


async def ptr_names(dns_: Resolver, address: str) -> list[str]:
    """The names in the PTR records of an IP address. No records is an empty list."""
    try:
        answer = await dns_.lookup(reverse_name(address), "PTR")
    except DNSError as exc:
        if exc.kind.is_negative_answer:
            return []
        raise
    return [rdata.target for rdata in answer.records]


def reverse_name(address: str) -> str:
    """The name of an address's PTR records (in-addr.arpa, ip6.arpa), as dnspython's
    reversename wrote it: an IPv4-mapped IPv6 address under in-addr.arpa."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.reverse_pointer


def _nameservers(settings: DNSSettings) -> list[tuple[str, int]]:
    """The configured nameservers; none configured: the system's (/etc/resolv.conf)."""
    if settings.nameservers:
        return [(ns.address, ns.port) for ns in settings.nameservers]
    import dns.resolver

    system = dns.resolver.Resolver()
    return [(getattr(ns, "address", ns), getattr(ns, "port", system.port)) for ns in system.nameservers]
