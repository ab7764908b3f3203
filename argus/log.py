"""Structured logging: one JSON object per line on stderr.

Use ``log = get_logger(__name__)`` and ``log.info("frame.dropped", extra={"camera": c})``;
the ``extra`` fields become keys of the JSON line.

Every event is passed through :func:`argus.redact.redact_url` (message, string fields,
nested ones too, and the exception text), so a camera or connection URL logged by any
code path shows ``rtsp://admin:***@host/...``, never its password. :func:`setup_logging`
also masks the message and traceback of every record when it is created, which covers
handlers it did not install (the Faust worker replaces the root handler with its own).

Client libraries that retry on their own (aiokafka, kafka-python, redis, tritonclient,
paho) can write the same line hundreds of times a second while a server is down
(``Unable connect to node with id 1``). :class:`RepeatLimiter` lets the first one through,
leaves the same line out for a minute (counted in ``argus_log_repeats_suppressed_total``)
and lets the next one through with ``repeats_suppressed``: one line per change of state,
plus a counter.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from argus.metrics import LOG_REPEATS_SUPPRESSED
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


CLIENT_LOGGERS = ("aiokafka", "kafka", "redis", "tritonclient", "paho", "faust", "mode")
"""Loggers (and their children) of the libraries that retry connections by themselves."""


class RepeatLimiter(logging.Filter):
    """Let a line through at most once per ``window_s`` per (logger, message template);
    the repeats in between are counted and the next line that passes carries their
    number (``repeats_suppressed``). The template, not the formatted message, is the key:
    ``Unable connect to node with id %s: %s`` is one line whatever the node and error."""

    def __init__(self, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        passed_at, suppressed = self._seen.get(key, (None, 0))
        if passed_at is not None and now - passed_at < self.window_s:
            self._seen[key] = (passed_at, suppressed + 1)
            LOG_REPEATS_SUPPRESSED.labels(record.name).inc()
            return False
        if len(self._seen) > 10_000:  # bounded: forget old templates
            self._seen.clear()
        self._seen[key] = (now, 0)
        if suppressed:
            record.repeats_suppressed = suppressed
        return True


_LIMITER = RepeatLimiter()


def limit_client_repeats(limiter: logging.Filter = _LIMITER) -> None:
    """Attach ``limiter`` to every logger of :data:`CLIENT_LOGGERS` created so far (a
    logger's filters see only its own records, not its children's, so each one gets it)."""
    names = [name for name in logging.Logger.manager.loggerDict
             if name.split(".")[0] in CLIENT_LOGGERS]
    for name in [*CLIENT_LOGGERS, *names]:
        logger = logging.getLogger(name)
        if limiter not in logger.filters:
            logger.addFilter(limiter)


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
    limit_client_repeats()


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
