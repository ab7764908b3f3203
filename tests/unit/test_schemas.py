"""Message contracts: JSON Schema files in sync, header round trip, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import TOPIC_MODELS, Box, FrameHeaders
from schemas.generate import JSON_DIR, render


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_json_schema_files_in_sync(topic: str) -> None:
    path = JSON_DIR / f"{topic}.schema.json"
    assert path.exists(), "run python -m schemas.generate"
    assert path.read_text() == render(topic), "run python -m schemas.generate"


def test_frame_headers_round_trip() -> None:
    meta = FrameHeaders(camera_id="cam-1", seq=7, capture_ts=1700000000.5, width=640, height=480)
    headers = meta.to_headers()
    assert ("camera_id", b"cam-1") in headers
    assert FrameHeaders.from_headers(headers) == meta
    assert FrameHeaders.from_headers(dict(headers)) == meta


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ([("seq", b"1"), ("capture_ts", b"1.0"), ("width", b"1"), ("height", b"1")], "camera_id"),
        ([("camera_id", b"c"), ("seq", b"-1"), ("capture_ts", b"1.0"), ("width", b"1"),
          ("height", b"1")], "seq"),
        ([("camera_id", b"c"), ("seq", b"x"), ("capture_ts", b"1.0"), ("width", b"1"),
          ("height", b"1")], "seq"),
        ([("camera_id", b"c"), ("seq", b"1"), ("capture_ts", b"1.0"), ("width", b"1"),
          ("height", b"1"), ("schema_version", b"9")], "schema_version"),
    ],
)
def test_bad_frame_headers(headers: list[tuple[str, bytes]], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        FrameHeaders.from_headers(headers)
    assert field in str(info.value)


@pytest.mark.parametrize(
    "corners", [(0.5, 0.1, 0.4, 0.2), (0.1, 0.5, 0.2, 0.4), (-0.1, 0, 0.5, 0.5), (0, 0, 1.2, 1)])
def test_bad_boxes(corners: tuple[float, float, float, float]) -> None:
    x1, y1, x2, y2 = corners
    with pytest.raises(ValidationError):
        Box(x1=x1, y1=y1, x2=x2, y2=y2)
