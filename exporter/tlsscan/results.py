"""Typed, immutable results of a deep TLS scan. Nothing here touches the network or Prometheus."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import CertificateInfo, FailureReason
from ..tlswire import ProtocolVersion, group_name
from ..tlswire.grading import Class
from .stapling import StapledResponse


@dataclass(frozen=True)
class VersionSupport:
    """Whether the server accepted a hello offering exactly one protocol version, and why (not)."""

    version: ProtocolVersion
    supported: bool
    # "accepted", "alert_<name>" (e.g. alert_protocol_version), "answered_<version>" (it picked
    # another version), "closed", "timeout", "protocol_error" (garbage), "suite_not_offered".
    reason: str


@dataclass(frozen=True)
class AcceptedCipher:
    """One cipher suite (SSLv2: cipher kind) the server accepted for one version."""

    version: ProtocolVersion
    code: int              # 2-byte TLS suite, or 3-byte SSLv2 kind
    name: str              # IANA name (SSLv2: SSL_CK_... from the SSL 2.0 draft)
    grade: Class


@dataclass(frozen=True)
class GroupSupport:
    """A key-exchange group the server picked when offered, in TLS 1.2 (ECDHE) or TLS 1.3 (key_share).
    Each group is listed once, with the version whose answer showed it first (the scan does not
    ask again about a group it has seen)."""

    version: ProtocolVersion
    group: int             # NamedGroup code
    grade: Class

    @property
    def name(self) -> str:
        return group_name(self.group)


@dataclass(frozen=True)
class Resumption:
    """One way of resuming a session (by session ID, by ticket): a first handshake, then a
    second one on a new connection asking to resume the session the first one established."""

    resumed: bool | None           # None: could not tell, `detail` says why
    # "resumed", "not resumed", "no session ID given", "no ticket given", "only TLS 1.3 ...",
    # "handshake failed: ...", "second handshake failed: ...", "no answer within ..."
    detail: str
    version: ProtocolVersion | None = None     # the version of the first handshake


@dataclass(frozen=True)
class SessionResumption:
    """Session resumption by session ID (TLS <= 1.2, tickets not offered) and by ticket (RFC 5077
    in TLS <= 1.2, PSK in TLS 1.3; in the best version the server speaks)."""

    session_id: Resumption
    ticket: Resumption
    # From the server's NewSessionTicket (the last one, TLS 1.3 servers send several), in
    # seconds; 0 in TLS 1.2 means "not specified". None: no ticket was received.
    ticket_lifetime_hint: int | None = None
    handshake_completed: bool = True   # False: not one real handshake completed (nothing else was tried)


@dataclass(frozen=True)
class ClientRenegotiation:
    """Client-initiated renegotiation (TLS <= 1.2; TLS 1.3 has none) on one connection."""

    accepted: bool | None          # the server completed a renegotiation we started; None: could not tell
    # Renegotiations accepted in a row on that connection, up to renegotiation.MAX_RENEGOTIATIONS
    # (then it would accept more: a CPU-exhaustion lever). None when not known (no verdict,
    # or the connection's timeout ended the series).
    in_a_row: int | None
    detail: str                    # "refused: <alert or error>", "closed", "accepted", why None


@dataclass(frozen=True)
class TLSScanResult:
    """Everything one scan of an endpoint found. On failure, what was learnt before it is kept."""

    success: bool
    failure: FailureReason | None          # None exactly when success
    failure_detail: str
    observed_at: float                     # Unix seconds when the scan started
    duration_seconds: float
    connections: int                       # TCP connections opened (the scarce resource)
    address: str | None = None             # the IP address scanned
    versions: tuple[VersionSupport, ...] = ()
    ciphers: tuple[AcceptedCipher, ...] = ()   # per version in the order found (server order if it has one)
    # Per version with at least two accepted suites: True when the server picks by its own
    # preference, False when it follows the client's order.
    server_cipher_order: tuple[tuple[ProtocolVersion, bool], ...] = ()
    groups: tuple[GroupSupport, ...] = ()
    # The group an ordinary client's hello gets (its usual groups in its order, an X25519 key
    # share): one for TLS 1.3 (key share), one for TLS 1.2 (ECDHE curve), where the scan saw
    # it. This, not every group accepted when forced, is what the grade rates.
    normal_client_groups: tuple[GroupSupport, ...] = ()
    dh_min_size: int | None = None         # smallest DHE prime (bits) seen in a ServerKeyExchange
    dh_grade: Class | None = None          # the worst DH parameters seen, per tlswire.grading
    secure_renegotiation: bool | None = None   # RFC 5746, from TLS <= 1.2 ServerHellos; None: none seen
    compression: bool | None = None            # the server picked DEFLATE; None: no TLS <= 1.2 hello answered
    extended_master_secret: bool | None = None
    ocsp_stapling: bool | None = None      # a CertificateStatus with a successful OCSP response came
    ocsp_staple: StapledResponse | None = None   # the first such response
    # The server executes a command pipelined after STARTTLS inside TLS (CVE-2011-0411 and
    # kin); None for implicit TLS or when the check could not be made.
    starttls_injection: bool | None = None
    # RFC 7507: a hello of the second-best version with TLS_FALLBACK_SCSV was refused with
    # inappropriate_fallback. None: fewer than two versions, or an answer that says nothing.
    fallback_scsv: bool | None = None
    session_resumption: SessionResumption | None = None       # None: not checked (the scan failed before)
    client_renegotiation: ClientRenegotiation | None = None   # None: not checked
    # internet.nl's cipher order test: the server prefers a phase_out suite over a better one in
    # its highest version below TLS 1.3. None: the order is not known.
    cipher_order_violation: bool | None = None
    # Distinct leaf certificates seen: TLS <= 1.2 and SSLv2 flights, else one TLS 1.3 handshake.
    certificates: tuple[CertificateInfo, ...] = ()
    grade: Class | None = None             # worst class of everything above; None when nothing was accepted

    def supported_versions(self) -> tuple[ProtocolVersion, ...]:
        return tuple(v.version for v in self.versions if v.supported)

    def ciphers_for(self, version: ProtocolVersion) -> tuple[AcceptedCipher, ...]:
        return tuple(c for c in self.ciphers if c.version == version)
