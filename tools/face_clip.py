"""A short video clip of known faces, assembled from still photos (no licensed video of
enrolled people exists in the shared data).

Each photo is letterboxed to one frame size and held for a number of frames, written as an
MJPG AVI that the frame grabber (or OpenCV) reads like any camera file. Used by the
real-video test (``tests/integration/test_faces_video.py``) and the demo's watchlist camera
(:mod:`tools.face_demo`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def letterbox(image: Image, width: int = 640, height: int = 480) -> Image:
    """The image scaled to fit ``width`` x ``height``, centred on black.

    >>> letterbox(np.full((100, 50, 3), 255, np.uint8), 64, 48)[:, 20:44].min()
    np.uint8(255)
    >>> letterbox(np.full((100, 50, 3), 255, np.uint8), 64, 48)[:, :19].max()
    np.uint8(0)
    """
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return canvas


def assemble_clip(folder: Path, photos: Sequence[str], path: Path, frames_per_photo: int,
                  fps: float = 5.0, size: tuple[int, int] = (640, 480)) -> int:
    """Write ``photos`` (names in ``folder``) as an MJPG AVI at ``path``, each held for
    ``frames_per_photo`` frames; returns the frames written. Raises ``FileNotFoundError``
    for a photo that cannot be read and ``OSError`` when the file cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part.avi")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write a video at {partial}")
    written = 0
    try:
        for name in photos:
            image = cv2.imread(str(folder / name))
            if image is None:
                raise FileNotFoundError(f"cannot read photo {folder / name}")
            frame = letterbox(np.asarray(image, np.uint8), *size)
            for _ in range(frames_per_photo):
                writer.write(frame)
                written += 1
    finally:
        writer.release()
    partial.replace(path)  # readers never see a half-written clip
    return written


def read_clip(path: Path, jpeg_quality: int = 85) -> list[bytes]:
    """Every frame of a video as JPEG bytes, encoded as the frame grabber encodes them."""
    capture = cv2.VideoCapture(str(path))
    jpegs: list[bytes] = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise ValueError(f"cannot encode frame {len(jpegs)} of {path}")
            jpegs.append(bytes(encoded.tobytes()))
    finally:
        capture.release()
    return jpegs
