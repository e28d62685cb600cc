"""The report attachments of one mail message, and what kind of report each one is.

Report mails (RFC 7489 §7.2.1.1, RFC 8460 §5.3) carry one report file: DMARC XML, plain,
gzip or zip; TLS-RPT JSON as application/tlsrpt+gzip (or +json). Receivers differ in the
content types they use (Google: application/zip, Microsoft: application/gzip, Yahoo:
application/zip, some application/octet-stream), so a part is a report candidate by its
content type or its file name, and its kind is decided by the TLS-RPT content types and
file names, or else by what it unpacks to.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import Message

from .common import RejectReason, ReportKind, ReportRejected

_REPORT_TYPES = frozenset({
    "application/gzip", "application/x-gzip", "application/zip", "application/x-zip-compressed",
    "application/x-zip", "text/xml", "application/xml", "application/tlsrpt+gzip",
    "application/tlsrpt+json", "application/json",
})
_TLSRPT_TYPES = frozenset({"application/tlsrpt+gzip", "application/tlsrpt+json"})
_REPORT_SUFFIXES = (".xml", ".xml.gz", ".zip", ".gz", ".json", ".json.gz", ".tlsrpt", ".tlsrpt.gz")


@dataclass(frozen=True)
class Attachment:
    kind: ReportKind              # UNKNOWN: to be told by its content
    data: bytes                   # as sent (maybe compressed), transfer encoding removed


def _is_report_part(part: Message) -> bool:
    if part.is_multipart():
        return False
    filename = (part.get_filename() or "").lower()
    return part.get_content_type() in _REPORT_TYPES or filename.endswith(_REPORT_SUFFIXES)


def _kind_of(part: Message) -> ReportKind:
    filename = (part.get_filename() or "").lower()
    if part.get_content_type() in _TLSRPT_TYPES or ".json" in filename or ".tlsrpt" in filename:
        return ReportKind.TLSRPT
    if ".xml" in filename or part.get_content_type() in ("text/xml", "application/xml"):
        return ReportKind.DMARC
    return ReportKind.UNKNOWN


def report_attachments(raw: bytes, max_attachments: int) -> tuple[Attachment, ...]:
    """The report files of a message; ReportRejected (no_report, too_many_attachments) otherwise."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = [part for part in message.walk() if _is_report_part(part)]
    if not parts:
        raise ReportRejected(RejectReason.NO_REPORT, "no part is a report file")
    if len(parts) > max_attachments:
        raise ReportRejected(RejectReason.TOO_MANY_ATTACHMENTS,
                             f"{len(parts)} report attachments, more than the limit of {max_attachments}")
    return tuple(Attachment(_kind_of(part), part.get_payload(decode=True) or b"") for part in parts)


def kind_of_content(data: bytes) -> ReportKind:
    """A report's kind by its unpacked content: JSON for TLS-RPT, XML for DMARC."""
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return ReportKind.TLSRPT
    if head.startswith(b"<"):
        return ReportKind.DMARC
    return ReportKind.UNKNOWN
