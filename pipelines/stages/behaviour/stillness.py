"""Objects that stay still: the shared part of *abandoned object* and *vehicle stopped*.

An object is still while its box centre stays within ``tolerance`` times its own box height
(pixels) of the *anchor*, the centre where it settled; moving further re-anchors it and
restarts its clock. Only confirmed frames (real detections) count: a track that is lost
(occluded, missed by the detector) keeps its anchor and clock for up to ``grace_s``.

>>> s = Still(anchor_x=0.5, anchor_y=0.5, anchor_ts=10.0, anchor_seq=1, last_ts=10.0)
>>> s.moved_to((0.52, 0.5), 40.0, 640, 360, 0.5), s.moved_to((0.7, 0.5), 40.0, 640, 360, 0.5)
(False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.stages.behaviour.base import Point


@dataclass
class Still:
    """Where and since when one object has been still, and what it decided so far."""

    anchor_x: float
    anchor_y: float
    anchor_ts: float
    anchor_seq: int
    last_ts: float
    fired: bool = False
    owner: int | None = None
    """The person who came with it (abandoned object)."""
    owner_left_ts: float | None = None
    """When its owner was last seen leaving it (abandoned object)."""
    score_sum: float = 0.0
    frames: int = 0

    def moved_to(self, point: Point, height_px: float, width: int, height: int,
                 tolerance: float) -> bool:
        """Whether ``point`` is further than ``tolerance`` box heights from the anchor."""
        gap = math.hypot((point[0] - self.anchor_x) * width, (point[1] - self.anchor_y) * height)
        return gap > tolerance * height_px

    def settle(self, point: Point, ts: float, seq: int) -> None:
        """Re-anchor at ``point`` now: the object moved, its clock restarts."""
        self.anchor_x, self.anchor_y = point
        self.anchor_ts, self.anchor_seq = ts, seq
        self.fired = False
        self.score_sum, self.frames = 0.0, 0
