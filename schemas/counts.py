"""``counts``: people and vehicles counted in one camera area over one window (key = site id).

One message per camera zone or line per window (a minute of capture time by default),
sent when the camera's first frame of a later window arrives. ``groups`` maps a class
group (``people``, ``vehicles``; ``ARGUS_COUNTING_GROUPS``) to its counts. For a zone,
``entries``/``exits`` are tracks moving into/out of the polygon (foot point), and
``occupancy``/``max_occupancy`` the confirmed tracks inside at the window's last frame /
at most during it; for a line, ``entries`` are crossings ``a_to_b`` and ``exits``
``b_to_a``, and there is no occupancy (``None``). See pipelines/stages/counting/.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Message

AreaType = Literal["zone", "line"]


class GroupCounts(Message):
    entries: int = Field(ge=0, description="Zone: outside -> inside; line: a_to_b crossings")
    exits: int = Field(ge=0, description="Zone: inside -> outside; line: b_to_a crossings")
    occupancy: int | None = Field(
        default=None, ge=0, description="Zone: tracks inside at the window's last frame")
    max_occupancy: int | None = Field(
        default=None, ge=0, description="Zone: most tracks inside at once during the window")


class Counts(Message):
    schema_version: Literal[1] = 1
    camera_id: str = Field(min_length=1)
    site_id: str = Field(min_length=1)
    area_type: AreaType
    area_id: str = Field(min_length=1, description="The camera zone or line id")
    site_zone_id: str | None = Field(default=None, description="The site zone it maps to")
    window_start: float = Field(gt=0, description="Capture time the window starts (inclusive)")
    window_end: float = Field(gt=0, description="Capture time the window ends (exclusive)")
    frames: int = Field(ge=1, description="Frames of the camera seen in the window")
    last_seq: int = Field(ge=0, description="Frame seq of the window's last frame")
    last_ts: float = Field(gt=0, description="Capture time of the window's last frame")
    groups: dict[str, GroupCounts] = Field(description="Per class group (people, vehicles)")

    @model_validator(mode="after")
    def _window(self) -> Counts:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self

    @property
    def message_id(self) -> str:
        """Deterministic id of this window's counts (camera, area, window start)."""
        return f"{self.camera_id}:{self.area_id}:{int(self.window_start)}"
