"""``make bench``'s input frames: a clip shorter than the run repeats from its start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import brightness_video, level
from tools.bench import read_jpegs


@pytest.mark.parametrize(("count", "expected"), [
    (3, [0, 1, 2]),
    (5, [0, 1, 2, 3, 4]),
    (12, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]),
])
def test_read_jpegs_repeats_a_short_clip(tmp_path: Path, count: int,
                                         expected: list[int]) -> None:
    jpegs = read_jpegs(brightness_video(tmp_path / "clip.avi", 5, 10.0), count)
    assert [level(j) for j in jpegs] == expected


def test_read_jpegs_of_an_unreadable_file_is_empty(tmp_path: Path) -> None:
    (tmp_path / "none.avi").write_bytes(b"not a video")
    assert read_jpegs(tmp_path / "none.avi", 10) == []
