"""The Dockerfile, checked without a Docker engine (none runs here): its build steps are
replayed on the files it copies, and the installed result is run the way the image runs it.

- the wheel is built from exactly the files the COPY lines put in the build stage (a package
  module or data file they forget would be missing from the image);
- that wheel, unpacked away from the source tree, runs ENTRYPOINT + CMD with --config.check
  on the configuration the image copies, and answers the HEALTHCHECK path once started.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """A directory laid out like the image: WORKDIR's copies, the wheel installed (unpacked)
    under site/, and the files COPY puts outside WORKDIR under root/."""
    root = tmp_path_factory.mktemp("image")
    workdir = None
    for instruction, arguments in dockerfile_instructions():
        if instruction == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, destination = shlex.split(arguments)
            target = (workdir / destination) if not destination.startswith("/") else root / destination.lstrip("/")
            for source in sources:
                path = REPO / source
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    into = target / path.name if destination.endswith("/") else target
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, into)
        elif instruction == "RUN" and "pip install" in arguments:
            assert workdir is not None
            # The image's `pip install .`, offline: build the wheel from the copied files only.
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(root / "wheels"), str(workdir)], check=True)
            (wheel,) = (root / "wheels").glob("*.whl")
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(root / "site")
    return root


def image_command() -> list[str]:
    """CMD, after checking that ENTRYPOINT is the console script."""
    instructions = dict(dockerfile_instructions())
    assert exec_form(instructions["ENTRYPOINT"]) == ["mailsec-exporter"]
    return exec_form(instructions["CMD"])


def run_entrypoint(root: Path, args: list[str], **popen) -> subprocess.Popen:
    """The console script the wheel declares, run from the unpacked wheel (not the source tree)."""
    (dist_info,) = (root / "site").glob("*.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    line = next(l for l in entry_points.splitlines() if l.startswith("mailsec-exporter"))
    module, function = line.split("=", 1)[1].strip().split(":")
    # The image's paths (/etc/...) live under `root`.
    args = [str(root / a.lstrip("/")) if a.startswith("/etc/") else a for a in args]
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    env = {**os.environ, "PYTHONPATH": str(root / "site")}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=root, env=env, **popen)


def test_the_wheel_holds_every_module_of_the_package(image_root: Path):
    installed = {p.relative_to(image_root / "site").as_posix() for p in (image_root / "site" / "exporter").rglob("*.py")}
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "exporter").rglob("*.py")}
    assert installed == source


def test_entrypoint_and_cmd_accept_the_copied_configuration(image_root: Path):
    cmd = image_command()
    process = run_entrypoint(image_root, [*cmd, "--config.check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output


def test_exposed_port_matches_the_listen_address_and_serves_the_healthcheck(image_root: Path):
    instructions = dockerfile_instructions()
    exposed = [int(arguments) for instruction, arguments in instructions if instruction == "EXPOSE"]
    cmd = image_command()
    listen = cmd[cmd.index("--web.listen-address") + 1]
    assert exposed == [int(listen.rsplit(":", 1)[1])]
    healthcheck = next(arguments for instruction, arguments in instructions if instruction == "HEALTHCHECK")
    assert "/-/healthy" in healthcheck

    # Start it as the image would, but on a free loopback port and with a config that probes
    # nothing (config.example.yml names hosts outside this machine).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = image_root / "empty.yml"
    config.write_text("targets: []\n")
    args = ["--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"]
    process = run_entrypoint(image_root, args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the exporter never answered /-/healthy"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
