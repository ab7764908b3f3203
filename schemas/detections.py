"""``detections``: what the detector saw in one frame.

Person boxes may carry an appearance ``embedding`` (re-identification, used by the
tracker): the base64 of int8 codes of an L2-normalised vector (OSNet: 512 bytes, 684
characters), scaled so that its largest component is +-127; re-normalise after decoding
(``argus.inference.reid.decode_embedding``). ``embedding_model`` names the model that made them:
embeddings of different models must not be compared.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Message


class Box(Message):
    """An axis-aligned box in normalised image coordinates (0..1, origin top-left)."""

    x1: float = Field(ge=0.0, le=1.0)
    y1: float = Field(ge=0.0, le=1.0)
    x2: float = Field(ge=0.0, le=1.0)
    y2: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners must satisfy x1 <= x2 and y1 <= y2")
        return self

    @property
    def bottom_centre(self) -> tuple[float, float]:
        """Where a standing person touches the ground."""
        return ((self.x1 + self.x2) / 2.0, self.y2)


class Detection(Message):
    box: Box
    class_id: int = Field(ge=0)
    class_name: str
    score: float = Field(ge=0.0, le=1.0)
    embedding: str | None = Field(
        default=None, min_length=4, max_length=4096, pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="base64 of the int8 re-id embedding (L2-normalised, peak scaled to 127)")


class Detections(Message):
    schema_version: Literal[1] = 1
    camera_id: str = Field(min_length=1)
    seq: int = Field(ge=0)
    capture_ts: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    detections: list[Detection]
    model: str
    model_version: str
    embedding_model: str | None = Field(
        default=None, description="the re-id model of the detections' embeddings, if any")
    inference_ms: float = Field(ge=0.0)
    carried_from_seq: int | None = Field(
        default=None, ge=0, description="set when the detect stage's motion gate found the "
        "frame still: these are the detections (and embeddings) of this earlier frame of the "
        "camera, not run on this one (inference_ms 0)")
