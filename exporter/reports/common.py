"""What every report parser shares: the kinds of report and why one is rejected."""

from __future__ import annotations

import enum


class ReportKind(enum.StrEnum):
    DMARC = "dmarc"
    TLSRPT = "tlsrpt"
    UNKNOWN = "unknown"      # refused before its kind could be told (a mail without a report)


class RejectReason(enum.StrEnum):
    """Why a report was not counted: a closed set, exported as the `reason` label."""

    TOO_LARGE = "too_large"                        # over a size limit, compressed or not, or a mail over its cap
    TOO_MANY_ATTACHMENTS = "too_many_attachments"  # a mail with more report attachments than allowed
    NO_REPORT = "no_report"                        # a mail without any report attachment
    CONTENT_TYPE = "content_type"                  # an HTTP POST that is not application/tlsrpt+gzip or +json
    BAD_ARCHIVE = "bad_archive"                    # broken gzip or zip, encrypted or several files in a zip
    BAD_XML = "bad_xml"                            # not well-formed XML, or a DTD or entity (refused outright)
    BAD_JSON = "bad_json"                          # not JSON, or nested too deeply
    SCHEMA = "schema"                              # well-formed, but a field is missing or malformed (dates...)
    DUPLICATE = "duplicate"                        # the same reporter and report ID was counted before
    UNKNOWN_DOMAIN = "unknown_domain"              # about a domain that is not in `domains:`
    INTERNAL_ERROR = "internal_error"              # a bug of ours (logged with its traceback)


class ReportRejected(Exception):
    """A report that is not counted, with the reason and a detail for the log."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
