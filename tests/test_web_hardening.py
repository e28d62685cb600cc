"""The HTTP side against hostile clients: slow and idle connections, floods of them under a
low descriptor limit, malformed requests, clients that leave mid-answer, reloads of a big
file, bad listen addresses; and server-controlled text shown without its control characters."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import parse_listen_address
from exporter.config import MailProtocol, Module, StartTLS, Target
from exporter.domains.report import DomainReport, render_text
from exporter.presentation import printable
from exporter.probes.report import debug_report
from exporter.results import FailureReason
from exporter.tlsscan.report import render_table
from exporter.web.server import (MAX_CONNECTIONS, READ_TIMEOUT_SECONDS, ConnectionGuard, EventTally, ServerEvent,
                                 ServerLimits, ServerLog, connection_cap, listening_sockets)
from exporter_process import ExporterProcess, running_app, sample_value
from hostile import FakeServer, Script, issue, server_tls_context, silent, smtp_server, write_pem
from results_factory import failed_result, host_result

# --------------------------------------------------------------------------------------
# printable(): server-controlled text without its control characters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, shown", [
    ("220 mail.example.org ESMTP", "220 mail.example.org ESMTP"),
    ("", ""),
    ("café ünïcode 日本 ✓", "café ünïcode 日本 ✓"),          # printable letters stay
    ("a\u00a0b", "a\u00a0b"),                                  # a no-break space is shown, not escaped
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),            # ANSI colour
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),                # OSC: set the window title
    ("one\ntwo\rthree\ttab", "one\\x0atwo\\x0dthree\\x09tab"),  # no forged report lines
    ("\x00\x7f", "\\x00\\x7f"),                                 # NUL, DEL
    ("\x9b31m", "\\x9b31m"),                                    # C1 CSI
    ("abc\u202edef", "abc\\u202edef"),                          # right-to-left override
    ("\u2066x\u2069", "\\u2066x\\u2069"),                       # bidi isolates
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),       # zero-width space, BOM
    ("line\u2028para\u2029", "line\\u2028para\\u2029"),         # line and paragraph separators
    ("\U000e0041tag", "\\U000e0041tag"),                        # a tag character (format, astral)
    ("\udcff", "\\udcff"),                                      # a lone surrogate (from surrogateescape)
    ("back\\slash", "back\\slash"),
])
def test_printable(text, shown):
    assert printable(text) == shown


HOSTILE = "554 \x1b[2J\x1b[31mowned\u202egnp.exe\x07\nResult: success"


def test_debug_report_escapes_what_the_server_sent():
    result = dataclasses.replace(failed_result(FailureReason.SERVICE_UNAVAILABLE), failure_detail=HOSTILE,
                                 transcript=(f"S: {HOSTILE}", "C: QUIT"))
    module = Module("smtp", MailProtocol.SMTP, 25, StartTLS.REQUIRED, timeout=5.0, interval=60.0)
    report = debug_report(Target("127.0.0.1", 25, "smtp"), module, host_result(result))
    assert "\x1b" not in report and "\u202e" not in report and "\x07" not in report
    assert "\\x1b[2J\\x1b[31mowned\\u202egnp.exe\\x07\\x0aResult: success" in report
    assert [line for line in report.splitlines() if line.startswith("Result:")] == [
        line for line in report.splitlines() if line.startswith("Result: failure")]   # no forged line


def test_check_and_scan_text_escape_what_the_server_sent():
    failed = dataclasses.replace(failed_result(FailureReason.SERVICE_UNAVAILABLE), failure_detail=HOSTILE)
    stub = SimpleNamespace(domain="example.org", findings_by_check=dict, check_failures=dict)
    text = render_text([DomainReport(stub, ((Target("mx.example.org", 25, "smtp"), host_result(failed)),))], time.time())
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[2J" in text and "\\u202e" in text

    scan = dataclasses.replace(_scan_result(), failure_detail=HOSTILE)
    table = render_table(scan)
    assert "\x1b" not in table and "\u202e" not in table and "\\x1b[31mowned" in table


def _scan_result():
    from exporter.tlsscan.results import TLSScanResult
    return TLSScanResult(success=False, failure=FailureReason.TIMEOUT, failure_detail="", observed_at=1000.0,
                         duration_seconds=1.0, connections=1, address="127.0.0.1")


async def test_a_greeting_with_escapes_reaches_neither_the_debug_report_nor_the_page(tmp_path):
    config = tmp_path / "config.yml"
    async with FakeServer(smtp_server(Script(greeting="554 \x1b[2J\u202eevil"))) as server:
        config.write_text("global: {interval: 1d, jitter: 1d}\nprobe: {allowed_targets: [127.0.0.1]}\n"
                          f"targets:\n  - {{host: 127.0.0.1, port: {server.port}, module: smtp}}\n")
        async with running_app(config) as (exporter, client):
            report = await (await client.get(f"/probe?target=127.0.0.1:{server.port}&module=smtp&debug=true")).text()
            await exporter.scheduler.run_once(exporter.config.targets[0], exporter.config.modules["smtp"])
            page = await (await client.get("/")).text()
    for shown in (report, page):
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "\\x1b[2J\\u202eevil" in shown


# --------------------------------------------------------------------------------------
# Listen addresses, the connection cap, counted logs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, parsed", [
    (":10054", (None, 10054)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("[::1]:19110", ("::1", 19110)),
    ("[fe80::1%eth0]:80", ("fe80::1%eth0", 80)),
    ("localhost:80", ("localhost", 80)),
    ("exporter.example.org.:443", ("exporter.example.org.", 443)),
])
def test_listen_addresses_accepted(value, parsed):
    assert parse_listen_address(value) == parsed


@pytest.mark.parametrize("value, reason", [
    ("[::1:19110", "unbalanced brackets"),
    ("::1]:19110", "unbalanced brackets"),
    ("[[::1]]:19110", "unbalanced brackets"),
    ("[::1]]:19110", "unbalanced brackets"),
    ("::1:19110", "must be in brackets"),
    ("[127.0.0.1]:80", "not an IPv6 address"),
    ("[]:80", "not an IPv6 address"),
    ("exa mple:80", "neither an IP address nor a host name"),
    ("host_name:80", "neither an IP address nor a host name"),
    ("-host:80", "neither an IP address nor a host name"),
    ("10054", "expected [HOST]:PORT"),
    ("127.0.0.1:", "expected [HOST]:PORT"),
    ("127.0.0.1:65536", "expected [HOST]:PORT"),
    ("127.0.0.1:-1", "expected [HOST]:PORT"),
])
def test_listen_addresses_refused(value, reason):
    with pytest.raises(argparse.ArgumentTypeError, match=reason.replace("[", r"\[")):
        parse_listen_address(value)


def test_a_malformed_listen_address_is_refused_on_the_command_line(tmp_path):
    run = run_cli("--config.file", str(empty_config(tmp_path)), "--web.listen-address", "[::1:19110")
    assert run.returncode == 2 and "unbalanced brackets" in run.stderr and "Traceback" not in run.stderr


def test_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_cli("--config.file", str(empty_config(tmp_path)), "--web.listen-address", f"127.0.0.1:{port}")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize("soft_limit, cap", [
    (16, 16), (64, 16), (100, 25), (1024, 256), (4096, 1024), (65536, MAX_CONNECTIONS),
    (resource.RLIM_INFINITY, MAX_CONNECTIONS),
])
def test_connection_cap_leaves_three_quarters_of_the_descriptors(soft_limit, cap):
    assert connection_cap(soft_limit) == cap


async def test_event_tally_logs_the_first_at_once_and_the_rest_once_per_interval(caplog):
    logger = logging.getLogger("test.tally")
    tally = EventTally(interval=0.3, logger=logger)
    with caplog.at_level(logging.WARNING, logger="test.tally"):
        for number in range(500):
            tally.add(ServerEvent.ACCEPT_FAILED, f"Too many open files #{number}")
        tally.add(ServerEvent.MALFORMED_REQUEST, "Invalid method \x1b[31m")
        assert [(r.fields["event"], r.fields["count"]) for r in caplog.records] == [
            ("accept_failed", 1), ("malformed_request", 1)]
        await asyncio.sleep(0.45)
        assert [(r.fields["event"], r.fields["count"]) for r in caplog.records[2:]] == [("accept_failed", 499)]
        assert caplog.records[2].fields["last"] == "Too many open files #499"
        assert caplog.records[1].fields["last"] == "Invalid method \\x1b[31m"
        assert not any(r.exc_info for r in caplog.records)


def test_server_log_counts_malformed_requests_and_quiets_departed_clients(caplog):
    from aiohttp.http_exceptions import BadStatusLine

    class Counting:
        def __init__(self):
            self.added = []

        def add(self, kind, detail=""):
            self.added.append((kind, detail))

    tally = Counting()
    server_log = ServerLog(tally, logging.getLogger("test.aiohttp"))
    with caplog.at_level(logging.DEBUG, logger="test.aiohttp"):
        server_log.exception("Error handling request from %s", "127.0.0.1", exc_info=BadStatusLine("GARBAGE"))
        server_log.debug("Error handling request from %s", "127.0.0.1", exc_info=BadStatusLine("GARBAGE"))
        server_log.exception("Error handling request", exc_info=ConnectionResetError("Cannot write to closing transport"))
        try:
            raise RuntimeError("a real bug")
        except RuntimeError:
            server_log.exception("Error handling request")
    assert [kind for kind, _ in tally.added] == [ServerEvent.MALFORMED_REQUEST] * 2
    assert [(r.levelname, bool(r.exc_info)) for r in caplog.records] == [("DEBUG", False), ("ERROR", True)]


# --------------------------------------------------------------------------------------
# The real exporter: slow clients, floods, malformed requests, reload
# --------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60)


def empty_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yml"
    config.write_text("targets: []\n")
    return config


def timed_get(process: ExporterProcess, path: str = "/metrics", **kwargs) -> tuple[float, int, str]:
    started = time.monotonic()
    status, _, body = process.get(path, **kwargs)
    return time.monotonic() - started, status, body


def seconds_until_closed(sock: socket.socket, send_every: float, limit: float, data: bytes = b"X-Slow: 1\r\n") -> float:
    """Send `data` every `send_every` seconds until the server closes; the seconds that took."""
    started = time.monotonic()
    sock.settimeout(send_every)
    while time.monotonic() - started < limit:
        try:
            sock.sendall(data)
            while sock.recv(65536):      # an answer (a 4xx) may come before the close
                pass
            return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    raise AssertionError(f"still open after {limit}s")


@pytest.fixture
def quiet_exporter(tmp_path):
    process = ExporterProcess(empty_config(tmp_path), "--log.level", "info")
    yield process
    process.stop()


def test_a_slow_header_sender_is_cut_off_and_scrapes_go_on(quiet_exporter):
    with socket.create_connection(("127.0.0.1", quiet_exporter.port)) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        took = seconds_until_closed(slow, send_every=1.0, limit=20)
    assert READ_TIMEOUT_SECONDS - 0.5 < took < READ_TIMEOUT_SECONDS + 2.5
    latency, status, _ = timed_get(quiet_exporter)
    assert status == 200 and latency < 1.0
    assert "read_timeout" in quiet_exporter.log and "Traceback" not in quiet_exporter.log


def test_a_slow_body_is_cut_off_after_the_answer(quiet_exporter):
    with socket.create_connection(("127.0.0.1", quiet_exporter.port)) as slow:
        slow.sendall(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        took = seconds_until_closed(slow, send_every=1.0, limit=20, data=b"x" * 10)
    assert took < READ_TIMEOUT_SECONDS + 2.5


def test_an_idle_keep_alive_connection_is_closed(quiet_exporter):
    with socket.create_connection(("127.0.0.1", quiet_exporter.port)) as idle:
        idle.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in idle.recv(65536)
        started = time.monotonic()
        idle.settimeout(20)
        assert idle.recv(65536) == b""
    assert READ_TIMEOUT_SECONDS - 0.5 < time.monotonic() - started < READ_TIMEOUT_SECONDS + 2.5


def test_over_tls_a_silent_client_is_cut_off_and_failed_handshakes_are_counted(tmp_path):
    ca = issue("Hardening Test CA", is_ca=True)
    server = issue("localhost", issuer=ca, ip_addresses=("127.0.0.1",))
    write_pem(str(tmp_path), "server.pem", server)
    write_pem(str(tmp_path), "ca.pem", ca)
    (tmp_path / "server.key").write_bytes(server.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config: {cert_file: server.pem, key_file: server.key}\n")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    process = ExporterProcess(empty_config(tmp_path), "--web.config.file", str(web_config), "--log.level", "info",
                              scheme="https", ssl_context=client_context)
    try:
        with socket.create_connection(("127.0.0.1", process.port)) as silent_client:   # no ClientHello
            started = time.monotonic()
            silent_client.settimeout(20)
            assert silent_client.recv(1) == b""
            took = time.monotonic() - started
        for _ in range(50):                                  # plain HTTP to the TLS port
            with socket.create_connection(("127.0.0.1", process.port), timeout=5) as client:
                client.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
                client.recv(65536)
        latency, status, _ = timed_get(process)
    finally:
        process.stop()
    assert READ_TIMEOUT_SECONDS - 0.5 < took < READ_TIMEOUT_SECONDS + 2.5
    assert status == 200 and latency < 1.0
    assert len([line for line in process.log_lines if "event=tls_handshake_failed" in line]) == 1
    assert "Traceback" not in process.log and "level=error" not in process.log


def test_malformed_requests_get_400_and_one_log_line(quiet_exporter):
    bad_requests = [
        b"GARBAGE\x00 / HTTP/1.1\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",                           # request line too long
        b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",               # header too long
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(100)) + b"\r\n",   # too many
        b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    ]
    for number in range(200):
        with socket.create_connection(("127.0.0.1", quiet_exporter.port), timeout=5) as client:
            client.sendall(bad_requests[number % len(bad_requests)])
            assert b" 400 Bad Request" in client.recv(65536).split(b"\r\n", 1)[0]
    assert timed_get(quiet_exporter)[1] == 200
    time.sleep(0.2)
    lines = [line for line in quiet_exporter.log_lines if "event=malformed_request" in line]
    assert len(lines) == 1 and "Traceback" not in quiet_exporter.log and "level=error" not in quiet_exporter.log
    # The log says it once; the counter counts every one.
    metrics = timed_get(quiet_exporter)[2]
    assert 'mailsec_exporter_http_events_total{event="malformed_request"} 200.0' in metrics
    assert 'mailsec_exporter_http_events_total{event="read_timeout"} 0.0' in metrics


def test_a_client_leaving_mid_probe_logs_no_error(tmp_path):
    async def scenario():
        async with FakeServer(silent) as mute:
            config = tmp_path / "config.yml"
            config.write_text("global: {timeout: 1s}\nprobe: {allowed_targets: [127.0.0.1]}\ntargets: []\n")
            process = await asyncio.to_thread(ExporterProcess, config)
            try:
                for _ in range(3):   # as a Prometheus scrape timeout does: gone before the answer
                    reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
                    writer.write(f"GET /probe?target=127.0.0.1:{mute.port}&module=smtp HTTP/1.1\r\n"
                                 "Host: x\r\n\r\n".encode())
                    await asyncio.sleep(0.2)
                    writer.close()
                await asyncio.sleep(2)          # the probes time out; their answers find no client
                status = (await asyncio.to_thread(process.get, "/-/healthy"))[0]
            finally:
                await asyncio.to_thread(process.stop)
            return status, process.log
    status, log = asyncio.run(scenario())
    assert status == 200
    assert "Traceback" not in log and "level=error" not in log, log


def test_the_connection_cap_keeps_the_newest_and_scrapes_get_in(tmp_path):
    # 128 descriptors: the cap is 32 connections.
    process = ExporterProcess(empty_config(tmp_path), "--log.level", "info", descriptor_limit=128)
    clients = []
    try:
        assert "max_connections=32" in process.log
        for _ in range(100):
            clients.append(socket.create_connection(("127.0.0.1", process.port)))
            clients[-1].sendall(b"GET /metrics HTTP/1.1\r\n")       # never finished
        took, status, _ = timed_get(process)
        assert status == 200 and took < 1.0
        time.sleep(0.5)
        still_open = [sock for sock in clients if _is_open(sock)]
        assert len(still_open) == 32 - 1 and still_open == clients[-31:]  # the scrape took the 32nd slot
    finally:
        for sock in clients:
            sock.close()
        process.stop()
    assert "evicted" in process.log and "Traceback" not in process.log


def test_out_of_descriptors_is_one_log_line_and_the_server_recovers(tmp_path):
    # 20 descriptors: the cap (16) is more than what is left once the process has its own.
    process = ExporterProcess(empty_config(tmp_path), "--log.level", "info", descriptor_limit=20)
    clients = []
    try:
        for _ in range(60):
            clients.append(socket.create_connection(("127.0.0.1", process.port)))
            clients[-1].sendall(b"GET /metrics HTTP/1.1\r\n")
        time.sleep(1)
        status = process.get("/metrics", timeout=20)[0]
    finally:
        for sock in clients:
            sock.close()
        process.stop()
    assert status == 200
    assert len([line for line in process.log_lines if "event=accept_failed" in line]) == 1
    assert "Too many open files" in process.log and "Traceback" not in process.log


def _is_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


class SlowClients:
    """`count` slow HTTP clients on a thread and event loop of their own: each sends a request
    line, then one header line every `every` seconds, and connects again when the server cuts
    it off, as a slowloris attacker does; at most `max_opened` connections in all."""

    def __init__(self, port: int, count: int, every: float = 10.0, max_opened: int = 100_000):
        self.port, self.count, self.every, self.max_opened = port, count, every, max_opened
        self.opened = 0
        self.connect_failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        deadline = time.monotonic() + 60
        while self.opened < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info) -> None:
        self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        try:
            await asyncio.gather(*(self._client() for _ in range(self.count)))
        except asyncio.CancelledError:
            pass

    async def _client(self) -> None:
        while self.opened < self.max_opened:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.connect_failures += 1
                await asyncio.sleep(0.1)
                continue
            self.opened += 1
            try:
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                while True:
                    try:
                        if not await asyncio.wait_for(reader.read(65536), self.every):
                            break                # cut off: connect again
                    except TimeoutError:
                        writer.write(b"X-Slow: 1\r\n")
            except OSError:
                pass
            finally:
                writer.close()


def descriptors_of(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def test_1500_slow_connections_under_1024_descriptors_leave_scrapes_and_probes_alone(tmp_path):
    """The acceptance property of the HTTP limits: the real exporter, 1,024 descriptors, 1,500
    slowloris connections that come back whenever they are cut; /metrics answers within 1 s,
    the probes of a healthy STARTTLS server keep succeeding, the log stays a few lines."""
    leaf = issue("mail.example.test", dns_names=("mail.example.test",))
    async with FakeServer(smtp_server(Script(tls_context=server_tls_context(leaf)))) as mail:
        config = tmp_path / "config.yml"
        config.write_text("global: {interval: 1s, timeout: 1s, jitter: 0s}\n"
                          f"targets:\n  - {{host: 127.0.0.1, port: {mail.port}, module: smtp}}\n")
        process = await asyncio.to_thread(ExporterProcess, config, "--log.level", "info", descriptor_limit=1024)
        try:
            await asyncio.to_thread(process.wait_for, lambda s: sample_value(s, "mailsec_probe_success") == 1)
            observed = await asyncio.to_thread(_scrape_under_attack, process, seconds=15)
        finally:
            await asyncio.to_thread(process.stop)
    attack, scrapes, probes_before, probes_after = observed
    latencies = [latency for latency, _, _, _ in scrapes]
    print(f"{attack.opened} slow connections opened, {len(scrapes)} scrapes, slowest {max(latencies):.3f}s, "
          f"most descriptors {max(fds for _, _, _, fds in scrapes)}, {len(process.log_lines)} log lines")
    assert attack.opened >= 1500
    assert max(latencies) < 1.0 and all(status == 200 for _, status, _, _ in scrapes)
    assert all(success == 1 for _, _, success, _ in scrapes)
    assert probes_after["success"] - probes_before["success"] >= 8          # interval 1s, 15s of attack
    assert probes_after["failure"] == probes_before["failure"] == 0
    assert max(fds for _, _, _, fds in scrapes) <= 256 + 32                # the cap, plus the exporter's own
    assert len(process.log_lines) < 20 and "Traceback" not in process.log and "level=error" not in process.log


def _scrape_under_attack(process: ExporterProcess, seconds: float):
    def probes(samples):
        return {result: sample_value(samples, "mailsec_exporter_probes_total", kind="endpoint", module="smtp", result=result) or 0
                for result in ("success", "failure")}

    before = probes(process.samples())
    scrapes = []
    with SlowClients(process.port, count=1500) as attack:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            latency, status, body = timed_get(process, timeout=5)
            samples = [s for f in text_string_to_metric_families(body) for s in f.samples] if status == 200 else []
            scrapes.append((latency, status, sample_value(samples, "mailsec_probe_success"),
                            descriptors_of(process.process.pid)))
            time.sleep(0.3)
    return attack, scrapes, before, probes(process.samples())


def test_parallel_reloads_of_20000_targets_do_not_hold_scrapes(tmp_path):
    config = tmp_path / "config.yml"
    targets = "".join(f"  - {{host: 127.0.{n // 250}.{1 + n % 250}, port: 2525, module: smtp}}\n" for n in range(20_000))
    config.write_text("global: {interval: 365d, jitter: 365d}\ntargets:\n" + targets)   # no probe runs meanwhile
    process = ExporterProcess(config, "--web.enable-lifecycle", "--log.level", "info", start_timeout=120)
    try:
        reloads = []
        threads = [threading.Thread(target=lambda: reloads.append(timed_get(process, "/-/reload", method="POST",
                                                                            timeout=300)))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        latencies = []
        while any(thread.is_alive() for thread in threads):
            latency, status, _ = timed_get(process)
            assert status == 200
            latencies.append(latency)
            time.sleep(0.1)
        for thread in threads:
            thread.join()
    finally:
        process.stop()
    print(f"3 reloads took {', '.join(f'{took:.1f}s' for took, _, _ in reloads)}; {len(latencies)} scrapes meanwhile, "
          f"slowest {max(latencies):.3f}s")
    assert [status for _, status, _ in reloads] == [200] * 3 and all("20000 targets" in body for _, _, body in reloads)
    assert len(latencies) >= 5 and max(latencies) < 1.0


# --------------------------------------------------------------------------------------
# Clients that stop reading their answer
# --------------------------------------------------------------------------------------

class _Counted:
    def __init__(self):
        self.events: list[ServerEvent] = []

    def add(self, kind: ServerEvent, detail: str = "") -> None:
        self.events.append(kind)


async def _guarded_server(limits: ServerLimits, tally: _Counted):
    """A real aiohttp server behind the guard, answering /big with 8 MB and /small with 2 bytes."""
    from aiohttp import web

    async def big(request):
        return web.Response(body=b"x" * 8_000_000)

    async def small(request):
        return web.Response(text="ok")

    guard = ConnectionGuard(limits, tally)
    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/big", big)
    app.router.add_get("/small", small)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    listeners = listening_sockets("127.0.0.1", 0)
    guard.start(listeners, runner.server)
    return guard, runner, listeners[0].getsockname()[1]


async def _non_reader(port: int) -> socket.socket:
    """A client that asks for 8 MB and reads none of it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    sock.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


async def _get_small(port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def test_a_client_that_stops_reading_is_cut_off_and_evicted_first_at_the_cap():
    tally = _Counted()
    guard, runner, port = await _guarded_server(ServerLimits(max_connections=3, write_stall_timeout=1.5), tally)
    stalled = []
    try:
        stalled = [await _non_reader(port) for _ in range(3)]
        await asyncio.sleep(0.3)                     # their answers fill the buffers: all three busy
        assert guard.open_connections == 3 and tally.events == []
        # At the cap, a scrape gets in by evicting a client that is not reading.
        assert (await _get_small(port)).endswith(b"ok")
        assert tally.events == [ServerEvent.EVICTED]
        # The others are cut off once they have read nothing for the stall timeout.
        await asyncio.sleep(2.5)
        assert tally.events.count(ServerEvent.WRITE_STALLED) == 2
        assert guard.open_connections == 0
    finally:
        for sock in stalled:
            sock.close()
        guard.close()
        await runner.cleanup()


async def test_a_slow_but_reading_client_is_never_cut_off():
    tally = _Counted()
    guard, runner, port = await _guarded_server(ServerLimits(max_connections=3, write_stall_timeout=0.5), tally)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4096)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = 0
        while chunk := await reader.read(256 * 1024):   # about 1 s for 8 MB, in small steps
            received += len(chunk)
            await asyncio.sleep(0.03)
        writer.close()
        assert received > 8_000_000 and ServerEvent.WRITE_STALLED not in tally.events
    finally:
        guard.close()
        await runner.cleanup()
