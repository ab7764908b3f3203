"""Pure logic of the sensor gateway: enrichment, rejection, debouncing, last seen, origins.

Nothing here does I/O; :class:`~services.sensor_gateway.publisher.SensorPublisher` wires
it to Kafka and the metrics, and every input (HTTP, MQTT, replay) goes through it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from argus.topology import Topology
from schemas.sensors import SensorEvent, SensorReading

DEFAULT_MAX_AGE_S = 24 * 3600.0
"""Readings older than this are ``stale`` (replays re-stamp times, so a day is plenty)."""
DEFAULT_MAX_FUTURE_S = 300.0
"""Readings further ahead of the gateway's clock than this are ``future`` (clock skew)."""
DEFAULT_DEBOUNCE_S = 2.0


class RejectedReading(Exception):
    """A reading the gateway will not publish; ``reason`` is a short machine-readable cause.

    Reasons: ``malformed`` (not JSON), ``schema`` (not a valid reading), ``unknown_sensor``,
    ``stale``, ``future``, and for MQTT ``topic`` (a topic that names no sensor) and
    ``topic_mismatch`` (the topic names another sensor or site than the reading).
    ``fields`` names the offending fields for ``schema``.
    """

    def __init__(self, reason: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.fields = list(fields)


def event_id(sensor_id: str, ts: float, state: str | None) -> str:
    """The deterministic id of a sensor event: the same reading always gets the same id.

    >>> event_id("pir-1", 1700000000.0, "active") == event_id("pir-1", 1700000000.0004, "active")
    True
    """
    key = f"{sensor_id}:{ts:.3f}:{state or ''}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_event(
    reading: SensorReading,
    topology: Topology,
    now: float,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    max_future_s: float = DEFAULT_MAX_FUTURE_S,
) -> SensorEvent:
    """Enrich a reading with its sensor's site, zone and type; raise ``RejectedReading``.

    A reading exactly ``max_age_s`` old or exactly ``max_future_s`` ahead is accepted.
    """
    sensor = topology.sensor(reading.sensor_id)
    if sensor is None:
        raise RejectedReading(
            "unknown_sensor", f"unknown sensor {reading.sensor_id!r}: it is not in the topology"
        )
    age = now - reading.ts
    if age > max_age_s:
        raise RejectedReading(
            "stale",
            f"reading of sensor {reading.sensor_id!r} at ts={reading.ts:.3f} is {age:.0f} s old "
            f"(limit {max_age_s:.0f} s)",
        )
    if -age > max_future_s:
        raise RejectedReading(
            "future",
            f"reading of sensor {reading.sensor_id!r} at ts={reading.ts:.3f} is {-age:.0f} s "
            f"in the future (limit {max_future_s:.0f} s; check the sensor's clock)",
        )
    return SensorEvent(
        event_id=event_id(reading.sensor_id, reading.ts, reading.state),
        sensor_id=reading.sensor_id,
        site_id=sensor.site,
        zone_id=sensor.zone,
        type=sensor.type,
        state=reading.state,
        value=reading.value,
        ts=reading.ts,
        battery=reading.battery,
    )


# --- where a reading came from ------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """What the transport says about a reading: MQTT topics name the site and the sensor.

    ``channel`` (e.g. ``mqtt:argus/sensors/depot/pir-1``) goes into dead letters.
    """

    channel: str
    sensor_id: str | None = None
    site_id: str | None = None


def apply_origin(item: Any, origin: Origin | None) -> Any:
    """The reading ``item`` (parsed JSON) with the sensor id its origin names filled in.

    A reading without ``sensor_id`` (absent or null) takes the origin's; one with a
    different id raises ``RejectedReading("topic_mismatch")``. Items that are not JSON
    objects pass unchanged (schema validation rejects them next).
    """
    if origin is None or origin.sensor_id is None or not isinstance(item, dict):
        return item
    claimed = item.get("sensor_id")
    if claimed is None:
        return {**item, "sensor_id": origin.sensor_id}
    if claimed != origin.sensor_id:
        raise RejectedReading(
            "topic_mismatch",
            f"the reading names sensor {claimed!r} but was published for sensor "
            f"{origin.sensor_id!r} ({origin.channel})",
        )
    return item


def check_origin_site(event: SensorEvent, origin: Origin | None) -> None:
    """Raise ``RejectedReading("topic_mismatch")`` if the origin names another site than the
    topology gives the event's sensor."""
    if origin is not None and origin.site_id is not None and origin.site_id != event.site_id:
        raise RejectedReading(
            "topic_mismatch",
            f"sensor {event.sensor_id!r} belongs to site {event.site_id!r} but was published "
            f"under site {origin.site_id!r} ({origin.channel})",
        )


# --- state ----------------------------------------------------------------------------


class Debouncer:
    """Drops repeats: the same sensor reporting the same state and value within ``window_s``.

    The window is measured in event time from the last *accepted* event of the sensor, so a
    sensor that keeps repeating itself still gets one event through per window. A change of
    state (or value) always passes. Thread-safe; memory is one entry per known sensor.
    """

    def __init__(self, window_s: float = DEFAULT_DEBOUNCE_S) -> None:
        self.window_s = window_s
        self._last: dict[str, tuple[str | None, float | None, float]] = {}
        self._lock = threading.Lock()

    def accept(self, event: SensorEvent) -> bool:
        """True (and remember the event) if it is new; False if it is a duplicate."""
        with self._lock:
            last = self._last.get(event.sensor_id)
            if last is not None:
                state, value, ts = last
                if (state, value) == (event.state, event.value) and abs(
                    event.ts - ts
                ) < self.window_s:
                    return False
            self._last[event.sensor_id] = (event.state, event.value, event.ts)
            return True

    def forget(self, event: SensorEvent) -> None:
        """Undo ``accept`` for an event that could not be published (so a retry passes)."""
        with self._lock:
            if self._last.get(event.sensor_id) == (event.state, event.value, event.ts):
                del self._last[event.sensor_id]


class LastSeen:
    """The event time of the latest valid reading of each sensor (duplicates included: a
    sensor repeating its state is alive). Never goes back in time; thread-safe.

    Only readings of topology sensors get here, so memory is bounded by the topology.
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def update(self, sensor_id: str, ts: float) -> float:
        """Record a reading at ``ts``; returns the sensor's last-seen time afterwards."""
        with self._lock:
            latest = max(ts, self._seen.get(sensor_id, ts))
            self._seen[sensor_id] = latest
            return latest

    def get(self, sensor_id: str) -> float | None:
        """The sensor's last-seen time, or None if it never sent a valid reading."""
        with self._lock:
            return self._seen.get(sensor_id)
