"""`mailsec-exporter scan` against the real Postfix and Dovecot: what it prints agrees with
what openssl s_client can negotiate with the same listeners."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def run_scan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", "scan", *args],
                          capture_output=True, text=True, timeout=300)


def openssl_accepts(endpoint, version_flag: str, starttls: str | None) -> bool:
    command = ["openssl", "s_client", "-connect", f"{endpoint.host}:{endpoint.port}", version_flag,
               "-servername", endpoint.server_name]
    if starttls:
        command += ["-starttls", starttls]
    run = subprocess.run(command, input="", capture_output=True, text=True, timeout=30)
    return run.returncode == 0 and "Cipher is (NONE)" not in run.stdout


@pytest.mark.parametrize("scenario, starttls", [("smtp-good", "smtp"), ("imaps-good", None), ("pop3-good", "pop3")])
def test_scan_json_agrees_with_openssl(mail_endpoints, scenario, starttls):
    endpoint = mail_endpoints[scenario]
    args = [f"{endpoint.host}:{endpoint.port}", "--json", "--tls.server-name", endpoint.server_name]
    if starttls:
        args += ["--starttls", starttls]
    run = run_scan(*args)
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads(run.stdout)
    supported = {v["version"] for v in report["versions"] if v["supported"]}
    for label, flag in (("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3")):
        assert (label in supported) == openssl_accepts(endpoint, flag, starttls), label
    # The local OpenSSL refuses TLS 1.0/1.1 at its default security level; the server's
    # Debian OpenSSL does too, so the scan must find them off.
    assert not supported & {"SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"}
    assert {c["name"] for c in report["ciphers"] if c["version"] == "TLSv1.3"} >= {"TLS_AES_256_GCM_SHA384"}
    assert report["connections"] >= len(report["ciphers"])


def test_scan_table_and_failure_exit_status(mail_endpoints):
    endpoint = mail_endpoints["smtp-good"]
    run = run_scan(f"{endpoint.host}:{endpoint.port}", "--starttls", "smtp")
    assert run.returncode == 0
    assert "TLS_AES_256_GCM_SHA384" in run.stdout and "TLSv1.3" in run.stdout
    refused = run_scan("127.0.0.1:1", "--starttls", "smtp", "--timeout", "2")
    assert refused.returncode == 2 and "connection_refused" in refused.stdout


def test_scan_refuses_a_bad_endpoint():
    run = run_scan("mx.example.org:99999")
    assert run.returncode == 2 and "port" in run.stderr
