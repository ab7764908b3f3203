"""Structured logging: one JSON object per line on stderr.

Use ``log = get_logger(__name__)`` and ``log.info("frame.dropped", extra={"camera": c})``;
the ``extra`` fields become keys of the JSON line.

Every event is passed through :func:`argus.redact.redact_url` (message, string fields,
nested ones too, and the exception text), so a camera or connection URL logged by any
code path shows ``rtsp://admin:***@host/...``, never its password. :func:`setup_logging`
also masks the message and traceback of every record when it is created, which covers
handlers it did not install (the Faust worker replaces the root handler with its own).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from argus.redact import redact_url

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _clean(value: Any) -> Any:
    """A log field as JSON will write it, with the credentials of its URLs masked."""
    if isinstance(value, str):
        return redact_url(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {_clean(k) if isinstance(k, str) else k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return redact_url(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_url(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _clean(value)
        if record.exc_info:
            out["exc"] = redact_url(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(out, default=str)


_traceback_formatter = logging.Formatter()


class _RedactingRecords:
    """A log record factory that masks the URL credentials of each record's message and
    traceback as it is created (``extra`` fields come later: :class:`JsonFormatter` masks
    those), whichever handler then writes it."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when emitting the record
            return record
        redacted = redact_url(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info:
            record.exc_text = redact_url(_traceback_formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_url(record.stack_info)
        return record


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger once per process (level from ``ARGUS_LOG_LEVEL``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("ARGUS_LOG_LEVEL", "INFO"))
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecords):
        logging.setLogRecordFactory(_RedactingRecords(factory))
    for noisy in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kafka-python 3 warns whenever one of its I/O tasks runs > 100 ms, which a busy 2-core
    # machine does all the time while connecting; real failures are logged as errors.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
