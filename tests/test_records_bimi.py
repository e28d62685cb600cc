import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.bimi import AvatarPreference, BIMIError, parse_bimi, select_bimi_records

LOGO = "https://images.example.com/logos/brand.svg"
VMC = "https://images.example.com/certs/brand.pem"


@pytest.mark.parametrize(
    "text, logo, authority, declined, warnings",
    [
        (f"v=BIMI1; l={LOGO}; a={VMC}", LOGO, VMC, False, []),
        (f"v=BIMI1; l={LOGO}; a={VMC};", LOGO, VMC, False, []),
        (f"V=BIMI1;L={LOGO};A={VMC}", LOGO, VMC, False, []),
        (f"v=BIMI1; l={LOGO}", LOGO, None, False, ["no_authority_evidence"]),
        (f"v=BIMI1; l={LOGO}; a=", LOGO, None, False, ["no_authority_evidence"]),
        ("v=BIMI1; l=; a=;", None, None, True, []),
        ("v=BIMI1; l=", None, None, True, []),
        ("v=BIMI1;", None, None, True, []),
        (f"v=BIMI1; l={LOGO}; a={VMC}; x=1", LOGO, VMC, False, ["unknown_tag"]),
    ],
)
def test_valid_records(text, logo, authority, declined, warnings):
    record = parse_bimi(text)
    assert (record.logo_url, record.authority_url, record.declined) == (logo, authority, declined)
    assert [w.code for w in record.warnings] == warnings


@pytest.mark.parametrize("value, preference",
                         [("brand", AvatarPreference.BRAND), ("Personal", AvatarPreference.PERSONAL)])
def test_avatar_preference(value, preference):
    assert parse_bimi(f"v=BIMI1; l={LOGO}; a={VMC}; avp={value}").avatar_preference == preference


@pytest.mark.parametrize(
    "text, message",
    [
        (f"l={LOGO}; v=BIMI1", "start with v=BIMI1"),
        (f"v=BIMI2; l={LOGO}", "start with v=BIMI1"),
        ("", "start with v=BIMI1"),
        ("v=BIMI1; l=http://images.example.com/logo.svg", "not an https:// URL"),
        ("v=BIMI1; l=https:///logo.svg", "not an https:// URL"),
        ("v=BIMI1; l=images.example.com/logo.svg", "not an https:// URL"),
        (f"v=BIMI1; l={LOGO}; a=ftp://x.example.com/a.pem", "not an https:// URL"),
        ("v=BIMI1; l=https://a.example.com/a b.svg", "not an https:// URL"),
        (f"v=BIMI1; l=; a={VMC}", "l= is empty"),
        (f"v=BIMI1; l={LOGO}; avp=both", "not brand or personal"),
        (f"v=BIMI1; l={LOGO}; l={LOGO}", "duplicate tag 'l'"),
    ],
)
def test_errors(text, message):
    with pytest.raises(BIMIError, match=message):
        parse_bimi(text)


def test_select_bimi_records():
    texts = [f"v=BIMI1; l={LOGO}", "v=BIMI1", "v=BIMI10;", "v=spf1 -all"]
    assert select_bimi_records(texts) == texts[:2]


@given(st.one_of(st.text(), st.text().map(lambda rest: "v=BIMI1; l=" + rest)))
def test_any_text_gives_a_record_or_bimi_error(text):
    try:
        record = parse_bimi(text)
    except BIMIError:
        return
    assert record.logo_url is None or record.logo_url.lower().startswith("https:")
