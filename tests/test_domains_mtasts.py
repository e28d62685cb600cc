"""MTA-STS policy fetch against a real nginx (tests/httpsfixtures) whose host names come from
the real DNS lab: each policy host misbehaves in one way, stated in httpsfixtures.SITES."""

from __future__ import annotations

import socket
import time

import pytest

from exporter.dnsclient import DNSClient, LookupCache
from exporter.config import Domain
from exporter.domains.check import check_domain
from exporter.domains.common import CheckFailureReason
from exporter.domains.mtasts import check_mta_sts, judge_mx_coverage
from exporter.domains.mx import check_mx
from exporter.domains.policy_fetch import POLICY_SIZE_LIMIT, fetch_policy
from exporter.records.mtasts import STSMode
from tests.dnsfixtures import running_dns_lab
from tests.dnsfixtures.zones import SILENT_HTTPS_ADDRESS
from tests.httpsfixtures import GOOD_POLICY, running_https_lab

# Knot, Unbound, nginx or hostile DNS servers on privileged loopback ports: started as root.
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def labs():
    return running_dns_lab(), running_https_lab()


@pytest.fixture
def dns(labs) -> LookupCache:
    return LookupCache(DNSClient(labs[0].resolver))


@pytest.fixture
def ca_file(labs) -> str:
    return labs[1].ca_file


def codes(findings) -> set[str]:
    return {finding.code for finding in findings}


async def test_good_policy_is_fetched_and_covers_every_mx(dns, ca_file):
    result = await check_mta_sts("good.test", dns, ca_file=ca_file, timeout=5)
    assert result.failure is None and result.policy_failure is None
    assert (result.policy.mode, result.policy.max_age, result.policy.mx) == (
        STSMode.ENFORCE, 604800, ("mx1.good.test", "*.good.test"))
    judged = judge_mx_coverage(result, await check_mx("good.test", dns))
    assert judged.mx_covered is True and judged.uncovered_mx == () and codes(judged.findings) == set()


async def test_the_body_is_returned_byte_for_byte(dns, ca_file):
    assert await fetch_policy("good.test", dns, ca_file=ca_file, timeout=5) == GOOD_POLICY.encode()


async def test_policy_missing_a_real_mx(dns, ca_file):
    result = await check_mta_sts("sts-uncovered.test", dns, ca_file=ca_file, timeout=5)
    judged = judge_mx_coverage(result, await check_mx("sts-uncovered.test", dns))
    assert judged.mx_covered is False and judged.uncovered_mx == ("mx2.good.test",)
    # enforce mode: the uncovered MX is an error; max_age 3600 is short.
    assert {(f.code, f.severity.value) for f in judged.findings} == {
        ("mta_sts_mx_not_covered", "error"), ("mta_sts_max_age_short", "warning")}


@pytest.mark.parametrize("domain, reason, detail_part", [
    ("sts-404.test", CheckFailureReason.HTTP_STATUS, "HTTP 404"),
    ("sts-type.test", CheckFailureReason.CONTENT_TYPE, "text/html"),
    ("sts-redirect.test", CheckFailureReason.HTTP_REDIRECT, "HTTP 301 to https://mta-sts.good.test/"),
    ("sts-big.test", CheckFailureReason.TOO_LARGE, "Content-Length"),
    ("sts-big-chunked.test", CheckFailureReason.TOO_LARGE, f"body over {POLICY_SIZE_LIMIT} bytes"),
    ("sts-invalid.test", CheckFailureReason.POLICY_INVALID, "needs at least one mx pattern"),
    ("sts-tls.test", CheckFailureReason.TLS_ERROR, "mta-sts.sts-tls.test"),
    ("sts-noaddr.test", CheckFailureReason.HTTPS_NO_ADDRESS, "mta-sts.sts-noaddr.test A"),
])
async def test_each_way_of_failing_has_its_reason(dns, ca_file, domain, reason, detail_part):
    result = await check_mta_sts(domain, dns, ca_file=ca_file, timeout=5)
    assert result.failure is None and result.lookup.valid      # the TXT record itself is fine
    assert result.policy is None and result.policy_failure.reason is reason
    assert detail_part in result.policy_failure.detail
    assert codes(result.findings) == {"mta_sts_policy_unavailable"}


async def test_a_refused_policy_host_is_the_domains_problem_not_a_run_the_exporter_could_not_do(labs, ca_file):
    result = await check_domain(Domain("sts-404.test"), DNSClient(labs[0].resolver), https_ca_file=ca_file)
    assert result.check_failures()["mta_sts_policy"].reason is CheckFailureReason.HTTP_STATUS
    assert not result.success and result.checked


async def test_the_system_store_does_not_trust_the_test_ca(dns):
    result = await check_mta_sts("good.test", dns, ca_file=None, timeout=5)
    assert result.policy_failure.reason is CheckFailureReason.TLS_ERROR


async def test_no_record_no_fetch(dns, ca_file):
    # nullmx.test has no _mta-sts record and no policy host: nothing is fetched, nothing fails.
    result = await check_mta_sts("nullmx.test", dns, ca_file=ca_file, timeout=5)
    assert result.policy_failure is None and result.policy is None
    assert codes(result.findings) == {"mta_sts_missing"}


async def test_policy_host_resolved_through_the_configured_dns_not_the_system(labs, ca_file):
    # The authoritative server alone also knows mta-sts.good.test: the fetch works through
    # whichever server the DNSClient is given, and the system resolver knows no *.test name.
    result = await check_mta_sts("good.test", DNSClient(labs[0].authoritative), ca_file=ca_file, timeout=5)
    assert result.policy is not None


async def test_timeout_covers_a_server_that_accepts_and_never_answers(dns, ca_file):
    with socket.create_server((SILENT_HTTPS_ADDRESS, 443)):   # accepts (backlog), never speaks TLS
        started = time.monotonic()
        result = await check_mta_sts("sts-silent.test", dns, ca_file=ca_file, timeout=0.5)
        elapsed = time.monotonic() - started
    assert result.policy_failure.reason is CheckFailureReason.HTTPS_TIMEOUT
    assert elapsed < 2.0
