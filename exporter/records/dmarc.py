"""DMARC policy records (RFC 7489, with the DMARCbis tags np, psd and t).

Error handling follows RFC 7489: a record that does not start with v=DMARC1 or has no
valid policy is unusable (DMARCError), except that a missing or invalid p/sp next to a
valid rua counts as p=none (§6.6.3). Other invalid values are ignored in favour of the
defaults (§6.3); each such case, and each unknown tag, becomes a warning.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeVar

from exporter.records.common import RecordError, RecordWarning, Tag, parse_tag_list, split_list, tag_map


class DMARCError(RecordError):
    """The record is not a usable DMARC record."""


class Policy(enum.StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class Alignment(enum.StrEnum):
    RELAXED = "r"
    STRICT = "s"


class PublicSuffixDomain(enum.StrEnum):
    YES = "y"
    NO = "n"
    UNKNOWN = "u"


@dataclass(frozen=True)
class ReportURI:
    uri: str                # without the "!size" suffix
    scheme: str             # lower-case, e.g. "mailto"
    max_size: int | None    # octets, from the "!size" suffix

    @property
    def address(self) -> str | None:
        """The mail address of a mailto: URI (before any "?" header fields)."""
        if self.scheme != "mailto":
            return None
        return self.uri.split(":", 1)[1].split("?", 1)[0]

    @property
    def domain(self) -> str | None:
        """The domain of a mailto: address, lower-case: needed to check whether reports
        go to another domain, which must then consent (RFC 7489 §7.1)."""
        address = self.address
        return address.rpartition("@")[2].lower().rstrip(".") if address else None


@dataclass(frozen=True)
class DMARCRecord:
    text: str
    policy: Policy
    subdomain_policy: Policy                 # sp, default p
    nonexistent_subdomain_policy: Policy     # np, default sp
    percent: int                             # pct
    dkim_alignment: Alignment                # adkim
    spf_alignment: Alignment                 # aspf
    failure_options: tuple[str, ...]         # fo
    report_formats: tuple[str, ...]          # rf
    report_interval: int                     # ri, seconds
    aggregate_report_uris: tuple[ReportURI, ...]   # rua
    failure_report_uris: tuple[ReportURI, ...]     # ruf
    public_suffix_domain: PublicSuffixDomain       # psd
    testing: bool                            # t=y
    policy_from_rua_fallback: bool           # p/sp invalid or missing, p=none assumed
    tags: tuple[Tag, ...]                    # as written, names lower-case
    warnings: tuple[RecordWarning, ...]


class _YesNo(enum.StrEnum):   # the t= tag
    YES = "y"
    NO = "n"


T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)

DMARC_VERSION = "DMARC1"
KNOWN_TAGS = frozenset(
    {"v", "p", "sp", "np", "pct", "adkim", "aspf", "fo", "rf", "ri", "rua", "ruf", "psd", "t"}
)
_SELECT = re.compile(r"[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|\Z)")
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):([^\s!]+)(?:!([0-9]+)([kmgtKMGT]?))?\Z")
_MAILTO_ADDRESS = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?\Z")
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_FAILURE_OPTIONS = frozenset({"0", "1", "d", "s"})


def select_dmarc_records(txt_strings: list[str]) -> list[str]:
    """The TXT records that are DMARC records: they start with a v=DMARC1 tag (§6.6.3).
    A domain needs exactly one."""
    return [text for text in txt_strings if _SELECT.match(text)]


def parse_dmarc(text: str) -> DMARCRecord:
    """Parse one DMARC record (its TXT strings joined); raise DMARCError if unusable."""
    tags = parse_tag_list(text, DMARCError, case_insensitive_names=True)
    if not tags or tags[0].name != "v":
        raise DMARCError("a DMARC record must start with v=DMARC1", 0)
    if tags[0].value != DMARC_VERSION:
        raise DMARCError(f"version must be exactly {DMARC_VERSION!r}, not {tags[0].value!r}",
                         tags[0].position)
    by_name = tag_map(tags)
    warnings: list[RecordWarning] = []
    rua = _report_uris(by_name.get("rua"), warnings)
    ruf = _report_uris(by_name.get("ruf"), warnings)

    policy = _policy(by_name.get("p"))
    subdomain_policy = _policy(by_name["sp"]) if "sp" in by_name else policy
    fallback = policy is None or subdomain_policy is None
    if fallback:
        problem, position = _policy_problem(by_name)
        if not rua:
            raise DMARCError(problem, position)
        warnings.append(RecordWarning(
            "policy_from_rua_fallback",
            f"{problem}; with a valid rua receivers act as if p=none (RFC 7489 §6.6.3)",
        ))
        policy = subdomain_policy = Policy.NONE
    assert policy is not None and subdomain_policy is not None

    nonexistent_policy = subdomain_policy
    if "np" in by_name:
        nonexistent_policy = _policy(by_name["np"]) or _ignored(
            by_name["np"], subdomain_policy, warnings
        )
    fo = _failure_options(by_name.get("fo"), warnings)
    if "p" in by_name and tags[1].name != "p":
        warnings.append(RecordWarning("p_not_second", "p must come right after v (RFC 7489 §6.3 grammar)"))
    for tag in tags:
        if tag.name not in KNOWN_TAGS:
            warnings.append(RecordWarning("unknown_tag", f"unknown tag {tag.name!r} is ignored"))

    return DMARCRecord(
        text=text,
        policy=policy,
        subdomain_policy=subdomain_policy,
        nonexistent_subdomain_policy=nonexistent_policy,
        percent=_percent(by_name.get("pct"), warnings),
        dkim_alignment=_choice(by_name.get("adkim"), Alignment, Alignment.RELAXED, warnings),
        spf_alignment=_choice(by_name.get("aspf"), Alignment, Alignment.RELAXED, warnings),
        failure_options=fo,
        report_formats=_report_formats(by_name.get("rf"), warnings),
        report_interval=_report_interval(by_name.get("ri"), warnings),
        aggregate_report_uris=rua,
        failure_report_uris=ruf,
        public_suffix_domain=_choice(
            by_name.get("psd"), PublicSuffixDomain, PublicSuffixDomain.UNKNOWN, warnings
        ),
        testing=_choice(by_name.get("t"), _YesNo, _YesNo.NO, warnings) == _YesNo.YES,
        policy_from_rua_fallback=fallback,
        tags=tags,
        warnings=tuple(warnings),
    )


def _policy(tag: Tag | None) -> Policy | None:
    if tag is None:
        return None
    try:
        return Policy(tag.value.lower())
    except ValueError:
        return None


def _policy_problem(by_name: dict[str, Tag]) -> tuple[str, int | None]:
    """What is wrong with p or sp, and where."""
    if "p" not in by_name:
        return "the required tag 'p' is missing", None
    if _policy(by_name["p"]) is None:
        return f"invalid policy p={by_name['p'].value!r}", by_name["p"].position
    return f"invalid subdomain policy sp={by_name['sp'].value!r}", by_name["sp"].position


def _ignored(tag: Tag, default: T, warnings: list[RecordWarning]) -> T:
    warnings.append(RecordWarning(
        "invalid_tag_value",
        f"invalid value {tag.name}={tag.value!r} is ignored; the default {default!s} applies",
    ))
    return default


def _choice(
    tag: Tag | None, kind: type[E], default: E, warnings: list[RecordWarning]
) -> E:
    if tag is None:
        return default
    try:
        return kind(tag.value.lower())
    except ValueError:
        return _ignored(tag, default, warnings)


def _percent(tag: Tag | None, warnings: list[RecordWarning]) -> int:
    if tag is None:
        return 100
    if re.fullmatch(r"[0-9]{1,3}", tag.value) and int(tag.value) <= 100:
        return int(tag.value)
    return _ignored(tag, 100, warnings)


def _report_interval(tag: Tag | None, warnings: list[RecordWarning]) -> int:
    if tag is None:
        return 86400
    if re.fullmatch(r"[0-9]{1,10}", tag.value) and int(tag.value) < 2**32:
        return int(tag.value)
    return _ignored(tag, 86400, warnings)


def _failure_options(tag: Tag | None, warnings: list[RecordWarning]) -> tuple[str, ...]:
    if tag is None:
        return ("0",)
    options = tuple(option.lower() for option in split_list(tag.value, ":"))
    if all(option in _FAILURE_OPTIONS for option in options):
        return options
    return _ignored(tag, ("0",), warnings)


def _report_formats(tag: Tag | None, warnings: list[RecordWarning]) -> tuple[str, ...]:
    if tag is None:
        return ("afrf",)
    formats = tuple(name.lower() for name in split_list(tag.value, ":"))
    if formats and all(re.fullmatch(r"[a-z0-9]+", name) for name in formats):
        if "afrf" not in formats:
            warnings.append(RecordWarning(
                "unknown_report_format", f"rf={tag.value!r}: only 'afrf' is defined"
            ))
        return formats
    return _ignored(tag, ("afrf",), warnings)


def _report_uris(tag: Tag | None, warnings: list[RecordWarning]) -> tuple[ReportURI, ...]:
    """The valid URIs of rua/ruf; invalid ones are dropped with a warning (§6.3)."""
    if tag is None:
        return ()
    uris: list[ReportURI] = []
    for item in split_list(tag.value, ","):
        uri = _report_uri(item)
        if uri is None:
            warnings.append(RecordWarning(
                "invalid_report_uri", f"{tag.name}: {item!r} is not a valid URI and is ignored"
            ))
            continue
        if uri.scheme != "mailto":
            warnings.append(RecordWarning(
                "unsupported_report_uri",
                f"{tag.name}: receivers are only required to support mailto:, not {item!r}",
            ))
        uris.append(uri)
    return tuple(uris)


def _report_uri(text: str) -> ReportURI | None:
    match = _URI.match(text)
    if not match:
        return None
    scheme, rest, size, unit = match.groups()
    scheme = scheme.lower()
    uri = f"{scheme}:{rest}"
    if scheme == "mailto" and not _MAILTO_ADDRESS.match(rest.split("?", 1)[0]):
        return None
    max_size = int(size) * _SIZE_UNITS[unit.lower()] if size is not None else None
    return ReportURI(uri, scheme, max_size)
