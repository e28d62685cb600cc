"""Runs the real exporter for end-to-end tests: as a child process on 127.0.0.1 (port 0),
or in the test's own event loop behind aiohttp's test server (`running_app`), where a
test can give it a probe function of its own."""

from __future__ import annotations

import contextlib
import re
import resource
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from exporter.service.exporter import Exporter
from exporter.service.runs import Probes
from exporter.probes.endpoint import probe_endpoint
from exporter.web.app import build_app
from exporter.config.web import WebConfig
from tests.realservers import stop_process

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


@contextlib.asynccontextmanager
async def running_app(config_path: Path, probe=probe_endpoint, web_config: WebConfig = WebConfig(),
                      lifecycle: bool = False):
    """(exporter, aiohttp test client) of an exporter serving on 127.0.0.1 in this event loop;
    `lifecycle` as --web.enable-lifecycle."""
    exporter = Exporter(str(config_path), probes=Probes(endpoint=probe))
    exporter.reload()
    client = TestClient(TestServer(build_app(exporter, web_config, lifecycle=lifecycle), host="127.0.0.1"))
    await client.start_server()
    try:
        yield exporter, client
    finally:
        await client.close()
        await exporter.stop()


class ExporterProcess:
    def __init__(self, config_path: Path, *extra_args: str, scheme: str = "http",
                 ssl_context: ssl.SSLContext | None = None, descriptor_limit: int | None = None,
                 start_timeout: float = 20):
        self.config_path = config_path
        self.scheme = scheme
        self.ssl_context = ssl_context     # to verify the exporter's certificate over https
        self.log_lines: list[str] = []
        self._listening = threading.Event()
        self.port: int | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config_path),
             "--web.listen-address", "127.0.0.1:0", "--log.level", "debug", *extra_args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            preexec_fn=None if descriptor_limit is None else lambda: resource.setrlimit(
                resource.RLIMIT_NOFILE, (descriptor_limit, descriptor_limit)),
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._listening.wait(timeout=start_timeout):
            self.stop()
            raise RuntimeError("exporter did not start:\n" + self.log)

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log_lines.append(line)
            match = _LISTENING.search(line)
            if match and self.port is None:
                self.port = int(match.group(1))
                self._listening.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, content type, body) of a request; HTTP errors are returned, not raised."""
        request = urllib.request.Request(self.url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read().decode()

    def scrape(self) -> str:
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return body

    def samples(self) -> list:
        return [s for family in text_string_to_metric_families(self.scrape()) for s in family.samples]

    def wait_for(self, predicate, timeout: float = 30, interval: float = 0.2):
        """Scrape until predicate(samples) is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.samples())
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s; log:\n{self.log}")
            time.sleep(interval)

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process(self.process, timeout=10)


def sample_value(samples, name: str, **labels: str) -> float | None:
    """The value of the one sample named `name` whose labels include `labels`, or None."""
    matches = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(matches) <= 1, f"{name}{labels} matches {len(matches)} samples"
    return matches[0] if matches else None
