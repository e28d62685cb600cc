"""The competing tools (checkdmarc, sslyze) live in virtual environments of their own, so that
their dependencies never meet ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def tool_python(venv: Path, package: str) -> Path:
    """The python of `venv`, with `package` pip-installed into it when the venv is missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} and installing {package} into it ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=True)
    return python
