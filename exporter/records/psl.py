"""The Public Suffix List: organizational domains (RFC 7489 §3.2) from the rules bundled
with the `publicsuffixlist` package.

The lookup gives the same answers as `publicsuffixlist.PublicSuffixList().privatesuffix`
(ICANN and private sections, unknown top-level domains public, a wildcard rule making its
own root public too), but its loader costs a few milliseconds instead of tens: that
package IDNA-encodes each of the ~10,000 rules at start-up, so that A-labels
(xn--...) match the ~460 rules written in Unicode. Here the rules stay as written and the
few A-labels of a looked-up name are decoded instead (Punycode is a bijection, so both
ways match the same names). The rules are read once, on first use.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

PSL_PACKAGE, PSL_FILE = "publicsuffixlist", "public_suffix_list.dat"


# The rules as written: "co.uk", "*.ck", "!www.ck"; IDN rules in Unicode.
SuffixRules = frozenset[str]

# A rule is a line's first word; lines starting with "//" are comments.
_RULE = re.compile(r"^(?!//)\S+", re.MULTILINE)


def parse_rules(text: str) -> SuffixRules:
    """The rules of a list in the PSL format, lower-cased (one regular expression over the
    whole text: a loop over its ~16,000 lines in Python costs three times as much)."""
    return frozenset(_RULE.findall(text.lower()))


@functools.cache
def bundled_rules() -> SuffixRules:
    """The list shipped with the publicsuffixlist package (no network), parsed once."""
    return parse_rules((files(PSL_PACKAGE) / PSL_FILE).read_text(encoding="utf-8", errors="surrogateescape"))


def public_suffix_labels(labels: list[str], psl: SuffixRules) -> int:
    """How many of the trailing `labels` (lower-case) form the public suffix.

    The longest candidate suffix is tried first; for each, an exception rule (`!s`: s is
    registrable, its parent public), then a wildcard (`*.s`: the label before s is public
    too, and s itself when nothing precedes it), then the exact rule. No rule: the last
    label alone (an unknown top-level domain is public)."""
    count = len(labels)
    if count == 1:
        return 1
    for start in range(count):
        depth = count - start
        suffix = ".".join(labels[start:])
        if "!" + suffix in psl:
            return depth - 1
        if "*." + suffix in psl:
            return depth + 1 if start > 0 else depth
        if suffix in psl:
            return depth
    return 1


def unicode_label(label: str) -> str:
    """The U-label of an A-label ("xn--55qx5d" -> "公司"); any other label as it is. A
    "decoding" without a non-ASCII character ("xn--uk-" -> "uk") is no U-label: IDNA
    never encodes an ASCII label, so no rule matches such a label either way."""
    if not label.startswith("xn--"):
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return label            # not valid Punycode: matches no rule, as it would not encoded
    return label if decoded.isascii() else decoded


def registrable_domain(domain: str, psl: SuffixRules) -> str | None:
    """The public suffix plus one label, lower-cased, without a trailing dot; None for a
    public suffix itself or a name with an empty label."""
    labels = domain.removesuffix(".").lower().split(".")
    if "" in labels:
        return None
    public = public_suffix_labels([unicode_label(label) for label in labels], psl)
    return ".".join(labels[-public - 1:]) if len(labels) > public else None


def organizational_domain(domain: str) -> str:
    """The registrable domain (RFC 7489 §3.2); a public suffix (or a malformed name) is its own."""
    return registrable_domain(domain, bundled_rules()) or domain
