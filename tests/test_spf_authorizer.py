"""The addresses an SPF record authorizes, resolved through real DNS (Knot and Unbound of
tests/dnsfixtures): what classifies DMARC report sources. Each case restates the zones."""

from __future__ import annotations

import ipaddress

import pytest

from exporter.dnsclient import DNSClient, LookupCache
from exporter.domains.spf import SPFUnavailable, spf_authorizer
from exporter.records.spf import Qualifier
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import MX1_GOOD, MX1_GOOD_V6, MX2_GOOD

pytestmark = pytest.mark.integration


@pytest.fixture
def dns():
    return LookupCache(DNSClient(running_dns_lab().resolver))


@pytest.mark.parametrize("domain, address, result", [
    # good.test: "v=spf1 mx include:_spf.good.test -all"; _spf: "ip4:127.77.1.0/24 a:mx1.good.test ~all"
    ("good.test", MX2_GOOD, Qualifier.PASS),             # mx
    ("good.test", MX1_GOOD_V6, Qualifier.PASS),          # mx, its AAAA
    ("good.test", "127.77.1.200", Qualifier.PASS),       # include -> ip4 range
    ("good.test", "192.0.2.1", Qualifier.FAIL),          # the include's ~all does not match: -all does
    ("spf-redirect.test", "127.77.1.5", Qualifier.PASS),     # redirect=_spf.good.test
    ("spf-redirect.test", "192.0.2.1", Qualifier.SOFTFAIL),  # the target's ~all
    ("spf-macro.test", "192.0.2.9", Qualifier.PASS),     # include:_spf.%{d} is followed
    ("spf-macro.test", "10.1.2.3", Qualifier.FAIL),      # exists:%{i}... needs the sender: matches nothing
    ("spf-plusall.test", "10.1.2.3", Qualifier.PASS),    # ptr +all: the +all
    ("nullmx.test", MX1_GOOD, Qualifier.FAIL),           # -all
])
async def test_addresses_get_the_result_an_evaluation_would_give(dns, domain, address, result):
    authorizer = await spf_authorizer(domain, dns)
    assert authorizer.result(ipaddress.ip_address(address)) is result
    assert authorizer.authorizes(ipaddress.ip_address(address)) is (result is Qualifier.PASS)


async def test_no_record_authorizes_nobody_and_broken_ones_are_unavailable(dns):
    assert await spf_authorizer("nothing.test", dns) is None
    for broken in ("spf-loop.test", "spf-noinclude.test", "spf-many.test", "spf-two.test"):
        with pytest.raises(SPFUnavailable):
            await spf_authorizer(broken, dns)
