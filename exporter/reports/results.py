"""What the report ingestion shows: the counters, the mailbox poller's last poll, and the
TLS-RPT failures our own probes contradict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .ingest import ReportCounts
from .tlsrpt import ResultType


@dataclass(frozen=True)
class PollStatus:
    """The last poll of the report mailbox."""

    observed_at: float              # Unix seconds when it started
    success: bool
    detail: str                     # what it read, or why it failed; for the log and the status page
    mails: int = 0                  # mails handled (counted or rejected)

    def to_json(self) -> dict:
        return {"observed_at": self.observed_at, "success": self.success, "detail": self.detail, "mails": self.mails}


@dataclass(frozen=True)
class Contradiction:
    """Senders report a TLS failure on an MX host that our own probe of it does not see:
    a path or an address we do not probe (another MX address, a middlebox, IPv6)."""

    domain: str
    mx: str
    result_type: ResultType
    reported_until: float           # the end of the newest report's date range
    probed_at: float                # when our probe saw otherwise
    message: str

    def to_json(self) -> dict:
        return {"domain": self.domain, "mx": self.mx, "result_type": self.result_type.value,
                "reported_until": self.reported_until, "probed_at": self.probed_at, "message": self.message}


@dataclass(frozen=True)
class ReportsSnapshot:
    counts: ReportCounts
    poll: PollStatus | None                         # None: no mailbox, or not polled yet
    contradictions: tuple[Contradiction, ...]
    domain_labels: Mapping[str, Mapping[str, str]]  # the user labels of each configured domain
    state_saved: bool | None                        # the last write of the state file; None: none yet
