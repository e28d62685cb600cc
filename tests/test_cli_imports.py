"""Each one-shot command imports only what it uses: a fresh interpreter imports the
command's module and reports which heavy modules ended up in sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.hostile import closed_port

SERVER_SIDE = ("aiohttp", "prometheus_client", "exporter.web", "exporter.metrics", "exporter.service.scheduler")
CONFIG_FILE = ("yaml", "exporter.config.loader", "exporter.config.yamlnodes")

# module imported -> modules that must stay out of sys.modules
MUST_NOT_IMPORT = {
    "exporter.cli": SERVER_SIDE + CONFIG_FILE + ("dns", "cryptography", "exporter.cli.check", "exporter.cli.scan"),
    "exporter.cli.check": SERVER_SIDE + CONFIG_FILE + (
        "exporter.tlsscan.scanner", "publicsuffixlist", "OpenSSL", "exporter.reputation"),
    "exporter.cli.scan": SERVER_SIDE + CONFIG_FILE + (
        "exporter.domains", "exporter.records.psl", "publicsuffixlist", "OpenSSL", "dns"),
}


def imported_by(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", sorted(MUST_NOT_IMPORT))
def test_a_command_imports_only_what_it_uses(module):
    loaded = imported_by(module)
    assert module in loaded
    unwanted = {name for name in loaded for heavy in MUST_NOT_IMPORT[module]
                if name == heavy or name.startswith(heavy + ".")}
    assert unwanted == set()


def test_the_config_loader_comes_on_first_use():
    # `from exporter.config import load_config` keeps working, and only then loads PyYAML.
    code = ("import sys, exporter.config as c; before = 'yaml' in sys.modules; "
            "from exporter.config import load_config; print(before, 'yaml' in sys.modules, load_config.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["False", "True", "exporter.config.loader"]


def test_a_scan_of_an_ip_address_never_imports_dnspython():
    # The whole command, run to its end (a refused connection): nothing to resolve, so
    # dnspython, imported by the first lookup, is never imported.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "exporter", "scan", f"127.0.0.1:{closed_port()}", "--timeout", "2"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "connection_refused" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "exporter.tlsscan.scanner" in imported and "dns.asyncresolver" not in imported


def test_a_one_shot_command_is_imported_with_the_collector_off_then_on_again():
    code = ("import gc; from exporter.cli import one_shot_command; f = one_shot_command('check'); "
            "print(f.__module__, gc.isenabled(), gc.get_freeze_count() > 10000)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["exporter.cli.check", "True", "True"]
