"""The exporter as a user runs it: a child process, its HTTP endpoints, --config.check, SIGHUP."""

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter_process import ExporterProcess, sample_value

REPO = Path(__file__).parent.parent


def closed_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, ports: list[int]) -> Path:
    targets = "\n".join(f"  - {{host: 127.0.0.1, port: {port}, module: smtp}}" for port in ports)
    path.write_text(f"global:\n  interval: 1m\n  timeout: 2s\n  jitter: 0s\ntargets:\n{targets}\n")
    return path


@pytest.fixture
def exporter(tmp_path):
    process = ExporterProcess(write_config(tmp_path / "config.yml", [closed_port()]))
    yield process
    process.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60)


def test_health_readiness_and_landing_page(exporter):
    assert exporter.get("/-/healthy")[0] == 200
    assert exporter.get("/-/ready")[0] == 200
    status, content_type, body = exporter.get("/")
    assert status == 200 and content_type.startswith("text/html")
    assert 'href="metrics"' in body and 'href="-/healthy"' in body
    assert exporter.get("/no-such-page")[0] == 404


def test_metrics_show_the_failed_probe_and_self_metrics(exporter):
    samples = exporter.wait_for(lambda s: sample_value(s, "mailsec_probe_success") is not None and s)
    assert sample_value(samples, "mailsec_probe_success") == 0
    assert sample_value(samples, "mailsec_probe_failure_info", reason="connection_refused") == 1
    assert sample_value(samples, "mailsec_config_last_reload_successful") == 1
    assert sample_value(samples, "mailsec_exporter_targets", kind="endpoint") == 1
    assert sample_value(samples, "mailsec_exporter_probes_total", module="smtp", result="failure") >= 1
    build = [s for s in samples if s.name == "mailsec_exporter_build_info"]
    assert len(build) == 1 and build[0].labels["version"]


def test_metrics_content_type_is_the_text_format(exporter):
    status, content_type, _ = exporter.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_a_real_scrape(exporter):
    exporter.wait_for(lambda s: sample_value(s, "mailsec_probe_success") is not None)
    run = subprocess.run(["promtool", "check", "metrics"], input=exporter.scrape(),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not (run.stdout + run.stderr).strip(), run.stdout + run.stderr


def test_sighup_with_a_broken_file_keeps_the_running_config(tmp_path):
    first, second = closed_port(), closed_port()
    config = write_config(tmp_path / "config.yml", [first])
    process = ExporterProcess(config)
    try:
        process.wait_for(lambda s: sample_value(s, "mailsec_probe_success", target=f"127.0.0.1:{first}") is not None)
        config.write_text("targets:\n  - {host: 127.0.0.1, port: 99999, module: smtp}\n")
        process.process.send_signal(signal.SIGHUP)
        samples = process.wait_for(lambda s: sample_value(s, "mailsec_config_last_reload_successful") == 0 and s)
        assert sample_value(samples, "mailsec_probe_success", target=f"127.0.0.1:{first}") == 0   # still there
        assert "port" in process.log

        write_config(config, [second])
        process.process.send_signal(signal.SIGHUP)
        samples = process.wait_for(
            lambda s: sample_value(s, "mailsec_probe_success", target=f"127.0.0.1:{second}") is not None and s
        )
        assert sample_value(samples, "mailsec_config_last_reload_successful") == 1
        assert sample_value(samples, "mailsec_probe_success", target=f"127.0.0.1:{first}") is None   # removed
    finally:
        process.stop()


def test_config_check_accepts_the_example_config():
    run = run_cli("--config.file", str(REPO / "config.example.yml"), "--config.check")
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout


def test_config_check_refuses_a_bad_file_with_file_line_and_reason(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("global:\n  interval: 5m\ntargets:\n  - host: mx.example.org\n    module: nosuchmodule\n")
    run = run_cli("--config.file", str(bad), "--config.check")
    assert run.returncode == 1
    assert f"{bad}:5:" in run.stderr and "nosuchmodule" in run.stderr


def test_a_bad_config_at_start_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("targets: [\n")
    run = run_cli("--config.file", str(bad), "--web.listen-address", "127.0.0.1:0")
    assert run.returncode == 1 and str(bad) in run.stderr


def test_reload_over_http_is_refused_without_the_lifecycle_flag(exporter):
    status, _, body = exporter.get("/-/reload", method="POST")
    assert status == 403 and "--web.enable-lifecycle" in body
    exporter.process.send_signal(signal.SIGHUP)                      # SIGHUP still reloads
    exporter.wait_for(lambda s: "config loaded" in exporter.log.split("listening on", 1)[1])


def test_reload_over_http(tmp_path):
    first, second = closed_port(), closed_port()
    config = write_config(tmp_path / "config.yml", [first])
    process = ExporterProcess(config, "--web.enable-lifecycle")
    try:
        process.wait_for(lambda s: sample_value(s, "mailsec_probe_success", target=f"127.0.0.1:{first}") is not None)
        assert process.get("/-/reload")[0] == 405                      # GET does not reload

        config.write_text("targets:\n  - {host: 127.0.0.1, port: 99999, module: smtp}\n")
        status, _, body = process.get("/-/reload", method="POST")
        assert status == 500 and f"{config}:2:" in body and "65535" in body
        samples = process.samples()
        assert sample_value(samples, "mailsec_config_last_reload_successful") == 0
        assert sample_value(samples, "mailsec_probe_success", target=f"127.0.0.1:{first}") == 0   # still there

        write_config(config, [first, second])
        status, _, body = process.get("/-/reload", method="POST")
        assert status == 200 and "2 targets" in body
        samples = process.wait_for(
            lambda s: sample_value(s, "mailsec_probe_success", target=f"127.0.0.1:{second}") is not None and s
        )
        assert sample_value(samples, "mailsec_config_last_reload_successful") == 1
        # The unchanged target kept its result: it was probed once only (interval 1m).
        assert sample_value(samples, "mailsec_exporter_probes_total", module="smtp", result="failure") == 2

        write_config(config, [second])
        assert process.get("/-/reload", method="POST")[0] == 200
        samples = process.samples()
        assert sample_value(samples, "mailsec_probe_success", target=f"127.0.0.1:{first}") is None   # removed
        assert sample_value(samples, "mailsec_probe_success", target=f"127.0.0.1:{second}") == 0
    finally:
        process.stop()


def test_failed_probes_are_logged_once_with_fields(tmp_path):
    port = closed_port()
    config = tmp_path / "config.yml"
    config.write_text(f"global: {{interval: 1s, timeout: 1s, jitter: 0s}}\n"
                      f"targets:\n  - {{host: 127.0.0.1, port: {port}, module: smtp}}\n")
    process = ExporterProcess(config, "--log.format", "json")
    try:
        process.wait_for(lambda s: (sample_value(s, "mailsec_exporter_probes_total", result="failure") or 0) >= 3)
    finally:
        process.stop()
    records = [json.loads(line) for line in process.log_lines if line.startswith("{")]
    failures = [r for r in records if r["msg"] == "probe failed"]
    assert len(failures) == 1, process.log               # once per state change, not once per run
    assert failures[0]["target"] == f"127.0.0.1:{port}" and failures[0]["module"] == "smtp"
    assert failures[0]["reason"] == "connection_refused" and failures[0]["level"] == "warn"
