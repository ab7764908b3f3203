"""``dlq``: every message a stage could not use, with why and where it came from."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from schemas.base import Message

MAX_DLQ_PAYLOAD = 8 * 1024 * 1024
"""Bytes of the original message kept in a dead letter (the ``dlq`` topic allows 16 MiB;
base64 adds a third)."""


class DeadLetter(Message):
    schema_version: Literal[1] = 1
    stage: str
    reason: str = Field(description="Short machine-readable cause, e.g. corrupt_jpeg")
    error: str = Field(description="Human-readable detail")
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    payload_b64: str = Field(description="The original bytes, base64")
    payload_size: int = Field(default=0, ge=0, description="Size of the original bytes")
    payload_truncated: bool = Field(
        default=False, description="True when only the first MAX_DLQ_PAYLOAD bytes are kept"
    )
    ts: float

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)
