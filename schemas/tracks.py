"""``tracks``: the tracked objects of one camera after one frame (key = camera id).

One message per processed frame. ``track_id`` is stable per camera: the same object keeps
its id from frame to frame, through short occlusions and across worker restarts (see
docs/adr/0004-tracker-state.md); ids are never reused within a camera. Consumers that
want only objects seen in this frame keep ``state == "confirmed"``; ``lost`` tracks carry
their predicted box and ``tentative`` ones have not been confirmed yet.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Message
from schemas.detections import Box

TrackStateName = Literal["tentative", "confirmed", "lost"]


class Velocity(Message):
    """Velocity of the box centre in normalised image units per second (x right, y down)."""

    vx: float
    vy: float


class Track(Message):
    track_id: int = Field(ge=1, description="Stable per camera; never reused")
    class_id: int = Field(ge=0)
    class_name: str
    box: Box = Field(description="Filtered box (predicted, for a lost track)")
    velocity: Velocity
    age: int = Field(ge=0, description="Frames since the track started")
    state: TrackStateName
    first_seen: float = Field(gt=0, description="Capture time of the first detection")
    last_seen: float = Field(gt=0, description="Capture time of the latest matched detection")
    score: float = Field(ge=0.0, le=1.0, description="Score of the latest matched detection")

    @model_validator(mode="after")
    def _seen_in_order(self) -> Track:
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen must not be before first_seen")
        return self


class Tracks(Message):
    schema_version: Literal[1] = 1
    camera_id: str = Field(min_length=1)
    seq: int = Field(ge=0)
    capture_ts: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    tracks: list[Track]

    def confirmed(self) -> list[Track]:
        """The tracks matched to a detection in this frame."""
        return [t for t in self.tracks if t.state == "confirmed"]
