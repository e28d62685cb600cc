"""DMARC aggregate reports: the XML of RFC 7489 appendix C, and of DMARCbis where it differs.

The XML is parsed by defusedxml with DTDs forbidden: a report has no reason to carry one,
so entity expansion (billion laughs) and external entities (a local file, a URL) are
refused before anything is expanded or fetched.

DMARCbis (draft-ietf-dmarc-aggregate-reporting) differs where it matters here by: the
namespace urn:ietf:params:xml:ns:dmarc-2.0 on every element (namespaces are ignored, so
both read alike); `np`, `testing` and `discovery_method` in policy_published instead of
`pct` (none of them is needed); and the disposition `pass` for mail to which no policy was
applied, read as `none`. Only what the counters need is kept.
"""

from __future__ import annotations

import enum
import ipaddress
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import defusedxml
import defusedxml.ElementTree as SafeElementTree

from .common import RejectReason, ReportRejected

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_COUNT = 1 << 40     # messages in one row: beyond this a number is a mistake or an attack


class Disposition(enum.StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class AuthResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"


# DMARCbis's `pass` means that no policy was applied: what `none` says in RFC 7489.
_DISPOSITIONS = {"none": Disposition.NONE, "pass": Disposition.NONE,
                 "quarantine": Disposition.QUARANTINE, "reject": Disposition.REJECT}


@dataclass(frozen=True)
class DKIMSignature:
    """One DKIM result of auth_results: the signing domain (d=), its selector (s=), the result."""

    domain: str
    selector: str | None
    result: str                  # pass, fail, neutral, temperror... as reported (lower case)


@dataclass(frozen=True)
class DMARCRow:
    source_ip: IPAddress
    count: int
    disposition: Disposition
    dkim: AuthResult             # policy_evaluated: DKIM aligned and passing
    spf: AuthResult              # policy_evaluated: SPF aligned and passing
    header_from: str
    dkim_signatures: tuple[DKIMSignature, ...]

    @property
    def dmarc(self) -> AuthResult:
        """DMARC passes when aligned DKIM or aligned SPF passes (RFC 7489 §6.6.2)."""
        return AuthResult.PASS if AuthResult.PASS in (self.dkim, self.spf) else AuthResult.FAIL


@dataclass(frozen=True)
class DMARCReport:
    org_name: str
    email: str
    report_id: str
    begin: float                 # Unix seconds
    end: float
    domain: str                  # policy_published/domain, lower case, without a final dot
    rows: tuple[DMARCRow, ...]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    return next((child for child in element if _local(child.tag) == name), None)


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ElementTree.Element, path: str, *, required: bool = True) -> str | None:
    """The stripped text at a /-separated path of local names."""
    node: ElementTree.Element | None = element
    for name in path.split("/"):
        node = _child(node, name) if node is not None else None
    text = (node.text or "").strip() if node is not None else ""
    if not text:
        if required:
            raise ReportRejected(RejectReason.SCHEMA, f"<{path}> is missing or empty")
        return None
    return text


def _integer(text: str, what: str, maximum: int) -> int:
    if not text.isdigit() or len(text) > 20 or int(text) > maximum:
        raise ReportRejected(RejectReason.SCHEMA, f"{what} is not an integer from 0 to {maximum}: {text[:40]!r}")
    return int(text)


def _choice(text: str, choices: dict, what: str):
    value = choices.get(text.lower())
    if value is None:
        raise ReportRejected(RejectReason.SCHEMA, f"{what} is not one of {', '.join(choices)}: {text[:40]!r}")
    return value


_RESULTS = {"pass": AuthResult.PASS, "fail": AuthResult.FAIL}


def parse_dmarc_report(data: bytes) -> DMARCReport:
    """The report in `data` (the unpacked XML); ReportRejected (bad_xml, schema) otherwise."""
    root = _parse_xml(data)
    if _local(root.tag) != "feedback":
        raise ReportRejected(RejectReason.SCHEMA, f"the root element is <{_local(root.tag)[:40]}>, not <feedback>")
    metadata = _child(root, "report_metadata")
    published = _child(root, "policy_published")
    if metadata is None or published is None:
        raise ReportRejected(RejectReason.SCHEMA, "<report_metadata> or <policy_published> is missing")
    begin = _integer(_text(metadata, "date_range/begin"), "date_range/begin", 1 << 40)
    end = _integer(_text(metadata, "date_range/end"), "date_range/end", 1 << 40)
    if end < begin:
        raise ReportRejected(RejectReason.SCHEMA, f"date_range ends ({end}) before it begins ({begin})")
    records = _children(root, "record")
    return DMARCReport(
        org_name=_text(metadata, "org_name"),
        email=_text(metadata, "email", required=False) or "",
        report_id=_text(metadata, "report_id"),
        begin=float(begin),
        end=float(end),
        domain=_text(published, "domain").lower().rstrip("."),
        rows=tuple(_row(record, index) for index, record in enumerate(records)),
    )


def _parse_xml(data: bytes) -> ElementTree.Element:
    try:
        return SafeElementTree.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise ReportRejected(RejectReason.BAD_XML, f"refused: {type(exc).__name__}") from None
    except ElementTree.ParseError as exc:
        raise ReportRejected(RejectReason.BAD_XML, f"not well-formed: {exc}") from None


def _row(record: ElementTree.Element, index: int) -> DMARCRow:
    row = _child(record, "row")
    if row is None:
        raise ReportRejected(RejectReason.SCHEMA, f"record {index} has no <row>")
    address = _text(row, "source_ip")
    try:
        source_ip = ipaddress.ip_address(address)
    except ValueError:
        raise ReportRejected(RejectReason.SCHEMA, f"record {index}: source_ip {address[:60]!r} is not an IP address") from None
    auth = _child(record, "auth_results")
    signatures = () if auth is None else tuple(
        DKIMSignature(
            domain=(_text(dkim, "domain", required=False) or "").lower().rstrip("."),
            selector=_text(dkim, "selector", required=False),
            result=(_text(dkim, "result", required=False) or "none").lower(),
        )
        for dkim in _children(auth, "dkim")
    )
    return DMARCRow(
        source_ip=source_ip,
        count=_integer(_text(row, "count"), f"record {index}: count", MAX_COUNT),
        disposition=_choice(_text(row, "policy_evaluated/disposition"), _DISPOSITIONS, f"record {index}: disposition"),
        dkim=_choice(_text(row, "policy_evaluated/dkim"), _RESULTS, f"record {index}: policy_evaluated/dkim"),
        spf=_choice(_text(row, "policy_evaluated/spf"), _RESULTS, f"record {index}: policy_evaluated/spf"),
        header_from=(_text(record, "identifiers/header_from", required=False) or "").lower().rstrip("."),
        dkim_signatures=signatures,
    )
