"""The detect stage's motion gate: skip the detector on frames where nothing moved.

Per camera the gate keeps a *reference*: a small greyscale thumbnail of the last frame that
was actually detected, its capture time and its :class:`Detections`. A new frame is
*carried* (not sent to Triton) when the gate is on, the reference is younger than
``motion_refresh_s`` in capture time, and the share of thumbnail pixels that differ from the
reference's by more than ``motion_pixel_threshold`` grey levels is below ``motion_gate``.
A carried frame's ``detections`` are the reference's (boxes, scores and re-id embeddings)
stamped with the new frame's seq, capture time and size, ``inference_ms`` 0 and
``carried_from_seq`` = the reference's seq.

The thumbnail is decoded at 1/8 scale by libjpeg itself (DCT scaling: each pixel is an
8x8 block's mean, so JPEG noise is already averaged out): 160x90 for a 720p frame, well
under a millisecond. A frame the gate cannot decode goes to the detector as usual (which
dead-letters a corrupt JPEG).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.detections import Detections
from schemas.frames import FrameHeaders


def thumbnail(jpeg: bytes) -> np.ndarray | None:
    """The frame's greyscale thumbnail at 1/8 scale, or None when it does not decode."""
    try:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    except cv2.error:
        return None
    if image is None or image.size == 0:
        return None
    return image


def changed_fraction(a: np.ndarray, b: np.ndarray, threshold: int) -> float:
    """The share of pixels whose grey levels differ by more than ``threshold`` (1.0 when
    the thumbnails' shapes differ: the camera's resolution changed)."""
    if a.shape != b.shape:
        return 1.0
    return float(np.count_nonzero(cv2.absdiff(a, b) > threshold)) / a.size


@dataclass(frozen=True)
class GateConfig:
    gate: float = 0.0
    """Changed-pixel share below which a frame is still (0: the gate is off)."""
    refresh_s: float = 2.0
    """A camera is detected for real at least this often (capture time)."""
    pixel_threshold: int = 25
    """Grey levels a pixel must change by to count as changed."""


@dataclass(frozen=True)
class Reference:
    """The last detected frame of a camera: what a still frame is compared with."""

    thumb: np.ndarray
    capture_ts: float
    seq: int


def is_still(config: GateConfig, reference: Reference | None, thumb: np.ndarray | None,
             capture_ts: float) -> bool:
    """Whether a frame may carry the reference's detections instead of being detected."""
    if config.gate <= 0.0 or reference is None or thumb is None:
        return False
    age = capture_ts - reference.capture_ts
    if not 0.0 <= age < config.refresh_s:
        return False
    return changed_fraction(thumb, reference.thumb, config.pixel_threshold) < config.gate


def carried(source: Detections, seq: int, capture_ts: float, width: int,
            height: int) -> Detections:
    """``source``'s detections as the message of a carried frame."""
    return source.model_copy(update={
        "seq": seq, "capture_ts": capture_ts, "width": width, "height": height,
        "inference_ms": 0.0, "carried_from_seq": source.seq})


Source = int | Detections | None
"""Per frame of a micro-batch: None (detect it), the index of an earlier frame of the batch
that is detected (carry its detections once they return), or the stored reference's
:class:`Detections` (carry them)."""


@dataclass(frozen=True)
class _Stored:
    reference: Reference
    detections: Detections
    ticket: int


class MotionGate:
    """The references of the cameras, and the per-frame decisions of a micro-batch.

    :meth:`plan` decides synchronously, in the batch's order (the order frames left Kafka);
    :meth:`commit` stores the detected frames as references once their detections are
    back. Micro-batches in flight at once see the references committed so far: a later
    batch never waits for an earlier one, it compares with an older reference (or detects).
    Each planned frame takes a ticket, so a batch that returns late never replaces a
    reference with an older frame."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self._stored: dict[str, _Stored] = {}
        self._tickets = 0

    @property
    def on(self) -> bool:
        return self.config.gate > 0.0

    def plan(self, frames: list[tuple[FrameHeaders, bytes]]
             ) -> tuple[list[Source], list[tuple[np.ndarray | None, int]]]:
        """Each frame's :data:`Source`, and the (thumbnail, ticket) to pass to
        :meth:`commit`."""
        if not self.on:
            return [None] * len(frames), [(None, 0)] * len(frames)
        sources: list[Source] = []
        thumbs: list[tuple[np.ndarray | None, int]] = []
        # camera → its latest detected frame earlier in this batch (None: not decodable)
        latest: dict[str, tuple[Reference, int] | None] = {}
        for index, (meta, jpeg) in enumerate(frames):
            self._tickets += 1
            thumb = thumbnail(jpeg)
            thumbs.append((thumb, self._tickets))
            reference: Reference | None
            source: Source
            if meta.camera_id in latest:
                earlier = latest[meta.camera_id]
                reference, source = earlier if earlier is not None else (None, None)
            else:
                stored = self._stored.get(meta.camera_id)
                reference, source = ((stored.reference, stored.detections)
                                     if stored is not None else (None, None))
            if is_still(self.config, reference, thumb, meta.capture_ts):
                sources.append(source)
                continue
            sources.append(None)
            latest[meta.camera_id] = (None if thumb is None else
                                      (Reference(thumb, meta.capture_ts, meta.seq), index))
        return sources, thumbs

    def commit(self, thumbs: list[tuple[np.ndarray | None, int]],
               detected: list[Detections | None]) -> None:
        """Store each detected frame (not None) that decoded as its camera's reference,
        unless a later-planned frame already is."""
        for (thumb, ticket), message in zip(thumbs, detected, strict=True):
            if thumb is None or message is None:
                continue
            stored = self._stored.get(message.camera_id)
            if stored is None or stored.ticket < ticket:
                self._stored[message.camera_id] = _Stored(
                    Reference(thumb, message.capture_ts, message.seq), message, ticket)
