"""SMTP TLS Reporting records (RFC 8460 §3): where senders send TLS failure reports."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from exporter.records.common import RecordError, RecordWarning, Tag, parse_strict_record


class TLSRPTError(RecordError):
    """The _smtp._tls TXT record is invalid: senders will not report."""


@dataclass(frozen=True)
class TLSRPTRecord:
    rua: tuple[str, ...]          # the mailto: and https: URIs reports can go to
    extensions: tuple[Tag, ...]
    warnings: tuple[RecordWarning, ...]


SUPPORTED_SCHEMES = ("mailto", "https")
_SELECT = re.compile(r"v=TLSRPTv1[ \t]*(?:;|\Z)")
_MAILTO_ADDRESS = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?\Z")


def select_tlsrpt_records(txt_strings: list[str]) -> list[str]:
    """The TXT records at _smtp._tls.<domain> that begin with v=TLSRPTv1; there must be one."""
    return [text for text in txt_strings if _SELECT.match(text)]


def parse_tlsrpt(text: str) -> TLSRPTRecord:
    """Parse a TLS-RPT record; raise TLSRPTError unless it has at least one usable rua."""
    by_name = parse_strict_record(text, TLSRPTError, "TLSRPTv1", required="rua")
    rua_field = by_name["rua"]
    warnings: list[RecordWarning] = []
    uris: list[str] = []
    for uri in (item.strip(" \t") for item in rua_field.value.split(",")):
        scheme, colon, _ = uri.partition(":")
        scheme = scheme.lower()
        if not colon:
            raise TLSRPTError(f"rua {uri!r} is not a URI", rua_field.position)
        if scheme not in SUPPORTED_SCHEMES:
            warnings.append(RecordWarning(
                "unsupported_report_uri", f"rua {uri!r}: only mailto: and https: are defined"
            ))
        elif not _valid_uri(scheme, uri):
            raise TLSRPTError(f"invalid rua URI {uri!r}", rua_field.position)
        else:
            uris.append(uri)
    if not uris:
        raise TLSRPTError("rua has no mailto: or https: URI", rua_field.position)
    extensions = tuple(field for field in by_name.values() if field.name not in ("v", "rua"))
    return TLSRPTRecord(tuple(uris), extensions, tuple(warnings))


def _valid_uri(scheme: str, uri: str) -> bool:
    if re.search(r"\s", uri):
        return False
    if scheme == "mailto":
        address = urllib.parse.unquote(uri.split(":", 1)[1].split("?", 1)[0])
        return bool(_MAILTO_ADDRESS.match(address))
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port   # raises ValueError for an invalid port
    except ValueError:   # also raised for a malformed bracketed host
        return False
    return bool(parts.hostname)
