"""`mailsec-exporter check` against the real Knot + Unbound and nginx fixtures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.dnsfixtures import running_dns_lab
from tests.httpsfixtures import running_https_lab

pytestmark = pytest.mark.integration


def run_check(*args: str) -> subprocess.CompletedProcess:
    resolver = running_dns_lab().resolver.nameservers[0]
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check", *args, "--dns.nameserver", f"{resolver.address}:{resolver.port}"],
        capture_output=True, text=True, timeout=120,
    )


def codes(report: dict, domain: str, check: str) -> set[str]:
    entry = next(d for d in report["domains"] if d["domain"] == domain)
    return {finding["code"] for finding in entry["checks"][check]}


def test_findings_are_grouped_by_check_with_fixes_and_exit_1():
    run = run_check("spf-plusall.test", "good.test", "--json", "--dkim-selector", "rsa2048",
                    "--tls.ca-file", running_https_lab().ca_file)
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["exit_status"] == 1
    assert "spf_pass_all" in codes(report, "spf-plusall.test", "spf")
    assert codes(report, "spf-plusall.test", "dkim") == {"dkim_key_missing"}
    good = next(d for d in report["domains"] if d["domain"] == "good.test")
    assert good["failed_checks"] == {}                      # the MTA-STS policy came from nginx
    assert {e["target"] for e in good["mx_endpoints"]} == {"mx1.good.test:25", "mx2.good.test:25"}
    assert all(f["fix"] for d in report["domains"] for fs in d["checks"].values() for f in fs)


def test_text_report_and_exit_2_when_a_check_cannot_run():
    run = run_check("bogus.test")
    assert run.returncode == 2
    assert "== bogus.test" in run.stdout and "COULD NOT RUN" in run.stdout


def test_bad_arguments_are_refused():
    run = run_check("not a domain!")
    assert run.returncode == 2 and "mailsec-exporter check:" in run.stderr
