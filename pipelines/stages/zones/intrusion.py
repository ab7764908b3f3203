"""Zone intrusion: an object of the zone's classes standing in an ``intrusion: true`` zone
(``detections`` → ``events.video``)."""

from __future__ import annotations

from argus.geometry import objects_in_zone
from argus.topology import Camera
from schemas.detections import Detections
from schemas.events import VideoEvent


class ZoneIntrusion:
    """Emits a ``zone_intrusion`` event when a zone is occupied, at most once per cool-down
    per (camera, zone) — without tracks, the cool-down keeps one person from being one
    event per frame. State is per camera, so it lives with the camera's partition."""

    def __init__(self, cooldown_s: float = 10.0) -> None:
        self.cooldown_s = cooldown_s
        self._last: dict[tuple[str, str], float] = {}

    def __call__(self, frame: Detections, camera: Camera) -> list[VideoEvent]:
        events = []
        for zone in camera.zones:
            if not zone.intrusion:
                continue
            inside = objects_in_zone(frame.detections, zone)
            if not inside:
                continue
            key = (camera.id, zone.id)
            last = self._last.get(key)
            if last is not None and frame.capture_ts - last < self.cooldown_s:
                continue
            self._last[key] = frame.capture_ts
            best = max(inside, key=lambda d: d.score)
            events.append(VideoEvent(
                event_id=f"{camera.id}:{zone.id}:zone_intrusion:{frame.seq}",
                kind="zone_intrusion",
                camera_id=camera.id,
                site_id=camera.site,
                zone_id=zone.id,
                site_zone_id=zone.site_zone,
                ts=frame.capture_ts,
                seq=frame.seq,
                class_name=best.class_name,
                score=best.score,
                box=best.box,
                count=len(inside),
            ))
        return events
