"""``frames.raw``: the value is the JPEG bytes; the metadata travels in Kafka headers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, cast

from pydantic import Field

from schemas.base import Message


class FrameHeaders(Message):
    """The headers of a ``frames.raw`` record (key = camera id, value = JPEG bytes)."""

    schema_version: Literal[1] = 1
    camera_id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=0, description="Frame number from the grabber, per camera")
    capture_ts: float = Field(gt=0, description="Capture time, Unix seconds")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    encoding: Literal["jpeg"] = "jpeg"

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers: every field as a UTF-8 string."""
        return [(name, str(value).encode()) for name, value in self.model_dump().items()]

    @classmethod
    def from_headers(cls, headers: object) -> FrameHeaders:
        """Parse Kafka headers (a list of pairs or a mapping); raises ``ValidationError``."""
        pairs: Iterable[tuple[object, object]] = (
            headers.items() if isinstance(headers, dict)
            else cast(Iterable[tuple[object, object]], headers or []))
        raw: dict[str, object] = {
            str(k): (v.decode(errors="replace") if isinstance(v, bytes | bytearray) else v)
            for k, v in pairs
        }
        version = raw.get("schema_version")
        if isinstance(version, str) and version.isdigit():
            raw["schema_version"] = int(version)  # a Literal[1] does not coerce from "1"
        return cls.model_validate(raw)
