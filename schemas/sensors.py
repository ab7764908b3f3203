"""``sensors.events``: IoT sensor events (key = site id)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.base import Message


class SensorType(StrEnum):
    INTRUSION = "intrusion"  # PIR / microwave / perimeter beam
    DOOR = "door"
    GLASS_BREAK = "glass_break"
    SMOKE = "smoke"
    TEMPERATURE = "temperature"
    GAS = "gas"
    ACCESS = "access"
    GATE = "gate"  # a vehicle gate or barrier (open / closed)
    PANIC = "panic"
    TAMPER = "tamper"


class SensorReading(Message):
    """What a sensor (or the gateway's HTTP client) sends: no site, the topology knows it."""

    sensor_id: str = Field(min_length=1, max_length=128)
    state: str | None = Field(default=None, description="e.g. active/inactive, open/closed")
    value: float | None = None
    ts: float = Field(gt=0, description="Event time, Unix seconds")
    battery: float | None = Field(default=None, ge=0.0, le=100.0)


class SensorEvent(Message):
    """A validated reading, enriched with its site, zone and type from the topology."""

    schema_version: Literal[1] = 1
    event_id: str = Field(description="Deterministic: sensor id and event time")
    sensor_id: str
    site_id: str
    zone_id: str
    type: SensorType
    state: str | None = None
    value: float | None = None
    ts: float = Field(gt=0)
    battery: float | None = None
