"""Typed, immutable probe results.

Probes return these; the store keeps the latest one per target; the collector turns
them into metrics on each scrape. Nothing here touches Prometheus.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Protocol

from .config import MailProtocol


class JobKind(enum.StrEnum):
    """What a run probes: the `kind` label of the exporter's own metrics."""

    ENDPOINT = "endpoint"
    DOMAIN = "domain"
    DEEP_SCAN = "deep_scan"
    BLOCKLIST = "blocklist"
    REVOCATION = "revocation"   # not a job of its own: runs after each endpoint probe


class FailureReason(enum.StrEnum):
    """Why a probe failed: a closed set, exported as the `reason` label."""

    DNS_ERROR = "dns_error"                       # the target's name did not resolve
    CONNECTION_REFUSED = "connection_refused"
    CONNECT_TIMEOUT = "connect_timeout"           # no TCP connection within the timeout
    CONNECTION_ERROR = "connection_error"         # reset, unreachable, closed early
    TIMEOUT = "timeout"                           # connected, but the dialogue did not finish in time
    PROTOCOL_ERROR = "protocol_error"             # garbage, over-long line, bytes before the TLS upgrade
    SERVICE_UNAVAILABLE = "service_unavailable"   # the server said no (SMTP 421/554 greeting, IMAP BYE, POP3 -ERR)
    STARTTLS_NOT_OFFERED = "starttls_not_offered"
    STARTTLS_REFUSED = "starttls_refused"
    TLS_HANDSHAKE_ERROR = "tls_handshake_error"
    INTERNAL_ERROR = "internal_error"             # a bug in the exporter; logged with its traceback


@dataclass(frozen=True)
class CertificateInfo:
    """Facts of one X.509 certificate, as presented by the server."""

    der: bytes
    subject: str                  # RFC 4514 string
    issuer: str
    serial: str                   # lower-case hex, no separators
    fingerprint_sha256: str       # lower-case hex, no separators
    sans: tuple[str, ...]         # DNS names and IP addresses from subjectAltName
    not_before: float             # Unix seconds
    not_after: float
    key_type: str                 # "rsa", "ec", "ed25519", "ed448", "dsa"; "unknown" (0 bits) if unparsable
    key_bits: int
    signature_hash: str | None    # "sha256", "sha1", ...; None for ed25519/ed448
    self_signed: bool             # issuer == subject and the signature verifies with its own key


@dataclass(frozen=True)
class TLSFacts:
    """What one TLS handshake showed."""

    version: str                          # "TLSv1.2", "TLSv1.3"
    cipher: str                           # cipher suite name
    chain: tuple[CertificateInfo, ...]    # as presented, leaf first
    chain_valid: bool                     # verified against the system store or the module's ca_file
    chain_error: str | None               # OpenSSL's verify message when not valid
    hostname_valid: bool                  # the leaf matches `verified_name` (RFC 6125)
    verified_name: str                    # the name the leaf was checked against

    @property
    def leaf(self) -> CertificateInfo:
        return self.chain[0]

    @property
    def chain_earliest_not_after(self) -> float:
        return min(cert.not_after for cert in self.chain)


class Capability(enum.StrEnum):
    """The capabilities the probe names, a closed set: the `capability` label. Which ones a
    protocol family can offer is `CAPABILITIES_BY_FAMILY`; any other is counted as unknown."""

    # SMTP extensions (EHLO keywords)
    AUTH = "AUTH"
    STARTTLS = "STARTTLS"
    REQUIRETLS = "REQUIRETLS"              # RFC 8689
    SMTPUTF8 = "SMTPUTF8"
    CHUNKING = "CHUNKING"
    BINARYMIME = "BINARYMIME"
    SIZE = "SIZE"
    PIPELINING = "PIPELINING"              # SMTP and POP3
    EIGHTBITMIME = "8BITMIME"
    DSN = "DSN"
    ENHANCEDSTATUSCODES = "ENHANCEDSTATUSCODES"
    VRFY = "VRFY"
    ETRN = "ETRN"
    # IMAP capabilities (STARTTLS above too; AUTH=... are counted as mechanisms)
    IMAP4REV1 = "IMAP4REV1"
    IMAP4REV2 = "IMAP4REV2"
    LOGINDISABLED = "LOGINDISABLED"
    SASL_IR = "SASL-IR"
    ID = "ID"
    IDLE = "IDLE"
    ENABLE = "ENABLE"
    LITERAL_PLUS = "LITERAL+"
    LITERAL_MINUS = "LITERAL-"
    LOGIN_REFERRALS = "LOGIN-REFERRALS"
    NAMESPACE = "NAMESPACE"
    UIDPLUS = "UIDPLUS"
    MOVE = "MOVE"
    CONDSTORE = "CONDSTORE"
    QRESYNC = "QRESYNC"
    SPECIAL_USE = "SPECIAL-USE"
    UTF8_ACCEPT = "UTF8=ACCEPT"
    COMPRESS_DEFLATE = "COMPRESS=DEFLATE"
    # POP3 capabilities (CAPA keywords; PIPELINING above too)
    STLS = "STLS"
    USER = "USER"
    SASL = "SASL"
    CAPA = "CAPA"
    TOP = "TOP"
    UIDL = "UIDL"
    RESP_CODES = "RESP-CODES"
    AUTH_RESP_CODE = "AUTH-RESP-CODE"
    EXPIRE = "EXPIRE"
    LOGIN_DELAY = "LOGIN-DELAY"
    IMPLEMENTATION = "IMPLEMENTATION"
    UTF8 = "UTF8"


_C = Capability
CAPABILITIES_BY_FAMILY: dict[str, tuple[Capability, ...]] = {
    "smtp": (_C.AUTH, _C.STARTTLS, _C.REQUIRETLS, _C.SMTPUTF8, _C.CHUNKING, _C.BINARYMIME, _C.SIZE,
             _C.PIPELINING, _C.EIGHTBITMIME, _C.DSN, _C.ENHANCEDSTATUSCODES, _C.VRFY, _C.ETRN),
    "imap": (_C.IMAP4REV1, _C.IMAP4REV2, _C.STARTTLS, _C.LOGINDISABLED, _C.SASL_IR, _C.ID, _C.IDLE,
             _C.ENABLE, _C.LITERAL_PLUS, _C.LITERAL_MINUS, _C.LOGIN_REFERRALS, _C.NAMESPACE, _C.UIDPLUS,
             _C.MOVE, _C.CONDSTORE, _C.QRESYNC, _C.SPECIAL_USE, _C.UTF8_ACCEPT, _C.COMPRESS_DEFLATE),
    "pop3": (_C.STLS, _C.USER, _C.SASL, _C.CAPA, _C.TOP, _C.UIDL, _C.RESP_CODES, _C.PIPELINING,
             _C.AUTH_RESP_CODE, _C.EXPIRE, _C.LOGIN_DELAY, _C.IMPLEMENTATION, _C.UTF8),
}


class AuthMechanism(enum.StrEnum):
    """SASL mechanisms the probe names (SMTP AUTH, IMAP AUTH=, POP3 SASL): the `mechanism` label."""

    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    CRAM_MD5 = "CRAM-MD5"
    DIGEST_MD5 = "DIGEST-MD5"
    SCRAM_SHA_1 = "SCRAM-SHA-1"
    SCRAM_SHA_1_PLUS = "SCRAM-SHA-1-PLUS"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS"
    XOAUTH2 = "XOAUTH2"
    OAUTHBEARER = "OAUTHBEARER"
    GSSAPI = "GSSAPI"
    NTLM = "NTLM"
    EXTERNAL = "EXTERNAL"
    ANONYMOUS = "ANONYMOUS"


class TLSPhase(enum.StrEnum):
    """When capabilities were read: the `phase` label of the capability families."""

    BEFORE_TLS = "before_tls"
    AFTER_TLS = "after_tls"


@dataclass(frozen=True)
class OfferedCapabilities:
    """One capability list, classified against the closed sets above."""

    family: str                                 # "smtp", "imap" or "pop3"
    capabilities: frozenset[Capability]         # only those of CAPABILITIES_BY_FAMILY[family]
    auth_mechanisms: frozenset[AuthMechanism]
    unknown: int                                # distinct keywords and mechanisms outside the sets


class NamePair(enum.StrEnum):
    """Two names of an SMTP server that should agree: the `pair` label."""

    GREETING_EHLO = "greeting_ehlo"
    GREETING_PTR = "greeting_ptr"
    GREETING_CERT = "greeting_cert"
    EHLO_PTR = "ehlo_ptr"
    EHLO_CERT = "ehlo_cert"
    PTR_CERT = "ptr_cert"


@dataclass(frozen=True)
class NameFacts:
    """The names an SMTP server gives itself, and which pairs of them disagree.

    Names are lower case without a final dot; None where the server gave no host name (or
    the PTR was not looked up, or its lookup failed). A pair is compared only when both of
    its names are known: `compared` holds those, `disagreeing` the ones that differ.
    """

    greeting_name: str | None
    ehlo_name: str | None
    ptr_names: tuple[str, ...] | None           # every PTR name of the connected address
    ptr_confirmed: tuple[str, ...] | None       # those that resolve back to it (FCrDNS)
    cert_names: tuple[str, ...] | None          # the leaf's DNS SANs
    compared: frozenset[NamePair] = frozenset()
    disagreeing: frozenset[NamePair] = frozenset()


@dataclass(frozen=True)
class EndpointResult:
    """The outcome of one run of the mail-endpoint probe."""

    success: bool
    failure: FailureReason | None         # None exactly when success
    failure_detail: str                   # human-readable, for logs and the status page; never a label
    observed_at: float                    # Unix seconds when the probe started
    duration_seconds: float
    address: str | None = None            # the IP address connected to
    starttls_offered: bool | None = None  # None where STARTTLS does not apply (implicit TLS)
    plaintext_auth_exposed: bool | None = None  # None where it could not be determined
    capabilities_before_tls: tuple[str, ...] = ()
    capabilities_after_tls: tuple[str, ...] = ()
    tls: TLSFacts | None = None
    # The server's certificates of other key types (an ECDSA one next to RSA), each chain as
    # presented, when asked for (MX hosts with TLSA records): a sender may be given either.
    other_chains: tuple[tuple[CertificateInfo, ...], ...] = ()
    connect_seconds: float | None = None
    greeting_seconds: float | None = None
    tls_handshake_seconds: float | None = None
    transcript: tuple[str, ...] = ()      # the dialogue, for /probe?debug=true and the status page
    protocol: MailProtocol | None = None  # the module's protocol
    # 1 when the server lets no mail and no password through before TLS: SMTP MAIL FROM refused
    # (530 or 5.7.x) and no AUTH advertised; IMAP/POP3 no login of any kind offered. None where
    # not determined (implicit TLS, an inconclusive reply, POP3 without CAPA).
    starttls_enforced: bool | None = None
    offered_before_tls: OfferedCapabilities | None = None   # None for implicit TLS
    offered_after_tls: OfferedCapabilities | None = None    # None without a TLS dialogue
    names: NameFacts | None = None        # SMTP only
    open_relay: bool | None = None        # None unless the module's open_relay_test ran to a verdict
    # How often the scheduler runs this probe (the module's interval), so that alerts can
    # tell a late result from one on schedule; None for /probe and the CLI.
    interval_seconds: float | None = None


def address_order(address: str) -> tuple[int, int]:
    """Sort key: IPv4 before IPv6, each in numeric order, whatever order DNS answered in."""
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


@dataclass(frozen=True)
class HostResult:
    """One run of the endpoint probe against every address of a host (each a server of its
    own for a sending MTA). `addresses` is in `address_order`, so that two runs against an
    unchanged host report the same thing in the same order."""

    observed_at: float
    duration_seconds: float
    addresses: tuple[EndpointResult, ...]          # one per probed address
    skipped: tuple[tuple[str, SkipReason], ...] = ()
    resolve_failure: FailureReason | None = None   # set when no address could be found
    resolve_detail: str = ""
    interval_seconds: float | None = None          # as EndpointResult.interval_seconds

    @property
    def success(self) -> bool:
        """Every probed address completed its dialogue and handshake."""
        return self.resolve_failure is None and bool(self.addresses) and all(r.success for r in self.addresses)

    @property
    def failed(self) -> tuple[EndpointResult, ...]:
        return tuple(result for result in self.addresses if not result.success)

    @property
    def failure(self) -> FailureReason | None:
        """Why the host is not fully healthy: the lookup's failure, else the first failing address's."""
        if self.resolve_failure is not None:
            return self.resolve_failure
        return self.failed[0].failure if self.failed else None

    @property
    def failure_detail(self) -> str:
        if self.resolve_failure is not None:
            return self.resolve_detail
        if len(self.addresses) == 1:
            return self.addresses[0].failure_detail
        return "; ".join(f"{r.address}: {r.failure_detail}" for r in self.failed)

    @property
    def refused_everywhere(self) -> frozenset[FailureReason]:
        """The failure reasons when every probed address failed (empty otherwise)."""
        if self.resolve_failure is not None or not self.addresses or len(self.failed) < len(self.addresses):
            return frozenset()
        return frozenset(result.failure for result in self.addresses)

    @property
    def consistent(self) -> bool | None:
        """Whether the addresses that answered agree: same leaf certificate, TLS version and
        cipher suite; None when fewer than two answered with TLS."""
        seen = {(r.tls.leaf.fingerprint_sha256, r.tls.version, r.tls.cipher)
                for r in self.addresses if r.tls is not None and r.tls.chain}
        answered = sum(1 for r in self.addresses if r.tls is not None and r.tls.chain)
        return None if answered < 2 else len(seen) == 1

    def chains(self) -> dict[str, tuple[tuple[bytes, ...], ...]]:
        """Every certificate chain (DER, leaf first) each address presented: the one a
        default handshake gets, then those of its other key types."""
        return {r.address: tuple(tuple(cert.der for cert in chain) for chain in (r.tls.chain, *r.other_chains))
                for r in self.addresses if r.address is not None and r.tls is not None}


class AddressFamily(enum.StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @classmethod
    def of(cls, address: str) -> "AddressFamily":
        return cls.IPV6 if ipaddress.ip_address(address).version == 6 else cls.IPV4


class SkipReason(enum.StrEnum):
    """Why an address of a host was not probed: never the server's fault."""

    OVER_LIMIT = "over_limit"     # the host has more addresses than are probed (MAX_ADDRESSES_PER_HOST)
    NO_ROUTE = "no_route"         # the exporter's machine has no route to it (commonly: no IPv6)


class ProbeOutcome(Protocol):
    """What every probe and scan result has."""

    success: bool
    failure: FailureReason | None
    failure_detail: str
    observed_at: float
    duration_seconds: float


def outcome_fields(result: ProbeOutcome) -> dict[str, object]:
    """The outcome every probe and scan result has, JSON-ready (status page, reports)."""
    return {
        "success": result.success,
        "failure": result.failure.value if result.failure else None,
        "failure_detail": result.failure_detail,
        "observed_at": result.observed_at,
        "duration_seconds": result.duration_seconds,
    }
