import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.tlsrpt import TLSRPTError, parse_tlsrpt, select_tlsrpt_records


@pytest.mark.parametrize(
    "text, rua, warnings",
    [
        # RFC 8460 §3 examples
        ("v=TLSRPTv1;rua=mailto:reports@example.com", ("mailto:reports@example.com",), []),
        ("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
         ("https://reporting.example.com/v1/tlsrpt",), []),
        ("v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com:8443/x?y=z;",
         ("mailto:a@example.com", "https://r.example.com:8443/x?y=z"), []),
        ("v=TLSRPTv1; rua=ftp://r.example.com/,mailto:a@example.com; x-ext=1",
         ("mailto:a@example.com",), ["unsupported_report_uri"]),
        ("v=TLSRPTv1; rua=MAILTO:tls%2Breports@example.com", ("MAILTO:tls%2Breports@example.com",),
         []),
    ],
)
def test_valid_records(text, rua, warnings):
    record = parse_tlsrpt(text)
    assert record.rua == rua
    assert [w.code for w in record.warnings] == warnings


def test_extensions_are_kept():
    record = parse_tlsrpt("v=TLSRPTv1; rua=mailto:a@example.com; ext=yes")
    assert [(f.name, f.value) for f in record.extensions] == [("ext", "yes")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("rua=mailto:a@example.com; v=TLSRPTv1", "start with v=TLSRPTv1"),
        ("v=TLSRPTv2; rua=mailto:a@example.com", "start with v=TLSRPTv1"),
        ("v=tlsrptv1; rua=mailto:a@example.com", "start with v=TLSRPTv1"),
        ("v=TLSRPTv1", "'rua' is missing"),
        ("v=TLSRPTv1; rua=", "empty or invalid value"),
        ("v=TLSRPTv1; rua=mailto:nobody", "invalid rua URI"),
        ("v=TLSRPTv1; rua=MAILTO", "not a URI"),
        ("v=TLSRPTv1; rua=https:///path", "invalid rua URI"),
        ("v=TLSRPTv1; rua=https://r.example.com:99999/", "invalid rua URI"),
        ("v=TLSRPTv1; rua=http://r.example.com/", "no mailto: or https: URI"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "duplicate field"),
        ("v=TLSRPTv1 rua=mailto:a@example.com", "start with v=TLSRPTv1"),
    ],
)
def test_errors(text, message):
    with pytest.raises(TLSRPTError, match=message):
        parse_tlsrpt(text)


def test_select_tlsrpt_records():
    texts = ["v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv10;", "v=spf1", "v=TLSRPTv1"]
    assert select_tlsrpt_records(texts) == [texts[0], texts[3]]


@given(st.one_of(st.text(), st.text().map(lambda rest: "v=TLSRPTv1; rua=" + rest)))
def test_any_text_gives_a_record_or_tlsrpt_error(text):
    try:
        record = parse_tlsrpt(text)
    except TLSRPTError:
        return
    assert record.rua
