"""``events.plate``: a vehicle track's licence plate, read stably (key = site id).

One message per (camera, track, plate): the plate stage reads a confirmed vehicle track's
plate on a few good frames, votes per character across them and publishes once the vote is
stable (and again only if the track's plate changes), with the site's lists it is on
(``hits``; a hotlist hit becomes a ``plate_match`` event for the rule ``hotlist_vehicle``).
``text`` is the normalised plate in the site's format; ``confidences`` are the per-character
vote shares. On a ``stills`` camera a photo with no vehicle to read is read whole: its plate
comes with ``track_id`` 0 (:data:`WHOLE_PHOTO_TRACK_ID`, no track), ``vehicle_class``
``unknown`` and the whole image as ``vehicle_box``. Plates are personal data: the topic's
retention bounds how long the text is kept here (docs/plates.md, privacy design).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Message
from schemas.detections import Box

WHOLE_PHOTO_TRACK_ID = 0
"""``track_id`` of a plate read on a whole still with no vehicle box (tracks start at 1)."""
WHOLE_PHOTO_CLASS = "unknown"
"""``vehicle_class`` of such a plate: no vehicle was detected."""

PlateColour = Literal["white", "silver", "grey", "black", "red", "blue", "green", "yellow",
                      "brown", "orange", "unknown"]


class PlateHit(Message):
    """The plate is on a hotlist or allow list (matched by the plate stage)."""

    list_id: str = Field(min_length=1)
    list_kind: Literal["hotlist", "allow"]
    entry_id: str = Field(min_length=1, description="The entry's keyed hash (no clear text)")
    distance: int = Field(ge=0, le=1, description="Edit distance of the read to the entry")


class PlateEvent(Message):
    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic: camera, track id and plate text "
                                      "(and the frame seq for a still read whole)")
    camera_id: str = Field(min_length=1)
    site_id: str = Field(min_length=1)
    ts: float = Field(gt=0, description="Capture time of the best frame read")
    seq: int = Field(ge=0, description="Seq of the best frame read")
    track_id: int = Field(ge=0, description="The vehicle track on the camera (0: a still "
                                            "read whole, no vehicle detected)")
    text: str = Field(pattern=r"^[A-Z0-9]{1,12}$", description="Normalised plate")
    format_id: str = Field(min_length=1, description="The site's plate format that matched")
    confidence: float = Field(ge=0.0, le=1.0, description="The lowest per-character share")
    confidences: list[float] = Field(description="Per character: the vote share 0..1")
    reads: int = Field(ge=1, description="Frames whose reads were voted")
    fixes: int = Field(ge=0, description="OCR-confusion substitutions the format needed")
    vehicle_class: str = Field(min_length=1, description="COCO class of the track "
                                                         "(unknown: a still read whole)")
    colour: PlateColour = Field(description="Dominant colour of the vehicle, from a palette")
    direction_deg: float | None = Field(
        default=None, ge=0.0, lt=360.0,
        description="Heading in the image, degrees clockwise from up (None: standing)")
    speed: float = Field(ge=0.0, description="Box centre speed, normalised image units per s")
    vehicle_box: Box = Field(description="The vehicle in the best frame, normalised")
    plate_box: Box = Field(description="The plate in the best frame, normalised")
    snapshot_ref: str | None = Field(
        default=None, description="The best frame kept as evidence (``frames.raw/<camera>/<seq>``)")
    hits: list[PlateHit] = Field(default_factory=list,
                                 description="Hotlists and allow lists the plate is on")

    @model_validator(mode="after")
    def _one_share_per_character(self) -> PlateEvent:
        if len(self.confidences) != len(self.text):
            raise ValueError(f"{len(self.confidences)} confidences for {len(self.text)} "
                             "characters")
        if any(not 0.0 <= c <= 1.0 for c in self.confidences):
            raise ValueError("confidences must lie in 0..1")
        return self
