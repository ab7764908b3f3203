"""Correlation rules: pure functions of the recent events of one site.

The first rule, *confirmed intrusion*: an intrusion sensor (PIR, beam) fires in a
site zone and a camera sees a person in a camera zone mapped to that site zone
within ``window_s`` seconds, in either order. The alert id is derived from the rule,
site, zone and the triggering sensor event, so re-processing the same input yields
the same id (and the sinks write it once).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from argus.topology import Topology
from schemas.alerts import Alert, Evidence, Severity
from schemas.events import VideoEvent
from schemas.sensors import SensorEvent, SensorType

SiteState = dict[str, list[dict[str, Any]]]
"""Per site: ``{"sensor": [...], "video": [...]}`` of compact event dicts (JSON-safe,
so the state can live in a Faust table with a changelog)."""

ACTIVE_STATES = {"active", "on", "open", "1", "alarm", "triggered"}


def alert_id(rule: str, site: str, zone: str, anchor: str) -> str:
    """Deterministic alert id.

    >>> alert_id("confirmed_intrusion", "site", "zone", "pir:1.000:active")
    'confirmed_intrusion-7f3816bce347ec4a'

    """
    digest = hashlib.sha1(f"{rule}|{site}|{zone}|{anchor}".encode()).hexdigest()
    return f"{rule}-{digest[:16]}"


def _prune(items: list[dict[str, Any]], now: float, keep_s: float) -> list[dict[str, Any]]:
    return [item for item in items if item["ts"] >= now - keep_s]


class ConfirmedIntrusion:
    """Sensor intrusion + person on camera in the mapped zone within ``window_s``."""

    name = "confirmed_intrusion"
    severity = Severity.HIGH

    def __init__(self, topology: Topology, window_s: float = 30.0) -> None:
        self.topology = topology
        self.window_s = window_s

    def observe(self, state: SiteState, event: VideoEvent | SensorEvent) -> list[Alert]:
        """Add ``event`` to ``state`` (mutated in place) and return the alerts it completes."""
        sensors = state.setdefault("sensor", [])
        videos = state.setdefault("video", [])
        alerts: list[Alert] = []
        if isinstance(event, SensorEvent):
            if event.type != SensorType.INTRUSION or (event.state or "").lower() not in (
                    ACTIVE_STATES):
                return []
            item = {"event_id": event.event_id, "sensor_id": event.sensor_id,
                    "zone": event.zone_id, "ts": event.ts}
            sensors.append(item)
            matches = [v for v in videos if v["zone"] == event.zone_id
                       and abs(v["ts"] - event.ts) <= self.window_s]
            if matches:
                best = min(matches, key=lambda v: abs(v["ts"] - event.ts))
                alerts.append(self._alert(event.site_id, item, best))
        elif event.kind == "zone_intrusion" and event.site_zone_id is not None:
            item = {"event_id": event.event_id, "camera_id": event.camera_id,
                    "zone": event.site_zone_id, "ts": event.ts, "seq": event.seq}
            videos.append(item)
            for sensor in sensors:
                if sensor["zone"] == item["zone"] and abs(sensor["ts"] - event.ts) <= (
                        self.window_s):
                    alerts.append(self._alert(event.site_id, sensor, item))
        newest = max([i["ts"] for i in sensors + videos], default=0.0)
        state["sensor"] = _prune(sensors, newest, 2 * self.window_s)
        state["video"] = _prune(videos, newest, 2 * self.window_s)
        return alerts

    def _alert(self, site_id: str, sensor: dict[str, Any], video: dict[str, Any]) -> Alert:
        site = self.topology.site(site_id)
        zone = sensor["zone"]
        zone_name = next((z.name or z.id for z in site.zones if z.id == zone), zone)
        return Alert(
            alert_id=alert_id(self.name, site_id, zone, sensor["event_id"]),
            rule=self.name,
            title=f"Confirmed intrusion: {zone_name} ({site.name or site.id})",
            severity=self.severity,
            site_id=site_id,
            zone_id=zone,
            camera_id=video["camera_id"],
            lat=site.lat,
            lon=site.lon,
            first_seen=min(sensor["ts"], video["ts"]),
            last_seen=max(sensor["ts"], video["ts"]),
            evidence=[
                Evidence(source="sensor", event_id=sensor["event_id"], ts=sensor["ts"],
                         sensor_id=sensor["sensor_id"]),
                Evidence(source="video", event_id=video["event_id"], ts=video["ts"],
                         camera_id=video["camera_id"],
                         snapshot_ref=f"frames.raw/{video['camera_id']}/{video['seq']}"),
            ],
            created_at=time.time(),
        )
