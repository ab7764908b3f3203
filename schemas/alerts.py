"""``alerts``: what operations centres act on (key = site id)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.base import Message


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Evidence(Message):
    source: Literal["video", "sensor"]
    event_id: str
    ts: float
    camera_id: str | None = None
    sensor_id: str | None = None
    snapshot_ref: str | None = Field(
        default=None, description="Where the decisive frame can be fetched (topic:seq)"
    )


class Alert(Message):
    schema_version: Literal[1] = 1
    alert_id: str = Field(description="Deterministic from rule, site, zone and trigger event")
    rule: str
    title: str
    severity: Severity
    site_id: str
    zone_id: str
    camera_id: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    first_seen: float
    last_seen: float
    count: int = Field(default=1, ge=1)
    evidence: list[Evidence]
    state: AlertState = AlertState.OPEN
    created_at: float
    version: int = Field(default=1, ge=1)
