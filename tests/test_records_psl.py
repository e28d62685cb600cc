"""The Public Suffix List lookup of records/psl.py: a small list of its own, the official
test vectors shipped with the publicsuffixlist package, and the same answers as that
package on names built from every rule of the bundled list."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from publicsuffixlist import PublicSuffixList

from exporter.records.psl import (
    PSL_PACKAGE,
    bundled_rules,
    organizational_domain,
    parse_rules,
    registrable_domain,
    unicode_label,
)

SMALL_LIST = """\
// ===BEGIN ICANN DOMAINS===
// a comment: not a rule
com
uk
co.uk
  indented lines are not rules

jp
*.kobe.jp
!city.kobe.jp
公司.cn
cn
// ===END ICANN DOMAINS===
// ===BEGIN PRIVATE DOMAINS===
BlogSpot.com   trailing words are ignored
// ===END PRIVATE DOMAINS===
"""


def test_parse_rules_keeps_first_words_lower_cased_and_skips_comments():
    assert parse_rules(SMALL_LIST) == {
        "com", "uk", "co.uk", "jp", "*.kobe.jp", "!city.kobe.jp", "公司.cn", "cn", "blogspot.com"}


@pytest.mark.parametrize("name, registrable", [
    ("example.com", "example.com"),
    ("a.b.example.com", "example.com"),
    ("WWW.Example.COM.", "example.com"),          # case and one trailing dot do not matter
    ("com", None),                                # a public suffix has no registrable domain
    ("co.uk", None),
    ("mail.example.co.uk", "example.co.uk"),      # the longest rule prevails over "uk"
    ("a." * 60 + "example.co.uk", "example.co.uk"),   # far more labels than any rule
    ("example.blogspot.com", "example.blogspot.com"),   # private section rules apply
    ("blogspot.com", None),
    ("a.b.kobe.jp", "a.b.kobe.jp"),               # "*.kobe.jp": b.kobe.jp is public
    ("b.kobe.jp", None),
    ("kobe.jp", None),                            # a wildcard's root is public too
    ("city.kobe.jp", "city.kobe.jp"),             # "!city.kobe.jp": the exception is registrable
    ("www.city.kobe.jp", "city.kobe.jp"),
    ("shop.公司.cn", "shop.公司.cn"),
    ("www.shop.xn--55qx5d.cn", "shop.xn--55qx5d.cn"),   # an A-label matches the Unicode rule, stays as given
    ("xn--55qx5d.cn", None),
    ("a.xn--zz-invalid.cn", "xn--zz-invalid.cn"),  # not Punycode: no rule, "cn" applies
    ("example.xn--co-.uk", "xn--co-.uk"),         # "xn--co-" is not the rule "co"
    ("example.unknowntld", "example.unknowntld"),  # an unknown top-level domain is public
    ("unknowntld", None),
    ("a..example.com", None),                     # an empty label: malformed
    (".example.com", None),
    ("", None),
])
def test_registrable_domain(name, registrable):
    assert registrable_domain(name, parse_rules(SMALL_LIST)) == registrable


@pytest.mark.parametrize("label, expected", [
    ("xn--55qx5d", "公司"), ("example", "example"), ("xn--", "xn--"), ("xn--\u00e9", "xn--\u00e9"),
    ("xn--uk-", "xn--uk-"),   # "decodes" to plain "uk", which IDNA never writes as an A-label
])
def test_unicode_label(label, expected):
    assert unicode_label(label) == expected


def official_vectors() -> list[tuple[str, str | None]]:
    """checkPublicSuffix('name', 'registrable'|null) lines of the PSL project's test file."""
    text = (files(PSL_PACKAGE) / "test_psl.txt").read_text(encoding="utf-8")
    pairs = re.findall(r"^checkPublicSuffix\('([^']*)', (?:'([^']*)'|null)\);", text, re.MULTILINE)
    return [(name, registrable or None) for name, registrable in pairs]


def test_the_official_test_vectors():
    vectors = official_vectors()
    assert len(vectors) > 70
    wrong = [(name, expected, registrable_domain(name, bundled_rules())) for name, expected in vectors
             if registrable_domain(name, bundled_rules()) != (expected.lower() if expected else None)]
    assert wrong == []


def names_from_rules(rules: frozenset[str]) -> list[str]:
    """For each rule: the suffix itself, one and two labels under it, a wildcard filled in,
    an exception's parent and child, and each IDN rule in its A-label form as well."""
    names = []
    for rule in sorted(rules):
        base = rule.lstrip("!").replace("*", "wild")
        forms = [base]
        if not base.isascii():
            forms.append(base.encode("idna").decode("ascii"))
        for form in forms:
            names += [form, f"host.{form}", f"a.host.{form}", form.split(".", 1)[-1]]
    return names


def test_same_answers_as_publicsuffixlist_on_names_from_the_whole_list():
    reference = PublicSuffixList()
    names = names_from_rules(bundled_rules())
    assert len(names) > 40_000
    assert any(rule.startswith("*.") for rule in bundled_rules())
    assert any(rule.startswith("!") for rule in bundled_rules())
    assert any(name.startswith("xn--") or ".xn--" in name for name in names)
    differing = [(name, organizational_domain(name), reference.privatesuffix(name) or name) for name in names
                 if organizational_domain(name) != (reference.privatesuffix(name) or name)]
    assert differing == []
