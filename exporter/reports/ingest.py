"""Counting reports once: the ledger of reports seen, the counters, and the state file.

A report is identified by its kind, its reporter (organisation and contact) and its
report ID; the ledger remembers a hash of that identity for `retention` seconds in a small
JSON state file, written atomically (a temporary file renamed over the old one), so that
re-reading a mailbox or a restart counts nothing twice. The counters themselves live in
memory: after a restart they start again from zero, as Prometheus counters may.

Reporter organisations become label values, so they are normalised (lower case, a safe
alphabet, at most 64 characters) and capped: the first `reporter_slots` reporters get a
label of their own and keep it while they report (a slot is freed after `retention`
seconds of silence); every other reporter is counted as `other`. A reporter keeps the
same label for all its reports, so no count ever moves from one series to another.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from ..config.values import check_dkim_selector
from .common import RejectReason, ReportKind, ReportRejected
from .dmarc import DMARCReport
from .tlsrpt import PolicyType, ResultType, TLSReport

log = logging.getLogger(__name__)

OTHER = "other"                  # the reporter label, and the MX label, of everything not labelled
STATE_VERSION = 1
MAX_SEEN_REPORTS = 200_000       # identities kept at most, whatever the retention (about 10 MB of state)
MAX_SELECTORS_PER_DOMAIN = 10    # DKIM selectors remembered per domain, most recently seen first


class SourceClass(enum.StrEnum):
    """Whether a DMARC report's source address may send for the domain by its SPF record."""

    AUTHORIZED = "authorized"        # SPF evaluates to pass for that address
    UNAUTHORIZED = "unauthorized"    # any other result, or the domain has no SPF record
    UNKNOWN = "unknown"              # the SPF record could not be evaluated (lookup failure, permerror)


@dataclass(frozen=True)
class DMARCKey:
    domain: str
    reporter: str
    disposition: str
    dmarc: str
    dkim: str
    spf: str
    source: SourceClass


@dataclass(frozen=True)
class TLSFailureKey:
    domain: str
    reporter: str
    policy_type: PolicyType
    result_type: ResultType
    mx: str                          # a watched MX host, or "other"


@dataclass(frozen=True)
class ReportCounts:
    """A snapshot of every counter, for the metrics and the status page."""

    dmarc_messages: Mapping[DMARCKey, int]
    tlsrpt_successful: Mapping[tuple[str, str, PolicyType], int]     # (domain, reporter, policy type)
    tlsrpt_failed: Mapping[TLSFailureKey, int]
    accepted: Mapping[tuple[ReportKind, str], int]                   # (kind, domain)
    rejected: Mapping[tuple[ReportKind, RejectReason], int]
    last_received: Mapping[tuple[ReportKind, str, str], float]       # (kind, domain, reporter) -> Unix time


def normalise_reporter(org_name: str) -> str:
    """A reporter's organisation as a label value: "Enterprise Outlook" -> "enterprise outlook"."""
    text = re.sub(r"[^a-z0-9._@ -]+", "", re.sub(r"\s+", " ", org_name.lower()))
    return re.sub(" +", " ", text).strip()[:64] or "unnamed"


def report_identity(kind: ReportKind, org_name: str, contact: str, report_id: str) -> str:
    """What makes a report the same report, hashed: report IDs are the sender's text, of any length."""
    text = "\x00".join((kind.value, normalise_reporter(org_name), contact.strip().lower(), report_id.strip()))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


@dataclass
class _State:
    """What survives a restart: every field is pruned, so the file stays small."""

    seen: dict[str, float] = field(default_factory=dict)                 # identity -> when counted
    reporters: dict[str, float] = field(default_factory=dict)            # labelled reporter -> last report
    last_received: dict[str, float] = field(default_factory=dict)        # "kind|domain|reporter" -> time
    selectors: dict[str, dict[str, float]] = field(default_factory=dict)  # domain -> selector -> last seen
    imap: dict[str, list[int]] = field(default_factory=dict)             # mailbox -> [uidvalidity, last uid]

    def to_json(self) -> dict:
        return {"version": STATE_VERSION, "seen": self.seen, "reporters": self.reporters,
                "last_received": self.last_received, "selectors": self.selectors, "imap": self.imap}

    @classmethod
    def from_json(cls, document: object) -> "_State":
        if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} state document")
        return cls(
            seen={str(k): float(v) for k, v in document.get("seen", {}).items()},
            reporters={str(k): float(v) for k, v in document.get("reporters", {}).items()},
            last_received={str(k): float(v) for k, v in document.get("last_received", {}).items()},
            selectors={str(d): {str(s): float(t) for s, t in v.items()} for d, v in document.get("selectors", {}).items()},
            imap={str(k): [int(v[0]), int(v[1])] for k, v in document.get("imap", {}).items()},
        )


class ReportLedger:
    """The reports counted so far, and the counters they added to."""

    def __init__(self, state_file: str | None, retention: float, reporter_slots: int,
                 clock: Callable[[], float] = time.time):
        self.state_file = state_file
        self.retention = retention
        self.reporter_slots = reporter_slots
        self._clock = clock
        self._state = _State()
        self._dmarc: dict[DMARCKey, int] = {}
        self._successful: dict[tuple[str, str, PolicyType], int] = {}
        self._failed: dict[TLSFailureKey, int] = {}
        self._accepted: dict[tuple[ReportKind, str], int] = {}
        self._rejected: dict[tuple[ReportKind, RejectReason], int] = {}
        self.last_save_ok: bool | None = None      # None until the first save

    # --- the state file ---------------------------------------------------------------

    def load(self) -> None:
        """Read the state file if there is one. An unreadable or corrupt one is logged and
        replaced at the next save: counting again is better than counting nothing."""
        if not self.state_file:
            return
        try:
            with open(self.state_file, "rb") as file:
                self._state = _State.from_json(json.loads(file.read()))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError, IndexError) as exc:
            log.error("report state file unusable, starting afresh: %s: %s", self.state_file, exc)
            self._state = _State()
        self._prune()

    def save(self) -> bool:
        """Write the state file atomically; False (logged) when it could not be written."""
        if not self.state_file:
            return True
        self._prune()
        directory = os.path.dirname(os.path.abspath(self.state_file))
        temporary = f"{self.state_file}.tmp{os.getpid()}"
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(self._state.to_json(), file, separators=(",", ":"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.state_file)
            descriptor = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(descriptor)      # the rename itself survives a crash
            finally:
                os.close(descriptor)
            self.last_save_ok = True
        except OSError as exc:
            log.error("report state file not written: %s: %s", self.state_file, exc)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            self.last_save_ok = False
        return bool(self.last_save_ok)

    def _prune(self) -> None:
        cutoff = self._clock() - self.retention
        state = self._state
        state.seen = {key: when for key, when in state.seen.items() if when >= cutoff}
        if len(state.seen) > MAX_SEEN_REPORTS:
            newest = sorted(state.seen.items(), key=lambda item: item[1])[-MAX_SEEN_REPORTS:]
            state.seen = dict(newest)
        state.reporters = {name: when for name, when in state.reporters.items() if when >= cutoff}
        state.last_received = {key: when for key, when in state.last_received.items() if when >= cutoff}
        state.selectors = {
            domain: kept for domain, selectors in state.selectors.items()
            if (kept := {name: when for name, when in selectors.items() if when >= cutoff})
        }

    # --- reports ----------------------------------------------------------------------

    def is_duplicate(self, kind: ReportKind, org_name: str, contact: str, report_id: str) -> bool:
        return report_identity(kind, org_name, contact, report_id) in self._state.seen

    def reject(self, kind: ReportKind, reason: RejectReason) -> None:
        self._rejected[kind, reason] = self._rejected.get((kind, reason), 0) + 1

    def _admit(self, kind: ReportKind, org_name: str, contact: str, report_id: str, domains: Sequence[str]) -> str:
        """Mark the report seen and return its reporter label; DUPLICATE if it was seen."""
        identity = report_identity(kind, org_name, contact, report_id)
        if identity in self._state.seen:
            raise ReportRejected(RejectReason.DUPLICATE, f"report {report_id[:80]!r} of {org_name[:80]!r} was counted before")
        now = self._clock()
        self._state.seen[identity] = now
        reporter = self._reporter_label(normalise_reporter(org_name), now)
        for domain in domains:
            self._accepted[kind, domain] = self._accepted.get((kind, domain), 0) + 1
            self._state.last_received[f"{kind.value}|{domain}|{reporter}"] = now
        return reporter

    def _reporter_label(self, reporter: str, now: float) -> str:
        reporters = self._state.reporters
        if reporter not in reporters and len(reporters) >= self.reporter_slots:   # free the slots of the silent
            cutoff = now - self.retention
            self._state.reporters = reporters = {name: when for name, when in reporters.items() if when >= cutoff}
        if reporter in reporters or len(reporters) < self.reporter_slots:
            reporters[reporter] = now
            return reporter
        return OTHER

    def record_dmarc(self, report: DMARCReport, sources: Sequence[SourceClass]) -> None:
        """Count a DMARC report; `sources[i]` classifies the source of `report.rows[i]`."""
        reporter = self._admit(ReportKind.DMARC, report.org_name, report.email, report.report_id, (report.domain,))
        for row, source in zip(report.rows, sources, strict=True):
            key = DMARCKey(report.domain, reporter, row.disposition.value, row.dmarc.value,
                           row.dkim.value, row.spf.value, source)
            self._dmarc[key] = self._dmarc.get(key, 0) + row.count
            self._remember_selectors(report.domain, row.dkim_signatures)

    def _remember_selectors(self, domain: str, signatures) -> None:
        """Selectors of passing signatures by the domain itself: a failing one may be forged."""
        now = self._clock()
        for signature in signatures:
            if signature.result != "pass" or signature.domain != domain or not signature.selector:
                continue
            try:
                selector = check_dkim_selector(signature.selector)
            except ValueError:
                continue
            if len(f"{selector}._domainkey.{domain}") > 253:
                continue
            known = self._state.selectors.setdefault(domain, {})
            known[selector.lower()] = now
            if len(known) > MAX_SELECTORS_PER_DOMAIN:
                del known[min(known, key=known.__getitem__)]

    def record_tlsrpt(self, report: TLSReport, domains: frozenset[str], mx_label: Callable[[str | None], str]) -> None:
        """Count the policies of a TLS-RPT report about `domains` (the others are skipped)."""
        policies = [policy for policy in report.policies if policy.domain in domains]
        reporter = self._admit(ReportKind.TLSRPT, report.org_name, report.contact, report.report_id,
                               sorted({policy.domain for policy in policies}))
        for policy in policies:
            key = (policy.domain, reporter, policy.policy_type)
            self._successful[key] = self._successful.get(key, 0) + policy.successful
            for failure in policy.failures:
                failure_key = TLSFailureKey(policy.domain, reporter, policy.policy_type, failure.result_type,
                                            mx_label(failure.receiving_mx))
                self._failed[failure_key] = self._failed.get(failure_key, 0) + failure.sessions

    # --- reading ----------------------------------------------------------------------

    def counts(self) -> ReportCounts:
        last = {}
        for key, when in self._state.last_received.items():
            kind, domain, reporter = key.split("|", 2)
            last[ReportKind(kind), domain, reporter] = when
        return ReportCounts(
            dmarc_messages=MappingProxyType(dict(self._dmarc)),
            tlsrpt_successful=MappingProxyType(dict(self._successful)),
            tlsrpt_failed=MappingProxyType(dict(self._failed)),
            accepted=MappingProxyType(dict(self._accepted)),
            rejected=MappingProxyType(dict(self._rejected)),
            last_received=MappingProxyType(last),
        )

    def reported_selectors(self, domain: str) -> tuple[str, ...]:
        """DKIM selectors that passed in reports about `domain`, most recently seen first."""
        known = self._state.selectors.get(domain, {})
        return tuple(sorted(known, key=lambda name: (-known[name], name)))

    def imap_position(self, mailbox: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, the highest UID handled) of a mailbox, if it was read before."""
        position = self._state.imap.get(mailbox)
        return (position[0], position[1]) if position else None

    def set_imap_position(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        self._state.imap[mailbox] = [uidvalidity, uid]

