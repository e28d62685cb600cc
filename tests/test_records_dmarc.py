import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.dmarc import (
    Alignment,
    DMARCError,
    Policy,
    PublicSuffixDomain,
    parse_dmarc,
    select_dmarc_records,
)

# RFC 7489 Appendix B.
RFC_7489_EXAMPLES = [
    ("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
     Policy.NONE, 100, ["mailto:dmarc-feedback@example.com"], []),
    ("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
     "ruf=mailto:auth-reports@thirdparty.example.net",
     Policy.NONE, 100, ["mailto:dmarc-feedback@example.com"],
     ["mailto:auth-reports@thirdparty.example.net"]),
    ("v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
     "mailto:tld-test@thirdparty.example.net!10m; pct=25",
     Policy.QUARANTINE, 25,
     ["mailto:dmarc-feedback@example.com", "mailto:tld-test@thirdparty.example.net"], []),
]


@pytest.mark.parametrize("text, policy, percent, rua, ruf", RFC_7489_EXAMPLES)
def test_rfc_examples(text, policy, percent, rua, ruf):
    record = parse_dmarc(text)
    assert record.policy == policy and record.subdomain_policy == policy
    assert record.percent == percent
    assert [u.uri for u in record.aggregate_report_uris] == rua
    assert [u.uri for u in record.failure_report_uris] == ruf
    assert record.warnings == ()


def test_defaults():
    record = parse_dmarc("v=DMARC1; p=reject")
    assert record.subdomain_policy == record.nonexistent_subdomain_policy == Policy.REJECT
    assert record.percent == 100
    assert record.dkim_alignment == record.spf_alignment == Alignment.RELAXED
    assert record.failure_options == ("0",)
    assert record.report_formats == ("afrf",)
    assert record.report_interval == 86400
    assert record.aggregate_report_uris == record.failure_report_uris == ()
    assert record.public_suffix_domain == PublicSuffixDomain.UNKNOWN
    assert not record.testing and not record.policy_from_rua_fallback


def test_all_tags():
    record = parse_dmarc(
        "v=DMARC1; p=reject; sp=quarantine; np=none; pct=0; adkim=s; aspf=s; fo=1:d:s; "
        "rf=afrf; ri=3600; psd=y; t=y"
    )
    assert (record.policy, record.subdomain_policy, record.nonexistent_subdomain_policy) == (
        Policy.REJECT, Policy.QUARANTINE, Policy.NONE)
    assert record.percent == 0
    assert record.dkim_alignment == record.spf_alignment == Alignment.STRICT
    assert record.failure_options == ("1", "d", "s")
    assert record.report_interval == 3600
    assert record.public_suffix_domain == PublicSuffixDomain.YES
    assert record.testing
    assert record.warnings == ()


def test_np_defaults_to_sp():
    assert parse_dmarc("v=DMARC1; p=reject; sp=none").nonexistent_subdomain_policy == Policy.NONE


@pytest.mark.parametrize(
    "text",
    [
        "V=DMARC1; P=REJECT; SP=Quarantine; ADKIM=S",   # tag names and values: any case
        "v = DMARC1 ;p = reject ; sp=quarantine;adkim=s ;",
        "v=DMARC1;p=reject;sp=quarantine;adkim=s;;",
        "v=DMARC1;\tp=reject;  sp=quarantine;  adkim=s ; ",
    ],
)
def test_case_whitespace_and_semicolons(text):
    record = parse_dmarc(text)
    assert (record.policy, record.subdomain_policy, record.dkim_alignment) == (
        Policy.REJECT, Policy.QUARANTINE, Alignment.STRICT)
    assert record.warnings == ()


@pytest.mark.parametrize(
    "text, message",
    [
        ("p=reject; v=DMARC1", "start with v=DMARC1"),
        ("", "start with v=DMARC1"),
        ("v=DMARC2; p=reject", "DMARC1"),
        ("v=dmarc1; p=reject", "DMARC1"),                  # the version is case-sensitive
        ("v=DMARC1 p=reject", "DMARC1"),                   # missing ";"
        ("v=DMARC1; p=reject; p=none", "duplicate tag 'p'"),
        ("v=DMARC1; p=reject; P=none", "duplicate tag 'p'"),
        ("v=DMARC1", "'p' is missing"),
        ("v=DMARC1; p=block", "invalid policy"),
        ("v=DMARC1; p=reject; sp=block", "invalid subdomain policy"),
        ("v=DMARC1; p=block; rua=not-a-uri", "invalid policy"),
        ("v=DMARC1; p=reject; rua", "not a tag=value"),
        ("v=DMARC1; 1p=reject", "invalid tag name"),
        ("v=DMARC1; p=reject; rua=mailto:d\u00e9@example.com", "invalid character"),
    ],
)
def test_errors(text, message):
    with pytest.raises(DMARCError, match=message):
        parse_dmarc(text)


@pytest.mark.parametrize(
    "text, tag",
    [("v=DMARC1; p=reject; p=none", "p=none"),
     ("v=DMARC1; p=reject; sp=block", "sp=block"),
     ("v=DMARC1;  p=block", "p=block")],
)
def test_error_position_points_at_the_tag(text, tag):
    with pytest.raises(DMARCError) as caught:
        parse_dmarc(text)
    assert caught.value.position == text.index(tag)


@pytest.mark.parametrize(
    "text",
    [
        "v=DMARC1; rua=mailto:dmarc@example.com",
        "v=DMARC1; p=bogus; rua=mailto:dmarc@example.com",
        "v=DMARC1; p=reject; sp=bogus; rua=mailto:dmarc@example.com",
    ],
)
def test_invalid_policy_with_valid_rua_counts_as_none(text):
    record = parse_dmarc(text)
    assert record.policy == record.subdomain_policy == Policy.NONE
    assert record.policy_from_rua_fallback
    assert [w.code for w in record.warnings] == ["policy_from_rua_fallback"]


@pytest.mark.parametrize(
    "tag, attribute, default",
    [
        ("pct=101", "percent", 100),
        ("pct=-1", "percent", 100),
        ("pct=5.5", "percent", 100),
        ("adkim=x", "dkim_alignment", Alignment.RELAXED),
        ("aspf=strict", "spf_alignment", Alignment.RELAXED),
        ("fo=2", "failure_options", ("0",)),
        ("fo=1:x", "failure_options", ("0",)),
        ("rf=a f", "report_formats", ("afrf",)),
        ("ri=soon", "report_interval", 86400),
        ("ri=4294967296", "report_interval", 86400),
        ("psd=maybe", "public_suffix_domain", PublicSuffixDomain.UNKNOWN),
        ("t=maybe", "testing", False),
        ("np=bogus", "nonexistent_subdomain_policy", Policy.QUARANTINE),
    ],
)
def test_invalid_optional_values_are_ignored_with_a_warning(tag, attribute, default):
    record = parse_dmarc(f"v=DMARC1; p=quarantine; {tag}")
    assert getattr(record, attribute) == default
    assert [w.code for w in record.warnings] == ["invalid_tag_value"]
    assert tag.split("=")[0] in record.warnings[0].message


def test_report_uris():
    record = parse_dmarc(
        "v=DMARC1; p=none; rua=mailto:a@example.com!10m, MAILTO:b@Example.NET!20 ,"
        "mailto:c@example.org!1k,https://reports.example/x, mailto:nobody, mailto:d@example.com!5x"
    )
    uris = record.aggregate_report_uris
    assert [(u.uri, u.scheme, u.max_size) for u in uris] == [
        ("mailto:a@example.com", "mailto", 10 * 1024 * 1024),
        ("mailto:b@Example.NET", "mailto", 20),
        ("mailto:c@example.org", "mailto", 1024),
        ("https://reports.example/x", "https", None),
    ]
    assert [u.domain for u in uris] == ["example.com", "example.net", "example.org", None]
    assert [w.code for w in record.warnings] == [
        "unsupported_report_uri", "invalid_report_uri", "invalid_report_uri"]


def test_unknown_tags_are_reported():
    record = parse_dmarc("v=DMARC1; p=none; foo=bar; x_y=1")
    assert [w.code for w in record.warnings] == ["unknown_tag", "unknown_tag"]
    assert "foo" in record.warnings[0].message


def test_select_dmarc_records():
    texts = ["v=DMARC1; p=none", "v=DMARC1", "V = DMARC1;p=reject", "v=dmarc1; p=none",
             "v=DMARC10; p=none", "v=spf1 -all", " v=DMARC1; p=none"]
    assert select_dmarc_records(texts) == ["v=DMARC1; p=none", "v=DMARC1", "V = DMARC1;p=reject"]


DMARC_PIECES = st.sampled_from(
    ["v=DMARC1", "; ", ";", "p=", "sp=", "np=", "rua=", "mailto:", "a@b.c", "!10m", ",",
     "reject", "none", "pct=", "fo=", ":", "1", "d", "x", "=", " ", "\t", "\u00e9", "psd=y"])


@given(st.one_of(st.text(), st.lists(DMARC_PIECES).map("".join)))
def test_any_text_gives_a_record_or_dmarc_error(text):
    try:
        record = parse_dmarc(text)
    except DMARCError:
        return
    assert isinstance(record.policy, Policy)
    assert 0 <= record.percent <= 100


def test_long_numbers_are_ignored_not_crashing():
    record = parse_dmarc(f"v=DMARC1; p=none; pct={'9' * 5000}; ri={'9' * 5000}")
    assert (record.percent, record.report_interval) == (100, 86400)
    assert [w.code for w in record.warnings] == ["invalid_tag_value", "invalid_tag_value"]


def test_p_not_right_after_v_is_a_warning():
    assert [w.code for w in parse_dmarc("v=DMARC1; rua=mailto:a@example.com; p=reject").warnings] == ["p_not_second"]
    assert parse_dmarc("v=DMARC1; p=reject; rua=mailto:a@example.com").warnings == ()
