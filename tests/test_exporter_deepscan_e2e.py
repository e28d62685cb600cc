"""Deep TLS scans scheduled by the exporter process, exported on /metrics, against real
Postfix and Dovecot; the command-line scan of the same endpoint is the reference."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from exporter_process import ExporterProcess, sample_value

pytestmark = pytest.mark.integration


def test_scheduled_deep_scan_is_exported(tmp_path, mail_endpoints):
    smtp, imaps = mail_endpoints["smtp-good"], mail_endpoints["imaps-good"]
    config = tmp_path / "config.yml"
    config.write_text(
        "global: {interval: 5m, timeout: 10s, jitter: 0s}\n"
        "modules:\n"
        f"  mx: {{protocol: smtp, tls: {{ca_file: {smtp.ca_file}, server_name: {smtp.server_name}}}, deep_scan: {{}}}}\n"
        f"  mbox: {{protocol: imaps, tls: {{ca_file: {imaps.ca_file}, server_name: {imaps.server_name}}}}}\n"
        "targets:\n"
        f"  - {{host: {smtp.host}, port: {smtp.port}, module: mx}}\n"
        f"  - {{host: {imaps.host}, port: {imaps.port}, module: mbox}}\n"
    )
    exporter = ExporterProcess(config)
    try:
        samples = exporter.wait_for(
            lambda s: sample_value(s, "mailsec_tls_scan_success") is not None
            and sample_value(s, "mailsec_probe_success", module="mbox") is not None and s,
            timeout=120,
        )
        status = json.loads(exporter.get("/api/v1/status")[2])
    finally:
        exporter.stop()
    mx = {"target": f"{smtp.host}:{smtp.port}", "module": "mx"}
    assert sample_value(samples, "mailsec_tls_scan_success", **mx) == 1
    # Only the module with deep_scan is scanned.
    assert [s for s in samples if s.name == "mailsec_tls_scan_success" and s.labels["module"] == "mbox"] == []

    reference = subprocess.run(
        [sys.executable, "-m", "exporter", "scan", f"{smtp.host}:{smtp.port}", "--starttls", "smtp", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    report = json.loads(reference.stdout)
    for version in report["versions"]:
        assert sample_value(samples, "mailsec_tls_protocol_supported", version=version["version"], **mx) == float(
            version["supported"]
        )
    exported = {(s.labels["version"], s.labels["cipher"]) for s in samples if s.name == "mailsec_tls_cipher_accepted"}
    assert exported == {(c["version"], c["name"]) for c in report["ciphers"]}
    assert sample_value(samples, "mailsec_tls_scan_connections", **mx) > 0
    assert sample_value(samples, "mailsec_exporter_targets", kind="deep_scan") == 1
    scans = {e["module"]: e["deep_scan"] for e in status["endpoints"]}
    assert scans["mbox"] is None
    assert scans["mx"]["success"] and set(scans["mx"]["supported_versions"]) == {
        v["version"] for v in report["versions"] if v["supported"]
    }
    assert scans["mx"]["grade"] == report["grade"]
