"""``make bench``'s input frames: a clip shorter than the run repeats from its start."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tools.bench import read_jpegs


def _clip(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for value in range(frames):
        writer.write(np.full((48, 64, 3), 40 * value, dtype=np.uint8))
    writer.release()
    return path


def _grey(jpeg: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return int(image.mean())


@pytest.mark.parametrize(("count", "expected"), [
    (3, [0, 1, 2]),
    (5, [0, 1, 2, 3, 4]),
    (12, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]),
])
def test_read_jpegs_repeats_a_short_clip(tmp_path: Path, count: int,
                                         expected: list[int]) -> None:
    jpegs = read_jpegs(_clip(tmp_path / "clip.avi", 5), count)
    assert [round(_grey(j) / 40) for j in jpegs] == expected


def test_read_jpegs_of_an_unreadable_file_is_empty(tmp_path: Path) -> None:
    (tmp_path / "none.avi").write_bytes(b"not a video")
    assert read_jpegs(tmp_path / "none.avi", 10) == []
