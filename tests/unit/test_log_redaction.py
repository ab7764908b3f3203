"""The project's logger masks URL credentials in every event, whatever logged it, and
lets a chatty client library's repeated line through once a minute."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from argus.log import RepeatLimiter, get_logger, limit_client_repeats, setup_logging

URL = "rtsp://admin:s3cret-pw@10.0.0.5:554/stream?token=tok-123"
SECRETS = ("s3cret-pw", "tok-123")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What ``setup_logging``'s handler writes (its stream swapped for a buffer); the root
    logger and the record factory are restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    factory = logging.getLogRecordFactory()
    setup_logging("INFO")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.setLogRecordFactory(factory)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    err = buffer.getvalue()
    assert not any(secret in err for secret in SECRETS), err
    return [json.loads(line) for line in err.splitlines()]


def test_message_fields_and_exception_are_masked(logs: io.StringIO) -> None:
    log = get_logger("tests.redaction")
    log.warning("camera source could not be opened: %s", URL,
                extra={"source": URL, "nested": {"urls": [URL, 5]}, "obj": RuntimeError(URL)})
    try:
        raise ConnectionError(f"cannot open {URL}")
    except ConnectionError:
        log.exception("camera read failed")
    first, second = _lines(logs)
    masked = "rtsp://admin:***@10.0.0.5:554/stream?token=***"
    assert first["msg"] == f"camera source could not be opened: {masked}"
    assert first["source"] == masked
    assert first["nested"] == {"urls": [masked, 5]}
    assert first["obj"] == masked
    assert second["msg"] == "camera read failed"
    assert f"ConnectionError: cannot open {masked}" in second["exc"]


def test_plain_events_are_unchanged(logs: io.StringIO) -> None:
    get_logger("tests.redaction").info("camera starting", extra={
        "camera": "cam-1", "source": "rtsp://10.0.0.5/stream", "fps": 5.0, "ok": True})
    (line,) = _lines(logs)
    assert line["msg"] == "camera starting"
    assert (line["camera"], line["source"], line["fps"], line["ok"]) == (
        "cam-1", "rtsp://10.0.0.5/stream", 5.0, True)


def test_other_handlers_get_masked_records_too(logs: io.StringIO) -> None:
    """A handler installed by someone else (the Faust worker replaces the root handler)
    still sees masked messages and tracebacks."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = get_logger("tests.redaction.plain")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("reconnect to %s failed", URL)
        try:
            raise OSError(URL)
        except OSError:
            log.exception("read failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    text = stream.getvalue()
    assert "rtsp://admin:***@10.0.0.5:554/stream?token=***" in text
    assert "OSError: rtsp://admin:***@" in text
    assert not any(secret in text for secret in SECRETS), text


def test_setup_twice_wraps_the_factory_once(logs: io.StringIO) -> None:
    factory = logging.getLogRecordFactory()
    setup_logging("INFO")
    assert logging.getLogRecordFactory() is factory


def test_grabber_reconnect_logs_show_no_password(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The issue's case: every failed (re)open of a camera logs its source, masked."""
    from argus.settings import Settings
    from argus.topology import Camera
    from services.frame_grabber import reader
    from services.frame_grabber.worker import CameraWorker

    camera = Camera(id="cam-1", site="s", source=URL)
    worker = CameraWorker(camera, Settings())

    def fail_and_stop(source: object, decode_threads: int = 1) -> None:
        worker.stop()

    monkeypatch.setattr(reader, "open_source", fail_and_stop)
    with caplog.at_level(logging.INFO, logger=reader.__name__):
        assert worker._reader._open(retry=False) is None
    (record,) = [r for r in caplog.records if r.name == reader.__name__]
    assert record.__dict__["source"] == "rtsp://admin:***@10.0.0.5:554/stream?token=***"
    assert worker.source.target == URL  # the grabber still opens the real URL


# --- RepeatLimiter: one line per state change for chatty client libraries ---------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("events", "passed", "suppressed_on_pass"),
    [
        # the same template with other arguments within the window: one line
        ([(0.0, "aiokafka", "Unable connect to node with id %s: %s", (1, "refused")),
          (0.1, "aiokafka", "Unable connect to node with id %s: %s", (1, "reset")),
          (0.2, "aiokafka", "Unable connect to node with id %s: %s", (1, "refused"))],
         [True, False, False], [None, None, None]),
        # after the window the next one passes and says how many were left out
        ([(0.0, "aiokafka", "Unable connect %s", (1,)),
          (30.0, "aiokafka", "Unable connect %s", (1,)),
          (59.0, "aiokafka", "Unable connect %s", (1,)),
          (61.0, "aiokafka", "Unable connect %s", (1,))],
         [True, False, False, True], [None, None, None, 2]),
        # another message (a change of state) or another logger always passes
        ([(0.0, "aiokafka", "Unable connect %s", (1,)),
          (0.1, "aiokafka", "Connected to %s", (1,)),
          (0.2, "kafka.net.connection", "Unable connect %s", (1,))],
         [True, True, True], [None, None, None]),
    ],
)
def test_repeat_limiter(events: list[tuple[float, str, str, tuple[object, ...]]],
                        passed: list[bool], suppressed_on_pass: list[int | None]) -> None:
    clock = _Clock()
    limiter = RepeatLimiter(window_s=60.0, clock=clock)
    before = REGISTRY.get_sample_value("argus_log_repeats_suppressed_total",
                                       {"logger": "aiokafka"}) or 0.0
    results, notes = [], []
    for at, name, msg, args in events:
        clock.now = at
        record = _record(name, msg, *args)
        results.append(limiter.filter(record))
        notes.append(getattr(record, "repeats_suppressed", None))
    assert results == passed
    assert notes == suppressed_on_pass
    after = REGISTRY.get_sample_value("argus_log_repeats_suppressed_total",
                                      {"logger": "aiokafka"}) or 0.0
    assert after - before == sum(1 for ok, (_, n, _, _) in zip(results, events, strict=True)
                                 if not ok and n == "aiokafka")


def test_client_loggers_get_the_limiter_and_app_loggers_do_not() -> None:
    limiter = RepeatLimiter()
    limit_client_repeats(limiter)
    assert limiter in logging.getLogger("aiokafka").filters
    assert limiter in logging.getLogger("kafka.net.connection").filters
    assert limiter not in logging.getLogger("argus.anything").filters
    for name in ["", *logging.Logger.manager.loggerDict]:
        logging.getLogger(name).removeFilter(limiter)
