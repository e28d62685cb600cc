"""The `blocklists:` section and the domains' `blocklist_spf`: good files and exact errors."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from exporter.config import (
    Blocklist,
    BlocklistKind,
    BlocklistSettings,
    ConfigError,
    ListingMeaning,
    ReturnCodes,
    load_config,
)

A = ipaddress.IPv4Address


def load(tmp_path, text: str):
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return load_config(str(path))


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value).split("config.yml:", 1)[1]


ZEN = """
blocklists:
  spf_addresses: true
  concurrency: 4
  lists:
    - name: spamhaus-zen
      zone: zen.dq.spamhaus.net
      kind: ip
      query_key: abcdef123456
      interval: 2h
      removal_url: https://check.spamhaus.org/
      codes:
        127.0.0.2: spam
        127.0.0.3: snowshoe
        127.0.0.4-127.0.0.7: exploited
        127.0.0.9: hijacked
        127.0.0.10-127.0.0.11: policy
      refusal_codes: [127.255.255.252, 127.255.255.254-127.255.255.255]
    - {name: dbl, zone: DBL.Spamhaus.org., kind: domain, test_listed: dbltest.com}
domains:
  - {name: example.org, blocklist_spf: false}
  - {name: example.net}
"""


def test_a_full_section(tmp_path):
    config = load(tmp_path, ZEN)
    zen, dbl = config.blocklists.lists
    assert zen == Blocklist(
        name="spamhaus-zen", zone="zen.dq.spamhaus.net", kind=BlocklistKind.IP,
        codes=(ReturnCodes(A("127.0.0.2"), A("127.0.0.2"), ListingMeaning.SPAM),
               ReturnCodes(A("127.0.0.3"), A("127.0.0.3"), ListingMeaning.SNOWSHOE),
               ReturnCodes(A("127.0.0.4"), A("127.0.0.7"), ListingMeaning.EXPLOITED),
               ReturnCodes(A("127.0.0.9"), A("127.0.0.9"), ListingMeaning.HIJACKED),
               ReturnCodes(A("127.0.0.10"), A("127.0.0.11"), ListingMeaning.POLICY)),
        refusal_codes=((A("127.255.255.252"), A("127.255.255.252")), (A("127.255.255.254"), A("127.255.255.255"))),
        query_key="abcdef123456", interval=7200.0, removal_url="https://check.spamhaus.org/",
    )
    assert zen.query_zone == "abcdef123456.zen.dq.spamhaus.net"
    assert dbl == Blocklist("dbl", "dbl.spamhaus.org", BlocklistKind.DOMAIN, test_listed="dbltest.com")
    assert dbl.interval == 3600.0     # longer than the probes' 5m by default
    assert (config.blocklists.spf_addresses, config.blocklists.concurrency) == (True, 4)
    assert [d.blocklist_spf for d in config.domains] == [False, None]


def test_no_section_means_no_lists(tmp_path):
    assert load(tmp_path, "domains: [{name: example.org}]\n").blocklists == BlocklistSettings()


@pytest.mark.parametrize("lists, error", [
    ("- {name: a, kind: ip}", "4: blocklists.lists[0]: 'zone' is required"),
    ("- {name: a, zone: x.org}", "4: blocklists.lists[0]: 'kind' is required"),
    ("- {name: a, zone: x.org, kind: asn}", "4: blocklists.lists[0].kind: must be one of ip, domain; got 'asn'"),
    ("- {name: 'a b', zone: x.org, kind: ip}",
     "4: blocklists.lists[0].name: a list name may only have letters, digits, '_', '.' and '-'"),
    ("- {name: a, zone: 'x..org', kind: ip}", "4: blocklists.lists[0].zone: 'x..org' has an invalid part ''"),
    ("- {name: a, zone: x.org, kind: ip, query_key: a.b}",
     "4: blocklists.lists[0].query_key: must be one DNS label: 1 to 63 letters, digits or hyphens, no dots"),
    ("- {name: a, zone: x.org, kind: ip, codes: {127.0.0.2: bad}}",
     "4: blocklists.lists[0].codes.127.0.0.2: must be one of spam, snowshoe, exploited"),
    ("- {name: a, zone: x.org, kind: ip, codes: {10.0.0.2: spam}}",
     "4: blocklists.lists[0].codes.10.0.0.2: '10.0.0.2' is outside 127.0.0.0/8, where lists answer (RFC 5782)"),
    ("- {name: a, zone: x.org, kind: ip, codes: {127.0.0.9-127.0.0.2: spam}}",
     "4: blocklists.lists[0].codes.127.0.0.9-127.0.0.2: '127.0.0.9-127.0.0.2': the range ends before it starts"),
    ("- {name: a, zone: x.org, kind: ip, codes: {127.0.0.2-127.0.0.5: spam, 127.0.0.4: policy}}",
     "4: blocklists.lists[0].codes.127.0.0.4: overlaps the codes on line 4"),
    ("- {name: a, zone: x.org, kind: ip, codes: {127.0.0.2: spam}, refusal_codes: [127.0.0.2]}",
     "4: blocklists.lists[0].refusal_codes: a refusal code is also a listing code (127.0.0.2-127.0.0.2)"),
    ("- {name: a, zone: x.org, kind: ip, test_listed: example.org}",
     "4: blocklists.lists[0].test_listed: must be an IPv4 address for a list of kind ip; got 'example.org'"),
    ("- {name: a, zone: x.org, kind: domain, test_not_listed: 127.0.0.1}",
     "4: blocklists.lists[0].test_not_listed: must be a domain name for a list of kind domain"),
    ("- {name: a, zone: x.org, kind: ip, codes: {127.0.0.2: spam}, refusal_codes: [127.0.0.1-127.0.0.3]}",
     "4: blocklists.lists[0].refusal_codes: a refusal code is also a listing code"),
    ("- {name: a, zone: x.org, kind: ip, refusal_codes: [nope]}",
     "4: blocklists.lists[0].refusal_codes[0]: 'nope' is not an IPv4 address such as 127.0.0.2"),
    ("- {name: a, zone: x.org, kind: ip, interval: 0s}", "4: blocklists.lists[0].interval: must be greater than 0"),
    ("- {name: a, zone: x.org, kind: ip, removal_url: 'javascript:alert(1)'}",
     "4: blocklists.lists[0].removal_url: must be an http:// or https:// URL"),
    ("- {name: a, zone: x.org, kind: ip, colour: red}", "4: blocklists.lists[0].colour: unknown key"),
    ("- {name: a, zone: x.org, kind: ip}\n    - {name: a, zone: y.org, kind: ip}",
     "5: blocklists.lists[1]: same name a as the list on line 4"),
    ("- {name: a, zone: x.org, kind: ip}\n    - {name: b, zone: X.org, kind: domain}",
     "5: blocklists.lists[1]: same zone x.org as the list on line 4"),
])
def test_bad_lists_are_refused_with_file_and_line(tmp_path, lists, error):
    text = f"blocklists:\n  lists:\n    # the lists\n    {lists}\n"
    assert error_of(tmp_path, text).startswith(error)


@pytest.mark.parametrize("text, error", [
    ("blocklists: {concurrency: 0}\n", "1: blocklists.concurrency: must be an integer from 1 to 256, got 0"),
    ("blocklists: {spf_addresses: yes please}\n", "1: blocklists.spf_addresses: must be true or false"),
    ("blocklists: [zen]\n", "1: blocklists: must be a mapping, got a list"),
    ("domains:\n  - {name: example.org, blocklist_spf: 1}\n", "2: domains[0].blocklist_spf: must be true or false"),
])
def test_bad_settings_are_refused(tmp_path, text, error):
    assert error_of(tmp_path, text).startswith(error)


def test_the_shipped_presets_load(tmp_path):
    """Every YAML block of docs/blocklists.md is a valid `blocklists:` section."""
    import re
    from pathlib import Path
    doc = (Path(__file__).parent.parent / "docs" / "blocklists.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert len(blocks) >= 2
    names = []
    for block in blocks:
        config = load(tmp_path, block)
        names += [blocklist.name for blocklist in config.blocklists.lists]
    assert {"spamhaus-zen", "spamhaus-dbl", "spamcop", "barracuda", "psbl", "mailspike", "uceprotect-1"} <= set(names)
