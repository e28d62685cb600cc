"""Runs the real exporter as a child process on 127.0.0.1 (port 0) for end-to-end tests."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class ExporterProcess:
    def __init__(self, config_path: Path, *extra_args: str):
        self.config_path = config_path
        self.log_lines: list[str] = []
        self._listening = threading.Event()
        self.port: int | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config_path),
             "--web.listen-address", "127.0.0.1:0", "--log.level", "debug", *extra_args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._listening.wait(timeout=20):
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
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10) -> tuple[int, str, str]:
        """(status, content type, body) of a GET; HTTP errors are returned, not raised."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
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
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def sample_value(samples, name: str, **labels: str) -> float | None:
    """The value of the one sample named `name` whose labels include `labels`, or None."""
    matches = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(matches) <= 1, f"{name}{labels} matches {len(matches)} samples"
    return matches[0] if matches else None
