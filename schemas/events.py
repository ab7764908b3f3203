"""``events.video``: behaviour events seen by a camera (key = site id)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Message
from schemas.detections import Box


class VideoEvent(Message):
    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic: camera, zone, kind and frame seq")
    kind: Literal["zone_intrusion"]
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
