"""Small synthetic videos for tests: each frame a flat grey whose level says its index."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

STEP = 5
"""Grey levels between consecutive frames (flat greys read back exactly enough through JPEG
and MJPEG)."""


def brightness_video(path: Path, frames: int, fps: float) -> Path:
    """An MJPEG video at ``path`` whose frame i is a flat grey of level ``STEP * i``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), STEP * i, np.uint8))
    writer.release()
    return path


def level(jpeg: bytes) -> int:
    """The frame index a JPEG of :func:`brightness_video` shows."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return round(float(image.mean()) / STEP)
