"""Compact, JSON-safe views of the input events, as the engine stores them in its state.

>>> from schemas.sensors import SensorEvent
>>> e = SensorEvent(event_id="t1", sensor_id="t", site_id="s", zone_id="z", type="temperature",
...                 value=21.5, ts=10.0)
>>> compact(e)["value"], compact(e)["zone"]
(21.5, 'z')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines.stages.correlate.rules.matchers import rise_key
from schemas.alerts import Evidence
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.sensors import SensorEvent

Compact = dict[str, Any]


def compact(event: VideoEvent | SensorEvent) -> Compact:
    """The fields rules match on. ``zone`` is the *site* zone (``None`` for a camera zone
    not mapped to one); states are lower-cased."""
    if isinstance(event, SensorEvent):
        return {"id": event.event_id, "src": "sensor", "site": event.site_id, "ts": event.ts,
                "zone": event.zone_id, "sensor": event.sensor_id, "type": event.type.value,
                "state": (event.state or "").lower() or None, "value": event.value,
                "battery": event.battery}
    return {"id": event.event_id, "src": "video", "site": event.site_id, "ts": event.ts,
            "zone": event.site_zone_id, "czone": event.zone_id, "camera": event.camera_id,
            "kind": event.kind, "class": event.class_name, "count": event.count,
            "score": event.score, "seq": event.seq, "attrs": dict(event.attributes),
            "snap": event.snapshot_ref, "box": [event.box.x1, event.box.y1, event.box.x2,
                                                event.box.y2]}


def alert_zone(ev: Compact) -> str:
    """The zone an alert anchored on ``ev`` is about: its site zone, else its camera zone."""
    return str(ev.get("zone") or ev.get("czone") or "-")


def update_rises(series: dict[str, list[list[float]]], ev: Compact, windows: Iterable[float]
                 ) -> None:
    """Record the sensor value and set ``ev["rise"][window]`` = value - min over the window.

    Each series is a monotonic queue of ``[ts, value]`` with increasing values (the front
    is the window's minimum), so it stays short however often the sensor reports.

    >>> series: dict[str, list[list[float]]] = {}
    >>> for ts, v in [(0, 20.0), (10, 19.0), (20, 23.5)]:
    ...     ev = {"sensor": "t", "ts": ts, "value": v}
    ...     update_rises(series, ev, [60])
    >>> ev["rise"], series["t|60"]
    ({'60': 4.5}, [[10, 19.0], [20, 23.5]])
    """
    value = ev.get("value")
    if ev.get("sensor") is None or not isinstance(value, int | float):
        return
    rises: dict[str, float] = {}
    for window in windows:
        key = rise_key(window)
        queue = series.setdefault(f"{ev['sensor']}|{key}", [])
        while queue and queue[-1][1] >= value:
            queue.pop()
        queue.append([ev["ts"], value])
        while queue and queue[0][0] < ev["ts"] - window:
            queue.pop(0)
        rises[key] = round(value - queue[0][1], 6)
    if rises:
        ev["rise"] = rises


def lookup(ev: Compact, path: str) -> Any:
    """A field of a compact event by dotted path (``attrs.subject``); ``None`` if missing.

    >>> lookup({"attrs": {"plate": "AB12"}, "camera": "c1"}, "attrs.plate")
    'AB12'
    """
    value: Any = ev
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def box_of(ev: Compact) -> Box | None:
    """The detection box of a compact video event (``None`` in state kept before it had one).

    >>> box_of({"box": [0.1, 0.2, 0.3, 0.4]}).y2, box_of({})
    (0.4, None)
    """
    corners = ev.get("box")
    return None if not corners else Box(x1=corners[0], y1=corners[1], x2=corners[2],
                                        y2=corners[3])


def evidence_of(ev: Compact) -> dict[str, Any]:
    """The alert evidence for one event (as a JSON-safe dict of :class:`Evidence`)."""
    if ev["src"] == "sensor":
        item = Evidence(source="sensor", event_id=ev["id"], ts=ev["ts"], sensor_id=ev["sensor"])
    else:
        item = Evidence(source="video", event_id=ev["id"], ts=ev["ts"], camera_id=ev["camera"],
                        snapshot_ref=ev.get("snap") or f"frames.raw/{ev['camera']}/{ev['seq']}",
                        zone_id=ev.get("czone"), box=box_of(ev))
    return item.model_dump(mode="json", exclude_none=True)


def template_view(ev: Compact) -> dict[str, Any]:
    """What a title template sees of an event (``{door[sensor]}``, ``{person[attrs][plate]}``)."""
    view = {k: v for k, v in ev.items() if k not in ("rise", "src")}
    view["source"] = ev["src"]
    return view
