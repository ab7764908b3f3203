"""``events.face``: a face seen by a camera matched a watchlist entry (key = site id).

Only matches are ever published: a face that matches nobody is counted, never described.
The message names the person by the watchlist reference (a case or warrant number), never
by name, and carries no embedding; the face crop and the frame (snapshot), if kept, are
Redis keys with a TTL. ``track_id`` is the person track the face was found on (the stage
runs on person tracks by default; ``None`` when it samples whole frames).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Message
from schemas.detections import Box


class FaceEvent(Message):
    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic: camera, frame seq and person id")
    kind: Literal["watchlist_match"] = "watchlist_match"
    camera_id: str = Field(min_length=1)
    site_id: str = Field(min_length=1)
    ts: float = Field(gt=0, description="Capture time of the frame")
    seq: int = Field(ge=0, description="Frame seq")
    track_id: int | None = Field(default=None, description="The person track, when known")
    list_id: str = Field(min_length=1, description="The watchlist that matched")
    category: str = Field(description="The entry's category (e.g. wanted, missing, banned)")
    person_id: str = Field(min_length=1, description="The watchlist entry id")
    person_ref: str = Field(description="The operator's reference for the entry")
    similarity: float = Field(ge=-1.0, le=1.0, description="Cosine similarity of the match")
    threshold: float = Field(ge=-1.0, le=1.0, description="The list's threshold at match time")
    quality: float = Field(ge=0.0, le=1.0, description="Face quality score (size, pose, blur)")
    face_box: Box = Field(description="The face in the frame, normalised")
    crop_ref: str | None = Field(default=None,
                                 description="Redis key of the matched face crop (JPEG, TTL)")
    snapshot_ref: str | None = Field(
        default=None, description="The frame kept as evidence (``frames.raw/<camera>/<seq>``): "
        "served by the alert API at /v1/snapshots/<ref> with every other face blurred")
