"""BIMI assertion records (draft-brand-indicators-for-message-identification).

`v=BIMI1; l=<https URL of an SVG logo>; a=<https URL of the mark certificate>`. An empty
l= (with no a=) is a declination: the domain asks receivers to show no logo.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from dataclasses import dataclass

from exporter.records.common import RecordError, RecordWarning, Tag, parse_tag_list, tag_map


class BIMIError(RecordError):
    """The BIMI record is invalid."""


class AvatarPreference(enum.StrEnum):
    BRAND = "brand"
    PERSONAL = "personal"


@dataclass(frozen=True)
class BIMIRecord:
    logo_url: str | None              # l=; None when empty or absent
    authority_url: str | None         # a=; None when empty or absent
    avatar_preference: AvatarPreference   # avp=, default brand
    tags: tuple[Tag, ...]
    warnings: tuple[RecordWarning, ...]

    @property
    def declined(self) -> bool:
        """The domain publishes BIMI to say it has no logo to show."""
        return self.logo_url is None and self.authority_url is None


_SELECT = re.compile(r"[vV][ \t]*=[ \t]*BIMI1[ \t]*(?:;|\Z)")
_KNOWN_TAGS = frozenset({"v", "l", "a", "avp"})


def select_bimi_records(txt_strings: list[str]) -> list[str]:
    """The TXT records at <selector>._bimi.<domain> that start with v=BIMI1."""
    return [text for text in txt_strings if _SELECT.match(text)]


def parse_bimi(text: str) -> BIMIRecord:
    """Parse a BIMI record (its TXT strings joined); raise BIMIError if invalid."""
    tags = parse_tag_list(text, BIMIError, case_insensitive_names=True)
    if not tags or tags[0].name != "v" or tags[0].value != "BIMI1":
        raise BIMIError("a BIMI record must start with v=BIMI1", tags[0].position if tags else 0)
    by_name = tag_map(tags)
    logo_url = _https_url(by_name.get("l"))
    authority_url = _https_url(by_name.get("a"))
    avatar_preference = AvatarPreference.BRAND
    if "avp" in by_name:
        try:
            avatar_preference = AvatarPreference(by_name["avp"].value.lower())
        except ValueError:
            raise BIMIError(
                f"avp={by_name['avp'].value!r} is not brand or personal", by_name["avp"].position
            ) from None
    if authority_url is not None and logo_url is None:
        raise BIMIError("a= is given but l= is empty", by_name["a"].position)

    warnings = [
        RecordWarning("unknown_tag", f"unknown tag {tag.name!r} is ignored")
        for tag in tags
        if tag.name not in _KNOWN_TAGS
    ]
    if logo_url is not None and authority_url is None:
        warnings.append(RecordWarning(
            "no_authority_evidence",
            "no a= mark certificate: most mailbox providers show no logo without one",
        ))
    return BIMIRecord(logo_url, authority_url, avatar_preference, tags, tuple(warnings))


def _https_url(tag: Tag | None) -> str | None:
    if tag is None or not tag.value:
        return None
    url = tag.value
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port   # raises ValueError for an invalid port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() != "https" or not parts.hostname or re.search(r"\s", url):
        raise BIMIError(f"{tag.name}={url!r} is not an https:// URL", tag.position)
    return url
