"""A video's frames as a camera publishes them (tools/video_frames.py): the grabber's
sampling by frame index, the time range, the JPEGs, and cutting a clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests import media
from tests.media import level
from tools.video_frames import cut_clip, kept_indices, parse_range, sample_video, write_frames

FPS = 12.0
FRAMES = 36  # 3 s


def brightness_video(path: Path, frames: int = FRAMES, fps: float = FPS) -> Path:
    """Frame i is a flat grey of level 5 * i (readable back through JPEG and MJPEG)."""
    return media.brightness_video(path, frames, fps)


def test_frames_are_those_the_grabber_keeps(tmp_path: Path) -> None:
    video = brightness_video(tmp_path / "v.avi")
    frames = list(sample_video(video, 5.0))
    assert [f.index for f in frames] == kept_indices(FPS, 5.0, FRAMES)
    assert [f.index for f in frames][:5] == [0, 3, 5, 8, 10]  # 12 fps at 5 fps
    assert [level(f.jpeg) for f in frames] == [f.index for f in frames]
    assert [f.time_s for f in frames] == pytest.approx([f.index / FPS for f in frames])


def test_time_range_and_downscale(tmp_path: Path) -> None:
    video = brightness_video(tmp_path / "v.avi")
    frames = list(sample_video(video, 5.0, start_s=1.0, end_s=2.0, max_width=32))
    assert [f.index for f in frames] == [12, 15, 17, 20, 22]  # the 2nd second only
    image = cv2.imdecode(np.frombuffer(frames[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (24, 32)
    paths, times = write_frames(iter(frames), tmp_path / "frames")
    assert [p.name for p in paths][:2] == ["000012.jpg", "000015.jpg"]
    assert times == pytest.approx([i / FPS for i in (12, 15, 17, 20, 22)])


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot open"):
        list(sample_video(tmp_path / "missing.mp4", 5.0))
    with pytest.raises(ValueError, match="empty time range"):
        list(sample_video(tmp_path / "missing.mp4", 5.0, start_s=2.0, end_s=1.0))
    with pytest.raises(ValueError, match="START-END"):
        parse_range("12")


def test_cut_clip_keeps_the_rate_and_the_range(tmp_path: Path) -> None:
    video = brightness_video(tmp_path / "v.avi")
    cut = cut_clip(video, tmp_path / "cut.avi", 1.0, 2.5)
    cap = cv2.VideoCapture(str(cut))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    cap.release()
    frames = list(sample_video(cut, 5.0))
    assert [level(f.jpeg) for f in frames] == [12 + i for i in kept_indices(FPS, 5.0, 18)]
    assert not (tmp_path / "cut.partial.avi").exists()
    with pytest.raises(ValueError, match="no frames"):
        cut_clip(video, tmp_path / "none.avi", 10.0, 11.0)
