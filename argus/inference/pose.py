"""Person pose: the Triton ``pose`` client and what keypoints say about a person being down.

Keypoints are a 17 x 3 array (COCO order, :data:`KEYPOINT_NAMES`): x, y normalised to the
image (origin top-left, y down) and a score 0..1, as the ``pose`` model returns them. The
pure functions take the image aspect ratio (width / height) so that angles and extents are
measured in pixels, not in the anisotropic normalised units.

* :func:`torso_angle`: the angle of the torso (mid-shoulders → mid-hips) from the image
  vertical, 0° upright, 90° horizontal (180° upside down).
* :func:`height_spread`: the vertical extent of the visible keypoints over their larger
  extent, ~1 for an upright body, small for a body lying across the image.
* :func:`person_down`: both combined into a verdict and its confidence.

>>> kp = keypoints_from({"left_shoulder": (0.5, 0.3), "right_shoulder": (0.5, 0.3),
...                      "left_hip": (0.5, 0.6), "right_hip": (0.5, 0.6)})
>>> torso_angle(kp)
0.0
>>> person_down(kp)
(False, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from tritonclient.grpc.aio import InferInput

from argus.inference.triton import TritonModel, jpeg_input
from schemas.detections import Box

MODEL = "pose"
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
"""COCO keypoint order (the person's left/right)."""
SHOULDERS = (5, 6)
HIPS = (11, 12)
Keypoints = npt.NDArray[np.float32]
"""17 x 3: x, y (normalised to the image), score."""

MIN_SCORE = 0.25
"""Keypoints below this score are treated as not visible (MoveNet scores a person on the
floor lower than a standing one: 0.3-0.6 for the torso in the URFD fall)."""
ANGLE_UPRIGHT, ANGLE_DOWN = 30.0, 60.0
"""Torso angles (degrees) where the down score starts rising, and where it reaches 1."""
SPREAD_UPRIGHT, SPREAD_DOWN = 0.9, 0.5
"""Height spreads where the down score starts rising, and where it reaches 1."""
MIN_SPREAD_POINTS = 5
"""Visible keypoints needed to judge by the height spread alone (no visible torso)."""


def keypoints_from(points: Mapping[str, tuple[float, float] | tuple[float, float, float]],
                   ) -> Keypoints:
    """A keypoint array from named points (``(x, y)`` with score 1, or ``(x, y, score)``);
    the others get score 0. For tests and examples."""
    kp = np.zeros((len(KEYPOINT_NAMES), 3), dtype=np.float32)
    for name, point in points.items():
        kp[KEYPOINT_NAMES.index(name)] = (*point, 1.0) if len(point) == 2 else point
    return kp


def _mid(kp: Keypoints, pair: tuple[int, int], min_score: float,
         aspect: float) -> tuple[float, float] | None:
    """The mean pixel-ish position (x * aspect, y) of the visible points of ``pair``."""
    visible = [kp[i] for i in pair if kp[i, 2] >= min_score]
    if not visible:
        return None
    return (float(np.mean([p[0] for p in visible])) * aspect,
            float(np.mean([p[1] for p in visible])))


def torso_angle(keypoints: npt.ArrayLike, aspect: float = 1.0,
                min_score: float = MIN_SCORE) -> float | None:
    """Degrees between the torso (mid-shoulders → mid-hips) and the image vertical: 0 upright,
    90 horizontal, 180 upside down. None when no shoulder or no hip is visible, or the
    shoulders and hips coincide. ``aspect`` is the image width / height."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, 3)
    shoulders = _mid(kp, SHOULDERS, min_score, aspect)
    hips = _mid(kp, HIPS, min_score, aspect)
    if shoulders is None or hips is None:
        return None
    dx, dy = hips[0] - shoulders[0], hips[1] - shoulders[1]
    if math.hypot(dx, dy) < 1e-6:
        return None
    return round(math.degrees(math.atan2(abs(dx), dy)), 3)


def height_spread(keypoints: npt.ArrayLike, aspect: float = 1.0,
                  min_score: float = MIN_SCORE) -> float | None:
    """Vertical extent of the visible keypoints over the larger of their vertical and
    horizontal extents (in pixels): 1 for an upright body, ~0.2-0.4 for one lying across the
    image. None with fewer than two visible keypoints or all of them on one spot."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, 3)
    visible = kp[kp[:, 2] >= min_score]
    if len(visible) < 2:
        return None
    height = float(visible[:, 1].max() - visible[:, 1].min())
    width = float(visible[:, 0].max() - visible[:, 0].min()) * aspect
    if max(height, width) < 1e-6:
        return None
    return round(height / max(height, width), 4)


def _ramp(value: float, start: float, full: float) -> float:
    """0 at ``start``, 1 at ``full``, linear in between, clipped."""
    return min(max((value - start) / (full - start), 0.0), 1.0)


def down_score(keypoints: npt.ArrayLike, aspect: float = 1.0,
               min_score: float = MIN_SCORE) -> float | None:
    """How much the keypoints look like a person down, 0..1: the larger of the torso-angle
    ramp (30° → 60°) and the height-spread ramp (0.9 → 0.5). The spread is only used with
    at least :data:`MIN_SPREAD_POINTS` visible keypoints. None when neither can be measured."""
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, 3)
    scores: list[float] = []
    angle = torso_angle(kp, aspect, min_score)
    if angle is not None:
        scores.append(_ramp(angle, ANGLE_UPRIGHT, ANGLE_DOWN))  # past 90°: head below hips
    spread = height_spread(kp, aspect, min_score)
    if spread is not None and int((kp[:, 2] >= min_score).sum()) >= MIN_SPREAD_POINTS:
        scores.append(_ramp(-spread, -SPREAD_UPRIGHT, -SPREAD_DOWN))
    return max(scores) if scores else None


def person_down(keypoints: npt.ArrayLike, aspect: float = 1.0,
                min_score: float = MIN_SCORE) -> tuple[bool, float]:
    """``(down, confidence)``: down when :func:`down_score` is at least 0.5; the confidence
    is that score for a person down and 1 - score for one up (how sure the verdict is).
    Keypoints too weak to judge give ``(False, 0.0)``."""
    score = down_score(keypoints, aspect, min_score)
    if score is None:
        return False, 0.0
    down = score >= 0.5
    return down, round(score if down else 1.0 - score, 4)


def box_values(box: Box | Sequence[float] | None) -> list[float]:
    """A box as x1, y1, x2, y2 (None: zeros, the model's "whole image")."""
    if box is None:
        return [0.0, 0.0, 0.0, 0.0]
    if isinstance(box, Box):
        return [box.x1, box.y1, box.x2, box.y2]
    return [float(v) for v in box]


class TritonPose(TritonModel):
    """The client of the ``pose`` model: one JPEG and one person box per request (Triton's
    dynamic batcher groups concurrent requests)."""

    model = MODEL

    async def infer(self, jpeg: bytes, box: Box | Sequence[float] | None,
                    ) -> tuple[Keypoints, float]:
        """The 17 keypoints of the person in ``box`` (normalised; None: the whole image)
        and the latency in ms; raises ``Rejected`` (``corrupt_jpeg``) for a bad image."""
        box_input = InferInput("BOX", [1, 4], "FP32")
        box_input.set_data_from_numpy(np.asarray([box_values(box)], dtype=np.float32))
        result, ms = await self.call([jpeg_input(jpeg), box_input], ("KEYPOINTS",))
        keypoints = result.as_numpy("KEYPOINTS")
        assert keypoints is not None
        return np.asarray(keypoints[0], dtype=np.float32), ms

    async def keypoints(self, jpeg: bytes, box: Box) -> Keypoints:
        """:meth:`infer` without the latency: the ``pose`` callable of a ``FallDetector``."""
        keypoints, _ = await self.infer(jpeg, box)
        return keypoints
