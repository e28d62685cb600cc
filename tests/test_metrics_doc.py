"""docs/metrics.md and the code must describe the same metric families, and a real
exposition with every family present must pass `promtool check metrics`."""

import re
from dataclasses import replace
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.service.store import ResultStores
from exporter.metrics.domain import DOMAIN_METRICS
from exporter.config import Target
from exporter.metrics.probe import probe_registry
from exporter.results import FailureReason
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.reports import REPORT_METRICS, ReportsCollector

from test_tlsscan_metrics import RENEGOTIATION, RESULT as SCAN_RESULT, RESUMPTION, STAPLE
from results_factory import failed_result, host_result, revocation_result, tls_result

from blocklist_factory import DBL, ZEN, listed_result, unusable_result
from reportfixtures import full_report_snapshot

DOC = Path(__file__).parent.parent / "docs" / "metrics.md"


def full_exposition() -> str:
    """An exposition where every family has samples: a TLS success on two addresses, a failure,
    self-metrics."""
    registry = CollectorRegistry(auto_describe=False)
    metrics = ExporterMetrics(registry)
    metrics.record_probe("endpoint", "smtp", True, 0.3)
    metrics.scheduler_lag.observe(0.1)
    metrics.targets.labels("endpoint").set(2)
    metrics.record_reload(True)
    metrics.probe_requests.labels("refused").inc()
    metrics.shard.labels("0", "1").set(1)
    metrics.http_events.labels("evicted").inc()
    registry.register(ReportsCollector(full_report_snapshot))
    results = ResultStores()
    good, bad = Target("127.0.0.1", 25, "smtp"), Target("127.0.0.2", 25, "smtp")
    # As the scheduler stores a result: with its module's interval.
    # The second address also showed its certificate of another key type.
    other_key_type = replace(tls_result(), address="::1", other_chains=(tls_result().tls.chain,))
    two_addresses = host_result(tls_result(), other_key_type)
    results.endpoints.put(good.key, good, replace(two_addresses, interval_seconds=300.0))
    results.endpoints.put(bad.key, bad, host_result(failed_result(FailureReason.TIMEOUT)))
    # Every optional fact known, so that every scan family has a sample.
    results.scans.put(good.key, good, replace(SCAN_RESULT, ocsp_stapling=True, extended_master_secret=True,
                                              ocsp_staple=STAPLE, starttls_injection=False, fallback_scsv=True,
                                              session_resumption=RESUMPTION, client_renegotiation=RENEGOTIATION))
    results.revocations.put(good.key, good, revocation_result())
    results.blocklists.put(ZEN.name, ZEN, listed_result())
    results.blocklists.put(DBL.name, DBL, unusable_result())
    return (generate_latest(registry) + b"".join(results.exposition_chunks())).decode()


def probe_exposition() -> str:
    """What /probe answers for a TLS success."""
    return generate_latest(probe_registry(Target("127.0.0.1", 25, "smtp"), host_result(tls_result()))).decode()


def documented_families() -> set[str]:
    return set(re.findall(r"^### ((?:mailsec_|probe_)[a-z0-9_]+)\s*$", DOC.read_text(), re.MULTILINE))


def exposed_families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def test_every_exposed_family_is_documented_and_vice_versa():
    # Domain families need real DNS answers to be exposed: tests/test_domain_metrics.py
    # proves against real servers that exactly DOMAIN_METRICS are, and all documented here.
    domain_families = {spec.name for spec in DOMAIN_METRICS}
    exposed = exposed_families(full_exposition()) | exposed_families(probe_exposition()) | domain_families
    documented = documented_families()
    assert exposed - documented == set(), "exposed but not in docs/metrics.md"
    assert documented - exposed == set(), "in docs/metrics.md but not exposed"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
@pytest.mark.parametrize("exposition", [full_exposition, probe_exposition])
def test_promtool_check_metrics_is_clean(exposition):
    run = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition(), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and not run.stdout.strip() and not run.stderr.strip(), run.stdout + run.stderr


def test_every_report_family_has_a_sample_in_the_full_exposition():
    exposed = exposed_families(full_exposition())
    assert {spec.name + ("_total" if spec.type == "counter" else "") for spec in REPORT_METRICS} <= exposed
