"""``events.plate`` in the correlation engine's terms: a hotlist hit is a ``plate_match``
video event (the rule ``hotlist_vehicle`` alerts on it).

Shared here (not in a stage) because the correlate stage converts what the plate stage
publishes, and stages never import each other.
"""

from __future__ import annotations

from schemas.events import VideoEvent
from schemas.plates import PlateEvent


def plate_to_video_events(plate: PlateEvent) -> list[VideoEvent]:
    """One ``plate_match`` per hotlist the plate is on (allow-list hits raise nothing).

    >>> from schemas.detections import Box
    >>> box = Box(x1=0.1, y1=0.3, x2=0.3, y2=0.6)
    >>> event = PlateEvent(event_id="p1", camera_id="gate", site_id="depot", ts=1.0, seq=4,
    ...     track_id=7, text="AB12CDE", format_id="uk", confidence=0.8,
    ...     confidences=[0.8] * 7, reads=3, fixes=0, vehicle_class="car", colour="blue",
    ...     speed=0.0, vehicle_box=box, plate_box=box, hits=[
    ...         {"list_id": "stolen", "list_kind": "hotlist", "entry_id": "e1", "distance": 1},
    ...         {"list_id": "staff", "list_kind": "allow", "entry_id": "e2", "distance": 0}])
    >>> [(e.kind, e.event_id, e.attributes["plate"], e.attributes["distance"])
    ...  for e in plate_to_video_events(event)]
    [('plate_match', 'p1:stolen', 'AB12CDE', 1)]
    """
    events = []
    for hit in plate.hits:
        if hit.list_kind != "hotlist":
            continue
        events.append(VideoEvent(
            event_id=f"{plate.event_id}:{hit.list_id}", kind="plate_match",
            camera_id=plate.camera_id, site_id=plate.site_id, zone_id="_frame",
            site_zone_id=None, ts=plate.ts, seq=plate.seq, class_name=plate.vehicle_class,
            score=plate.confidence, box=plate.vehicle_box, count=1,
            attributes={"plate": plate.text, "list": hit.list_id, "list_kind": hit.list_kind,
                        "entry_id": hit.entry_id, "distance": hit.distance,
                        "colour": plate.colour, "track_id": plate.track_id,
                        "reads": plate.reads},
            track_ids=[plate.track_id], snapshot_ref=plate.snapshot_ref))
    return events
