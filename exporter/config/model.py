"""The configuration as the rest of the exporter sees it: typed, immutable settings.

Everything the exporter reads from the config file is one of the frozen dataclasses
below; `loader.load_config` builds them.
"""

from __future__ import annotations

import enum
import fnmatch
import ipaddress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


class MailProtocol(enum.StrEnum):
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
        return self in (MailProtocol.SMTPS, MailProtocol.IMAPS, MailProtocol.POP3S)

    @property
    def family(self) -> str:
        """The dialogue spoken over the connection: "smtp", "imap" or "pop3"."""
        return _FAMILIES[self]


_DEFAULT_PORTS = {
    MailProtocol.SMTP: 25,
    MailProtocol.SUBMISSION: 587,
    MailProtocol.SMTPS: 465,
    MailProtocol.IMAP: 143,
    MailProtocol.IMAPS: 993,
    MailProtocol.POP3: 110,
    MailProtocol.POP3S: 995,
}
_FAMILIES = {
    MailProtocol.SMTP: "smtp",
    MailProtocol.SUBMISSION: "smtp",
    MailProtocol.SMTPS: "smtp",
    MailProtocol.IMAP: "imap",
    MailProtocol.IMAPS: "imap",
    MailProtocol.POP3: "pop3",
    MailProtocol.POP3S: "pop3",
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
    # Not configurable: set by the exporter to ask a server for its certificate of this key
    # type ("rsa", "ec") with a TLS 1.2 handshake offering only suites signed with it.
    only_key_type: str | None = None


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
class OpenRelayTest:
    """The opt-in open-relay test of an SMTP module: MAIL FROM `sender`, RCPT TO `recipient`,
    then RSET; never DATA. The recipient must be an outside address its admin controls."""

    recipient: str            # local@domain, outside every domain the server is the destination for
    sender: str = ""          # "" is the null reverse-path, MAIL FROM:<>


@dataclass(frozen=True)
class Module:
    name: str
    protocol: MailProtocol
    port: int                 # the protocol's default unless set
    starttls: StartTLS        # default: required for smtp/submission/imap/pop3, none otherwise
    timeout: float            # seconds; default: global timeout
    interval: float           # seconds; default: global interval
    tls: TLSSettings = TLSSettings()
    ehlo: str = "mailsec-exporter.localhost"
    deep_scan: DeepScanSettings | None = None   # None: no deep TLS scan for this module
    open_relay_test: OpenRelayTest | None = None   # None: no open-relay test (the default)
    check_ptr: bool = False   # SMTP: compare the connected address's PTR with the server's names


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
    # Selectors of dkim_selectors that were not configured but seen signing in DMARC reports
    # (added at run time, not read from the file): a missing key there is a retired selector.
    reported_dkim_selectors: tuple[str, ...] = ()
    # Check the addresses its SPF authorises against the IP blocklists; None: blocklists.spf_addresses.
    blocklist_spf: bool | None = None


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
    revocation_checks: bool = True    # ask the CAs (OCSP, CRL) whether the presented certificates are revoked


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


class BlocklistKind(enum.StrEnum):
    """What a DNS blocklist lists (RFC 5782): IP addresses, or domain names."""

    IP = "ip"
    DOMAIN = "domain"


class ListingMeaning(enum.StrEnum):
    """What a listing says, whichever list made it: the `meaning` label, a closed set."""

    SPAM = "spam"                 # a source of spam (Spamhaus SBL, SpamCop, Barracuda, PSBL, UCEPROTECT)
    SNOWSHOE = "snowshoe"         # spam spread thin over many addresses (Spamhaus CSS)
    EXPLOITED = "exploited"       # a compromised host, a bot, an open proxy (Spamhaus XBL)
    HIJACKED = "hijacked"         # a stolen or criminal netblock (Spamhaus DROP)
    # An end-user or dynamic range that should not send mail directly (Spamhaus PBL):
    # normal for an MX that only receives, wrong for an address that sends.
    POLICY = "policy"
    PHISHING = "phishing"
    MALWARE = "malware"
    BOTNET_CC = "botnet_cc"       # a botnet command-and-control host
    ABUSED = "abused"             # a legitimate domain or redirector abused by spammers (Spamhaus DBL 127.0.1.1xx)
    POOR_REPUTATION = "poor_reputation"   # a reputation list's bad grades (Mailspike L1-L5)
    OTHER = "other"               # a code the list's `codes` do not name


@dataclass(frozen=True)
class ReturnCodes:
    """Answers from `first` to `last` (both included) mean `meaning`."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    meaning: ListingMeaning


@dataclass(frozen=True)
class Blocklist:
    """One DNS blocklist (DNSBL/RBL) the exporter queries."""

    name: str                         # the `list` label
    zone: str                         # e.g. zen.spamhaus.org, without the query key
    kind: BlocklistKind
    codes: tuple[ReturnCodes, ...] = ()
    # Answers that say "you may not query" (Spamhaus: 127.255.255.252/254/255), each a
    # (first, last) range: an error of the list, never a listing.
    refusal_codes: tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...] = ()
    query_key: str | None = None      # put before the zone (Spamhaus DQS: <key>.zen.dq.spamhaus.net); a secret
    interval: float = 3600.0          # seconds between two runs of the list
    removal_url: str | None = None    # where a listed address or name asks for removal
    # The entries that must be listed and must not be (RFC 5782 §5); None: the RFC's
    # (127.0.0.2 and 127.0.0.1 for IP lists, test and invalid for domain lists).
    test_listed: str | None = None
    test_not_listed: str | None = None

    @property
    def query_zone(self) -> str:
        """The zone queries are made under: the key, if any, before the zone."""
        return f"{self.query_key}.{self.zone}" if self.query_key else self.zone


@dataclass(frozen=True)
class BlocklistSettings:
    """The `blocklists:` section: which lists, and what else is checked against them."""

    lists: tuple[Blocklist, ...] = ()
    spf_addresses: bool = False       # also the addresses each domain's SPF authorises (per domain: blocklist_spf)
    concurrency: int = 8              # queries to one list at once


class IMAPSecurity(enum.StrEnum):
    TLS = "tls"              # implicit TLS (IMAPS, port 993)
    STARTTLS = "starttls"    # IMAP on port 143, then STARTTLS (required)


class ProcessedAction(enum.StrEnum):
    """What the mailbox poller does with a mail it has read (counted or rejected)."""

    LEAVE = "leave"          # nothing: the state file remembers how far it read
    FLAG = "flag"            # set `processed_flag` (\\Seen or a keyword)
    MOVE = "move"            # move it to `processed_folder`


MiB = 1024 * 1024


@dataclass(frozen=True)
class ReportLimits:
    """What a report may weigh: reports are untrusted input from anyone who can send mail."""

    max_message_bytes: int = 25 * MiB          # one mail, refused by its size before it is downloaded
    max_attachments: int = 5                   # report files in one mail
    max_compressed_bytes: int = 10 * MiB       # one report file (or HTTP body) as received
    max_decompressed_bytes: int = 50 * MiB     # what it unpacks to
    max_ratio: float = 200.0                   # unpacked / packed, above the first MiB


@dataclass(frozen=True)
class IMAPSource:
    """The mailbox that the rua addresses deliver to."""

    host: str
    username: str
    password_file: str | None                  # exactly one of password_file and password_env
    password_env: str | None
    port: int = 993
    security: IMAPSecurity = IMAPSecurity.TLS
    ca_file: str | None = None                 # None: the system trust store
    server_name: str | None = None             # the name the certificate must match; default: host
    folder: str = "INBOX"
    processed: ProcessedAction = ProcessedAction.LEAVE
    processed_flag: str = "\\Seen"
    processed_folder: str | None = None        # required by processed: move
    interval: float = 300.0
    timeout: float = 60.0                      # seconds for one IMAP command (the socket timeout)
    batch: int = 50                            # mails read per poll at most

    @property
    def mailbox(self) -> str:
        """The identity of the folder read, for the state file."""
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class ReportReceiver:
    """The HTTPS receiver of TLS-RPT reports (RFC 8460 §3), on a listen address of its own."""

    listen_address: tuple[str | None, int]     # None: every interface
    path: str = "/tlsrpt"
    web_config_file: str | None = None         # TLS and basic auth, in the --web.config.file format


@dataclass(frozen=True)
class ReportSettings:
    state_file: str = "/var/lib/mailsec-exporter/reports-state.json"
    retention: float = 30 * 86400.0            # report IDs are remembered this long
    reporter_labels: int = 20                  # reporters with a label of their own; the others: "other"
    correlation_window: float = 2 * 86400.0    # TLS-RPT failures this recent are compared with our probes
    limits: ReportLimits = ReportLimits()
    imap: IMAPSource | None = None
    http: ReportReceiver | None = None


@dataclass(frozen=True)
class Config:
    global_: GlobalSettings = GlobalSettings()
    dns: DNSSettings = DNSSettings()
    probe: ProbeSettings = ProbeSettings()
    domain_checks: DomainCheckSettings = DomainCheckSettings()
    modules: Mapping[str, Module] = field(default_factory=lambda: MappingProxyType({}))
    targets: tuple[Target, ...] = ()
    domains: tuple[Domain, ...] = ()
    blocklists: BlocklistSettings = BlocklistSettings()
    reports: ReportSettings | None = None       # None: no report ingestion
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
    "selector", "mx", "address", "family", "zone", "check", "qualifier", "class", "group",
    "capability", "mechanism", "pair", "protocol",
    # the reports' metrics (docs/reports.md)
    "reporter", "disposition", "dmarc", "dkim", "spf", "source", "policy_type", "result_type", "kind",
})

