"""One frame on its way to Kafka: the :class:`Frame` record, its topic and :func:`downscale`."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.frames import FrameHeaders

FRAMES_TOPIC = "frames.raw"
"""The topic the grabber publishes frames to (before the settings' topic prefix)."""

__all__ = ["FRAMES_TOPIC", "Frame", "downscale"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled, encoded frame on its way to Kafka."""

    camera_id: str
    seq: int
    capture_ts: float
    width: int
    height: int
    jpeg: bytes

    def headers(self) -> FrameHeaders:
        """The validated ``frames.raw`` headers of this frame."""
        return FrameHeaders(camera_id=self.camera_id, seq=self.seq, capture_ts=self.capture_ts,
                            width=self.width, height=self.height)


def downscale(image: np.ndarray, max_width: int | None) -> np.ndarray:
    """Shrink ``image`` to ``max_width`` pixels wide (keeping the aspect) if it is wider."""
    height, width = image.shape[:2]
    if max_width is None or width <= max_width:
        return image
    new_height = max(1, round(height * max_width / width))
    return cv2.resize(image, (max_width, new_height), interpolation=cv2.INTER_AREA)
