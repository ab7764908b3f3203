"""``events.video``: behaviour events seen by a camera (key = site id).

``kind`` says what was seen; kind-specific details that have no field of their own
(a watchlist entry, a plate text, a dwell time, a line id, a track id) go in
``attributes``, which correlation rules can match on.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from schemas.base import Message
from schemas.detections import Box

VideoKind = Literal[
    "zone_intrusion",  # an object of a watched class inside a zone
    "loitering",  # a track stayed in a zone longer than its dwell limit
    "crowd",  # more people in a zone than its crowd limit
    "fall",  # a person down
    "line_crossing",  # a track crossed a counting line (attributes: line, direction)
    "face_match",  # a face matched a watchlist entry (attributes: watchlist, subject)
    "plate_match",  # a number plate matched a hotlist entry (attributes: plate, list)
    "plate_seen",  # a vehicle track's plate was read (attributes: plate, allowed, colour)
    "running",  # a track moved faster than its zone's running speed (attributes: speed)
    "wrong_way",  # a track moved against its zone's allowed direction (attributes: angle_deg)
    "abandoned_object",  # a bag stayed still after its owner left (attributes: still_s)
    "vehicle_stopped",  # a vehicle stopped in a no-parking zone (attributes: stopped_s)
    "anomaly",  # unusual motion for this camera, learned model (attributes: score, threshold)
    "occupancy",  # a zone's max occupancy over a counting window, from ``counts`` (count =
    #               max occupancy; attributes: group, area, entries, exits, window_start)
]
VIDEO_KINDS: tuple[str, ...] = get_args(VideoKind)

AttributeValue = str | int | float | bool


class VideoEvent(Message):
    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic: camera, zone, kind and frame seq")
    kind: VideoKind
    camera_id: str
    site_id: str
    zone_id: str = Field(description="The camera zone id")
    site_zone_id: str | None = Field(default=None, description="The site zone it maps to")
    ts: float = Field(gt=0, description="Capture time of the decisive frame")
    seq: int = Field(ge=0)
    class_name: str
    score: float = Field(ge=0.0, le=1.0)
    box: Box
    count: int = Field(ge=1, description="Objects of the class inside the zone")
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict,
        description="Kind-specific details, e.g. track_id, dwell_s, line, direction, "
                    "watchlist, subject, plate",
    )
    # Added in the behaviour stage (optional, so version 1 messages without them stay valid)
    track_ids: list[int] = Field(
        default_factory=list, description="The tracks involved (behaviour events)")
    start_ts: float | None = Field(
        default=None, gt=0, description="Capture time the behaviour began (e.g. entering)")
    end_ts: float | None = Field(
        default=None, gt=0, description="Capture time it was decided (or ended)")
    snapshot_ref: str | None = Field(
        default=None, description="Evidence frame kept in Redis (argus:snapshot:<ref>)")
