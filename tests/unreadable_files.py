"""Paths a config loader must refuse before reading: (id, make(tmp_path) -> path, reason)."""

from __future__ import annotations

import os
from pathlib import Path


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo.yml"
    os.mkfifo(path)
    return str(path)


def _too_large(tmp_path: Path) -> str:
    path = tmp_path / "huge.yml"
    with open(path, "wb") as file:
        file.truncate(16 * 1024 * 1024 + 1)    # sparse: it takes no disk space
    return str(path)


NOT_REGULAR = "cannot read the file: it is not a regular file (a device, FIFO or socket)"
UNREADABLE_FILES = [
    ("endless device", lambda tmp_path: "/dev/zero", NOT_REGULAR),    # was read forever
    ("fifo", _fifo, NOT_REGULAR),                                       # blocked until a writer came
    ("directory", lambda tmp_path: str(tmp_path), "cannot read the file: Is a directory"),
    ("over 16 MiB", _too_large, "cannot read the file: it is larger than 16 MiB"),
]
