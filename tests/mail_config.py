"""An exporter configuration that watches every real-server test scenario."""

from __future__ import annotations

from typing import Mapping

from tests.realservers import Endpoint


def config_for(endpoints: Mapping[str, Endpoint], interval: str = "5m") -> str:
    """One module per scenario (its CA and expected name), one target per scenario,
    labelled `scenario=<name>` so tests can find each one on /metrics."""
    lines = ["global:", f"  interval: {interval}", "  timeout: 10s", "  jitter: 0s", "  concurrency: 8", "modules:"]
    for name, endpoint in sorted(endpoints.items()):
        lines += [
            f"  {name}:",
            f"    protocol: {endpoint.protocol.value}",
            f"    tls: {{ca_file: {endpoint.ca_file}, server_name: {endpoint.server_name}}}",
        ]
    lines.append("targets:")
    for name, endpoint in sorted(endpoints.items()):
        lines.append(f"  - {{host: {endpoint.host}, port: {endpoint.port}, module: {name}, labels: {{scenario: {name}}}}}")
    return "\n".join(lines) + "\n"
