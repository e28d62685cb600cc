import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.mtasts import (
    MTASTSError,
    STSMode,
    mx_pattern_matches,
    parse_sts_policy,
    parse_sts_record,
    select_sts_records,
)

# RFC 8461 §3.1 and §3.2 examples.
RFC_TXT = "v=STSv1; id=20160831085700Z;"
RFC_POLICY = (
    "version: STSv1\r\n"
    "mode: enforce\r\n"
    "mx: mail.example.com\r\n"
    "mx: *.example.net\r\n"
    "mx: backupmx.example.com\r\n"
    "max_age: 604800\r\n"
)


@pytest.mark.parametrize(
    "text, record_id, extensions",
    [
        (RFC_TXT, "20160831085700Z", ()),
        ("v=STSv1;id=abc", "abc", ()),
        ("v=STSv1 ;  id=" + "a" * 32 + " ; ", "a" * 32, ()),
        ("v=STSv1; id=1; ext_1.x=value;", "1", (("ext_1.x", "value"),)),
    ],
)
def test_txt_record(text, record_id, extensions):
    record = parse_sts_record(text)
    assert record.id == record_id
    assert tuple((f.name, f.value) for f in record.extensions) == extensions


@pytest.mark.parametrize(
    "text, message",
    [
        ("id=1; v=STSv1", "start with v=STSv1"),
        ("v=STSv2; id=1", "start with v=STSv1"),
        ("v=stsv1; id=1", "start with v=STSv1"),
        ("v=STSv1", "'id' is missing"),
        ("v=STSv1; id=", "empty or invalid value"),
        ("v=STSv1; id=" + "a" * 33, "1 to 32"),
        ("v=STSv1; id=2016-08-31", "1 to 32"),
        ("v=STSv1; id = 1", "not a name=value"),
        ("v=STSv1;; id=1", "empty field"),
        ("v=STSv1; id=1; id=2", "duplicate field 'id'"),
        ("v=STSv1; id=1; x=a b", "invalid value in field 'x'"),
        ("v=STSv1; id=1; x=\u00e9", "empty or invalid value"),
    ],
)
def test_txt_record_errors(text, message):
    with pytest.raises(MTASTSError, match=message):
        parse_sts_record(text)


def test_select_sts_records():
    texts = [RFC_TXT, "v=STSv1", "v=STSv10; id=1", "v=spf1 -all", "v=STSv1 ; id=2"]
    assert select_sts_records(texts) == [RFC_TXT, "v=STSv1", "v=STSv1 ; id=2"]


def test_rfc_policy():
    policy = parse_sts_policy(RFC_POLICY)
    assert (policy.version, policy.mode, policy.max_age) == ("STSv1", STSMode.ENFORCE, 604800)
    assert policy.mx == ("mail.example.com", "*.example.net", "backupmx.example.com")
    assert policy.allows_mx("MX1.example.net.") and not policy.allows_mx("example.net")


@pytest.mark.parametrize(
    "body",
    [
        RFC_POLICY.replace("\r\n", "\n"),
        RFC_POLICY.encode(),
        RFC_POLICY.rstrip("\r\n"),                             # no final line break
        "\n" + RFC_POLICY.replace("\r\n", "  \n\n"),           # blank lines, trailing blanks
        "max_age: 604800\nmx: mail.example.com\nmx: *.example.net\n"
        "mx: backupmx.example.com\nmode: enforce\nversion: STSv1\n",   # any order
    ],
)
def test_policy_line_endings_and_order(body):
    policy = parse_sts_policy(body)
    assert policy.mode == STSMode.ENFORCE and len(policy.mx) == 3 and policy.max_age == 604800


def test_policy_extensions_and_mode_none():
    policy = parse_sts_policy("version: STSv1\nmode: none\nmax_age: 0\nx-note: hello world\n")
    assert policy.mode == STSMode.NONE and policy.mx == () and policy.max_age == 0
    assert policy.extensions == (("x-note", "hello world"),)


def test_testing_mode_and_max_age_limit():
    policy = parse_sts_policy("version: STSv1\nmode: testing\nmx: mx.example.com\n"
                              "max_age: 31557600\n")
    assert policy.mode == STSMode.TESTING and policy.max_age == 31557600


BASE = {"version": "STSv1", "mode": "enforce", "mx": "mail.example.com", "max_age": "86400"}


def _policy(**changes: str | None) -> str:
    fields = {**BASE, **changes}
    return "".join(f"{key}: {value}\n" for key, value in fields.items() if value is not None)


@pytest.mark.parametrize(
    "body, message",
    [
        (_policy(version=None), "'version' is missing"),
        (_policy(mode=None), "'mode' is missing"),
        (_policy(max_age=None), "'max_age' is missing"),
        (_policy(mx=None), "needs at least one mx"),
        (_policy(mode="testing", mx=None), "needs at least one mx"),
        (_policy(version="STSv2"), "not STSv1"),
        (_policy(mode="Enforce"), "not enforce, testing or none"),
        (_policy(mode="reject"), "not enforce, testing or none"),
        (_policy(max_age="31557601"), "0..31557600"),
        (_policy(max_age="-1"), "0..31557600"),
        (_policy(max_age="1d"), "0..31557600"),
        (_policy(max_age="00000000001"), "0..31557600"),
        (_policy(mx="*example.com"), "invalid mx pattern"),
        (_policy(mx="mail.*.example.com"), "invalid mx pattern"),
        (_policy(mx="*.*.example.com"), "invalid mx pattern"),
        (_policy(mx="-mail.example.com"), "invalid mx pattern"),
        (_policy(mx="mail_1.example.com"), "invalid mx pattern"),
        (_policy(mx="mail.example.com."), "invalid mx pattern"),
        (_policy(mx="mail.example.com, mx2.example.com"), "invalid mx pattern"),
        (_policy() + "mode: testing\n", "'mode' given twice"),
        (_policy() + "just text\n", "line 5"),
        (_policy() + "note:\n", "line 5"),
        ("Version: STSv1\nmode: none\nmax_age: 1\n", "'version' is missing"),
        (_policy().encode() + b"\xff\n", "not UTF-8"),
    ],
)
def test_policy_errors(body, message):
    with pytest.raises(MTASTSError, match=message):
        parse_sts_policy(body)


@pytest.mark.parametrize(
    "pattern, hostname, matches",
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.Example.COM.", True),
        ("Mail.Example.com.", "mail.example.com", True),
        ("mail.example.com", "mail2.example.com", False),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "MX1.EXAMPLE.COM.", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "sub.mx1.example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.example.com", "mx1.example.com.evil", False),
        ("*.example.com", "mx1example.com", False),
    ],
)
def test_mx_pattern_matches(pattern, hostname, matches):
    assert mx_pattern_matches(pattern, hostname) is matches


@given(st.text())
def test_any_txt_gives_a_record_or_mtasts_error(text):
    try:
        record = parse_sts_record(text)
    except MTASTSError:
        return
    assert 1 <= len(record.id) <= 32


POLICY_LINES = st.sampled_from(
    ["version: STSv1", "mode: enforce", "mode: none", "mode: testing", "mx: mail.example.com",
     "mx: *.example.net", "mx: *", "max_age: 86400", "max_age: 99999999999", "x: y", "", ":",
     "version:STSv1", "\u00e9: x", "mx:\t a.b"])


@given(st.one_of(st.text(), st.binary(),
                 st.tuples(st.lists(POLICY_LINES), st.sampled_from(["\n", "\r\n", "\r"]))
                 .map(lambda parts: parts[1].join(parts[0]))))
def test_any_policy_gives_a_policy_or_mtasts_error(body):
    try:
        policy = parse_sts_policy(body)
    except MTASTSError:
        return
    assert policy.mode == STSMode.NONE or policy.mx
