"""Structured logs, in logfmt (the Prometheus ecosystem's default) or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def with_fields(**values: object) -> dict[str, dict[str, object]]:
    """`extra=` for a log call that adds key=value fields:
    log.warning("probe failed", extra=with_fields(target="mx:25", module="smtp")).

    The fields travel in one record attribute so that names like `module`, which LogRecord
    already uses, are allowed.
    """
    return {"fields": values}


def _fields(record: logging.LogRecord) -> dict[str, str]:
    fields = {
        "ts": _timestamp(record),
        "level": record.levelname.lower().replace("warning", "warn"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in getattr(record, "fields", {}).items():
        fields.setdefault(key, str(value))
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\n\\'):
        return value
    return json.dumps(value)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record))


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
