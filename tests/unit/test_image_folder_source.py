"""The ``dir:`` camera source: an image folder read like a video (name order, one image per
frame tick, unreadable files skipped), finite like a file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.sources import SourceKind, parse_source
from services.frame_grabber.source import ImageFolderCapture, open_source, source_fps


def write(folder: Path, name: str, value: int) -> None:
    cv2.imwrite(str(folder / name), np.full((20, 30, 3), value, dtype=np.uint8))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path, "b.jpg", 100)
    write(tmp_path, "a.png", 50)
    write(tmp_path, "c.JPG", 200)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "d.jpg").write_bytes(b"broken")
    return tmp_path


@pytest.mark.parametrize(("pattern", "names"), [
    ("", ["a.png", "b.jpg", "c.JPG", "d.jpg"]),        # the folder: every image, name order
    ("*.jpg", ["b.jpg", "d.jpg"]),                     # a glob
    ("x*.jpg", []),
])
def test_files_in_name_order(folder: Path, pattern: str, names: list[str]) -> None:
    capture = ImageFolderCapture(str(folder / pattern) if pattern else str(folder))
    assert [p.name for p in capture.files] == names
    assert capture.isOpened() is bool(names)


def test_reads_like_a_video_without_a_frame_rate(folder: Path) -> None:
    capture = open_source(parse_source(f"dir:{folder}"))
    assert isinstance(capture, ImageFolderCapture)
    assert source_fps(capture) is None
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 4
    means = []
    while capture.grab():
        ok, image = capture.retrieve()
        means.append(round(float(image.mean())) if ok else None)
    assert means == [50, 100, 200, None]  # d.jpg cannot be decoded: skipped by the grabber
    assert capture.read() == (False, None)
    capture.release()


def test_an_empty_folder_does_not_open(tmp_path: Path) -> None:
    assert open_source(parse_source(f"dir:{tmp_path}")) is None
    assert SourceKind.DIR.finite and not SourceKind.DIR.live
    assert SourceKind.FILE.finite and SourceKind.URL.live and SourceKind.WEBCAM.live


def test_parse_source_rejects_an_empty_dir() -> None:
    with pytest.raises(ValueError, match="dir: source without a folder"):
        parse_source("dir:  ")


@pytest.mark.parametrize(("threads", "expected"), [(1, 1), (2, 2)])
def test_video_files_decode_with_the_cameras_threads(tmp_path: Path, threads: int,
                                                     expected: int) -> None:
    """A camera's ``decode_threads`` reaches FFmpeg (one per camera by default), and the
    file still reads."""
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (64, 48))
    for value in range(5):
        writer.write(np.full((48, 64, 3), value * 40, np.uint8))
    writer.release()
    capture = open_source(parse_source(str(path)), decode_threads=threads)
    assert capture is not None
    try:
        assert capture.get(cv2.CAP_PROP_N_THREADS) == expected
        ok, frame = capture.read()
        assert ok and frame.shape == (48, 64, 3)
    finally:
        capture.release()
