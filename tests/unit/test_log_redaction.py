"""The project's logger masks URL credentials in every event, whatever logged it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from argus.log import get_logger, setup_logging

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
    from services.frame_grabber import grabber

    camera = Camera(id="cam-1", site="s", source=URL)
    worker = grabber.CameraWorker(camera, Settings())

    def fail_and_stop(source: object) -> None:
        worker.stop()

    monkeypatch.setattr(grabber, "open_source", fail_and_stop)
    with caplog.at_level(logging.INFO, logger=grabber.__name__):
        assert worker._open(retry=False) is None
    (record,) = [r for r in caplog.records if r.name == grabber.__name__]
    assert record.__dict__["source"] == "rtsp://admin:***@10.0.0.5:554/stream?token=***"
    assert worker.source.target == URL  # the grabber still opens the real URL
