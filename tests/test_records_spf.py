import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.records.spf import (
    MacroContext,
    Mechanism,
    Modifier,
    Qualifier,
    SPFError,
    expand_macros,
    parse_spf,
    select_spf_records,
    truncate_domain,
)

# RFC 7208 Appendix A: every record there is valid.
RFC_7208_APPENDIX_A = [
    "v=spf1 +all",
    "v=spf1 a -all",
    "v=spf1 a:example.org -all",
    "v=spf1 mx -all",
    "v=spf1 mx:example.org -all",
    "v=spf1 mx mx:example.org -all",
    "v=spf1 mx/30 mx:example.org/30 -all",
    "v=spf1 ptr -all",
    "v=spf1 ip4:192.0.2.128/28 -all",
    "v=spf1 include:example.com include:example.net -all",
    "v=spf1 redirect=example.org",
    "v=spf1 mx -all exp=explain._spf.%{d}",
    "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all",
    "v=spf1 -ip4:192.0.2.0/24 +all",
    "v=spf1 -ptr +all",
]


@pytest.mark.parametrize("text", RFC_7208_APPENDIX_A)
def test_rfc_appendix_a_records_parse(text):
    record = parse_spf(text)
    assert " ".join(term.text for term in record.terms) == text.split(" ", 1)[1]


def _mechanism(text: str) -> Mechanism:
    (term,) = parse_spf(f"v=spf1 {text}").terms
    assert isinstance(term, Mechanism)
    return term


@pytest.mark.parametrize(
    "term, qualifier, name, domain_spec, ip4_len, ip6_len",
    [
        ("a", Qualifier.PASS, "a", None, None, None),
        ("-a:example.org/24//64", Qualifier.FAIL, "a", "example.org", 24, 64),
        ("~mx//64", Qualifier.SOFTFAIL, "mx", None, None, 64),
        ("?mx:mail.example.org/0", Qualifier.NEUTRAL, "mx", "mail.example.org", 0, None),
        ("MX:Example.ORG", Qualifier.PASS, "mx", "Example.ORG", None, None),
        ("include:_spf.google.com", Qualifier.PASS, "include", "_spf.google.com", None, None),
        ("ptr", Qualifier.PASS, "ptr", None, None, None),
        ("ptr:example.org.", Qualifier.PASS, "ptr", "example.org.", None, None),
        ("exists:%{i}.%{l1r+-}._spf.%{d}", Qualifier.PASS, "exists",
         "%{i}.%{l1r+-}._spf.%{d}", None, None),
        ("a:%{d}", Qualifier.PASS, "a", "%{d}", None, None),
        ("a:mail-1.ex-ample.co-1/32", Qualifier.PASS, "a", "mail-1.ex-ample.co-1", 32, None),
    ],
)
def test_domain_mechanisms(term, qualifier, name, domain_spec, ip4_len, ip6_len):
    mechanism = _mechanism(term)
    assert (mechanism.qualifier, mechanism.name, mechanism.domain_spec) == (
        qualifier, name, domain_spec)
    assert (mechanism.ip4_prefix_length, mechanism.ip6_prefix_length) == (ip4_len, ip6_len)
    assert mechanism.costs_dns_lookup


@pytest.mark.parametrize(
    "term, network",
    [
        ("ip4:192.0.2.1", "192.0.2.1/32"),
        ("ip4:192.0.2.77/24", "192.0.2.0/24"),
        ("ip4:0.0.0.0/0", "0.0.0.0/0"),
        ("ip6:2001:db8::1", "2001:db8::1/128"),
        ("ip6:2001:DB8::/32", "2001:db8::/32"),
        ("ip6:::ffff:192.0.2.1/128", "::ffff:192.0.2.1/128"),
    ],
)
def test_ip_mechanisms(term, network):
    mechanism = _mechanism(term)
    assert mechanism.network == ipaddress.ip_network(network)
    assert not mechanism.costs_dns_lookup


@pytest.mark.parametrize(
    "text, offending",
    [
        ("v=spf1 foo -all", "foo"),
        ("v=spf1 -all ?", "?"),
        ("v=spf1 include -all", "include"),
        ("v=spf1 include: -all", "include:"),
        ("v=spf1 exists -all", "exists"),
        ("v=spf1 all:example.com", "all:example.com"),
        ("v=spf1 ip4 -all", "ip4"),
        ("v=spf1 ip4:192.0.2.256", "ip4:192.0.2.256"),
        ("v=spf1 ip4:192.0.2.01", "ip4:192.0.2.01"),
        ("v=spf1 ip4:192.0.2.0/33", "ip4:192.0.2.0/33"),
        ("v=spf1 ip4:192.0.2.0/", "ip4:192.0.2.0/"),
        ("v=spf1 ip4:192.0.2.0/024", "ip4:192.0.2.0/024"),
        ("v=spf1 ip4:2001:db8::1", "ip4:2001:db8::1"),
        ("v=spf1 ip6:192.0.2.1", "ip6:192.0.2.1"),
        ("v=spf1 ip6:2001:db8::/129", "ip6:2001:db8::/129"),
        ("v=spf1 ip6:fe80::1%eth0", "ip6:fe80::1%eth0"),
        ("v=spf1 mx/08", "mx/08"),
        ("v=spf1 a//129", "a//129"),
        ("v=spf1 a:example.com/33", "a:example.com/33"),
        ("v=spf1 a:192.0.2.1", "a:192.0.2.1"),          # all-numeric top label
        ("v=spf1 include:localhost", "include:localhost"),  # no "." toplabel
        ("v=spf1 include:example.-com", "include:example.-com"),
        ("v=spf1 a:exa mple.com", "a:exa"),
        ("v=spf1 exists:%{x}.example.com", "exists:%{x}.example.com"),
        ("v=spf1 exists:%{c}.example.com", "exists:%{c}.example.com"),  # exp-only letter
        ("v=spf1 exists:%{d0}.example.com", "exists:%{d0}.example.com"),
        ("v=spf1 exists:%{d", "exists:%{d"),
        ("v=spf1 include:50%.example.com", "include:50%.example.com"),
        ("v=spf1 redirect=", "redirect="),
        ("v=spf1 -redirect=example.com", "-redirect=example.com"),
        ("v=spf1 foo=bar\x7f", "foo=bar\x7f"),
        ("v=spf1 include:ex\u00e4mple.com", "include:ex\u00e4mple.com"),
        ("v=spf1 a\t-all", "a\t-all"),
    ],
)
def test_invalid_terms_are_permerrors_naming_the_term(text, offending):
    with pytest.raises(SPFError) as caught:
        parse_spf(text)
    term_start = text.index(offending.split(":")[0].split("/")[0])
    assert caught.value.position is not None
    assert term_start <= caught.value.position <= term_start + len(offending)
    assert "offset" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["v=spf1 redirect=a.example.com redirect=b.example.com",
     "v=spf1 exp=a.example.com -all EXP=b.example.com"],
)
def test_redirect_and_exp_at_most_once(text):
    with pytest.raises(SPFError, match="more than once"):
        parse_spf(text)


@pytest.mark.parametrize("text", ["v=spf10 -all", "v=spf1-all", "spf1 -all", "", " v=spf1 -all",
                                  "v=spf1\t-all"])
def test_version_must_be_v_spf1_then_space_or_end(text):
    with pytest.raises(SPFError, match="v=spf1"):
        parse_spf(text)


def test_version_and_terms_are_case_insensitive_and_spaces_can_repeat():
    record = parse_spf("V=SPF1  IP4:192.0.2.1   -ALL  ")
    assert [t.name for t in record.mechanisms] == ["ip4", "all"]
    assert record.all_qualifier == Qualifier.FAIL
    assert record.mechanisms[1].position == len("V=SPF1  IP4:192.0.2.1   ")


def test_modifiers_keep_unknown_ones():
    record = parse_spf("v=spf1 -all exp=explain.%{d} Foo.Bar=%{s}x")
    assert [(m.name, m.value) for m in record.modifiers] == [
        ("exp", "explain.%{d}"), ("foo.bar", "%{s}x")]
    assert record.explanation == "explain.%{d}"
    assert record.redirect is None
    assert isinstance(record.terms[2], Modifier)


@pytest.mark.parametrize(
    "text, codes",
    [
        ("v=spf1 +all", {"permissive_all"}),
        ("v=spf1 ?all", {"permissive_all"}),
        ("v=spf1 all", {"permissive_all"}),
        ("v=spf1 ~all", set()),
        ("v=spf1 a", {"implicit_neutral"}),
        ("v=spf1", {"implicit_neutral"}),
        ("v=spf1 redirect=_spf.example.com", set()),
        ("v=spf1 ptr -all", {"ptr_used"}),
        ("v=spf1 -all a", {"terms_after_all"}),
        ("v=spf1 -all exp=explain.example.com", set()),
        ("v=spf1 a -all redirect=other.example.com", {"redirect_ignored"}),
        ("v=spf1 x-custom=1 -all", {"unknown_modifier"}),
        ("v=spf1 " + " ".join(f"include:i{n}.example.com" for n in range(11)) + " -all",
         {"too_many_dns_lookups"}),
        ("v=spf1 " + " ".join(f"include:i{n}.example.com" for n in range(10)) + " -all", set()),
    ],
)
def test_warnings(text, codes):
    assert {w.code for w in parse_spf(text).warnings} == codes


@pytest.mark.parametrize(
    "text, count",
    [
        ("v=spf1 include:a.example.com a mx ptr exists:x.example.com ip4:192.0.2.1 -all", 5),
        ("v=spf1 a redirect=x.example.com", 2),
        ("v=spf1 a -all mx redirect=x.example.com", 1),   # neither mx nor redirect is reached
        ("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all", 0),
    ],
)
def test_dns_lookup_count(text, count):
    assert parse_spf(text).dns_lookup_count == count


def test_flags():
    record = parse_spf("v=spf1 ptr ?all")
    assert record.uses_ptr and record.too_permissive and not record.implicit_neutral
    record = parse_spf("v=spf1 mx")
    assert record.implicit_neutral and record.all_qualifier is None and not record.too_permissive


def test_select_spf_records():
    texts = ["v=spf1 -all", "v=spf10 -all", "V=SPF1", "google-site-verification=x",
             "v=spf1", " v=spf1 -all", "v=spf1-all"]
    assert select_spf_records(texts) == ["v=spf1 -all", "V=SPF1", "v=spf1"]


# RFC 7208 §7.4 examples.
IPV4_CONTEXT = MacroContext(
    sender="strong-bad@email.example.com", domain="email.example.com",
    ip=ipaddress.ip_address("192.0.2.3"), helo="mx.example.org",
    validated_domain="mx.example.org", receiver="rx.example.net", timestamp=1234567890,
)


@pytest.mark.parametrize(
    "macro, expansion",
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        # not from the RFC: escapes, URL-encoding, the other letters
        ("%%%_%-", "% %20"),
        ("%{S}", "strong-bad%40email.example.com"),
        ("%{h}.%{p}", "mx.example.org.mx.example.org"),
        ("%{d100}", "email.example.com"),
        ("%{D}", "email.example.com"),
    ],
)
def test_expand_macros_rfc_examples(macro, expansion):
    assert expand_macros(macro, IPV4_CONTEXT) == expansion


def test_expand_macros_ipv6():
    context = MacroContext(
        sender="strong-bad@email.example.com", domain="email.example.com",
        ip=ipaddress.ip_address("2001:db8::cb01"), helo="mx.example.org",
    )
    assert expand_macros("%{ir}.%{v}._spf.%{d2}", context) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
    assert expand_macros("%{c}", context, explanation=True) == "2001:db8::cb01"


def test_expand_macros_explanation_only_letters():
    assert expand_macros("%{c} %{r} %{t}", IPV4_CONTEXT, explanation=True) == (
        "192.0.2.3 rx.example.net 1234567890")
    with pytest.raises(SPFError):
        expand_macros("%{c}", IPV4_CONTEXT)


def test_expand_macros_sender_without_local_part():
    context = MacroContext(sender="example.com", domain="example.com",
                           ip=ipaddress.ip_address("192.0.2.3"), helo="example.com")
    assert expand_macros("%{l}@%{o}", context) == "postmaster@example.com"


def test_truncate_domain():
    long_name = ".".join(["a" * 60] * 5) + ".example.com"
    truncated = truncate_domain(long_name)
    assert len(truncated) <= 253 and long_name.endswith("." + truncated)
    assert truncate_domain("example.com") == "example.com"


SPF_ALPHABET = st.sampled_from(list("v=spf1 +-~?:/.%{}_-aixmptlrsd0123456789") +
                               ["all", "include:", "ip4:", "ip6:", "mx", "ptr", "exists:",
                                "redirect=", "exp=", "%{d}", "//", "\t", "\u00e9"])


@given(st.one_of(st.text(), st.lists(SPF_ALPHABET).map(lambda p: "v=spf1 " + "".join(p))))
def test_any_text_gives_a_record_or_spf_error(text):
    try:
        record = parse_spf(text)
    except SPFError:
        return
    assert record.dns_lookup_count >= 0
    for modifier in record.modifiers:
        assert isinstance(modifier.value, str)


def test_long_digit_strings_are_handled():
    huge = "9" * 5000
    record = parse_spf(f"v=spf1 exists:%{{d{huge}}}.example.com -all")
    assert expand_macros(record.mechanisms[0].domain_spec, IPV4_CONTEXT) == (
        "email.example.com.example.com")
    assert expand_macros("%{d01}", IPV4_CONTEXT) == "com"
    with pytest.raises(SPFError, match="nonzero"):
        parse_spf("v=spf1 exists:%{d000}.example.com")
    with pytest.raises(SPFError, match="prefix length"):
        parse_spf(f"v=spf1 a/{huge}")


def test_txt_strings_are_joined_without_spaces():
    # "v=spf1 ip4:192.0.2.1" "-all" is one record "v=spf1 ip4:192.0.2.1-all" (RFC 7208 §3.3)
    with pytest.raises(SPFError, match="ip4:192.0.2.1-all"):
        parse_spf("v=spf1 ip4:192.0.2.1" + "-all")
    assert parse_spf("v=spf1 ip4:192.0.2.1 " + "-all").all_qualifier == Qualifier.FAIL
