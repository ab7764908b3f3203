"""``events.plate`` in the correlation engine's terms: every plate read is a ``plate_seen``
video event (rules ``unauthorised_vehicle``, ``vehicle_loitering``) and each hotlist hit a
``plate_match`` (rule ``hotlist_vehicle``).

What the plate event does not say comes from the topology (:func:`plate_place`): which
allow lists apply at the site (a plate on one of them is ``allowed``) and the camera zone
the vehicle stands in, whose site zone ties the read to that zone's gate sensors.

Shared here (not in a stage) because the correlate stage converts what the plate stage
publishes, and stages never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from argus.classes import VEHICLE_CLASSES
from argus.geometry import point_in_polygon
from argus.topology import Topology
from schemas.events import AttributeValue, VideoEvent
from schemas.plates import WHOLE_PHOTO_TRACK_ID, PlateEvent

FRAME_ZONE = "_frame"
"""The camera zone of a read whose vehicle stands in none of the camera's zones."""


@dataclass(frozen=True)
class PlatePlace:
    """What the topology says about where a plate was read."""

    allow_lists: frozenset[str] = frozenset()
    """The allow lists that apply at the site (``sites[].plates.allow_lists``)."""
    zone_id: str = FRAME_ZONE
    """The camera zone the vehicle's foot point is in (the first that watches its class,
    else the first that contains it)."""
    site_zone_id: str | None = None
    """That zone's site zone (None: unmapped, or in no zone)."""


def plate_place(topology: Topology, plate: PlateEvent) -> PlatePlace:
    """The site's allow lists and the vehicle's zone for ``plate`` (defaults for a site or
    camera the topology does not know); for a still read whole, the plate's zone (a zone
    watching any vehicle class first)."""
    site = next((s for s in topology.sites if s.id == plate.site_id), None)
    allow = frozenset(site.plates.allow_lists) if site is not None else frozenset()
    camera = topology.camera(plate.camera_id)
    if camera is None or camera.site != plate.site_id:
        return PlatePlace(allow_lists=allow)
    whole = plate.track_id == WHOLE_PHOTO_TRACK_ID  # a still read whole: the plate is the place
    foot = (plate.plate_box if whole else plate.vehicle_box).bottom_centre
    classes = set(VEHICLE_CLASSES) if whole else {plate.vehicle_class}
    inside = [z for z in camera.zones if point_in_polygon(foot, z.polygon)]
    inside.sort(key=lambda z: classes.isdisjoint(z.classes))  # stable: first watching
    if not inside:
        return PlatePlace(allow_lists=allow)
    return PlatePlace(allow_lists=allow, zone_id=inside[0].id, site_zone_id=inside[0].site_zone)


def plate_to_video_events(plate: PlateEvent, place: PlatePlace | None = None
                          ) -> list[VideoEvent]:
    """One ``plate_seen`` (id: the plate event's), then one ``plate_match`` per hotlist the
    plate is on (id: ``<plate event id>:<list>``).

    ``plate_seen`` attributes: ``plate``, ``format``, ``allowed`` (on one of the site's
    allow lists; then ``allow_list`` names it), ``allow_lists`` (how many apply at the site:
    0 means the site checks none), ``hotlisted``, ``colour``, ``track_id``, ``reads`` and
    ``direction_deg`` when the vehicle moved.

    >>> from schemas.detections import Box
    >>> box = Box(x1=0.1, y1=0.3, x2=0.3, y2=0.6)
    >>> plate = PlateEvent(event_id="p1", camera_id="gate", site_id="depot", ts=1.0, seq=4,
    ...     track_id=7, text="AB12CDE", format_id="uk", confidence=0.8,
    ...     confidences=[0.8] * 7, reads=3, fixes=0, vehicle_class="car", colour="blue",
    ...     speed=0.0, vehicle_box=box, plate_box=box, hits=[
    ...         {"list_id": "stolen", "list_kind": "hotlist", "entry_id": "e1", "distance": 1},
    ...         {"list_id": "staff", "list_kind": "allow", "entry_id": "e2", "distance": 0}])
    >>> place = PlatePlace(allow_lists=frozenset({"staff"}), zone_id="lane", site_zone_id="gate")
    >>> events = plate_to_video_events(plate, place)
    >>> [(e.kind, e.event_id, e.zone_id, e.site_zone_id) for e in events]
    [('plate_seen', 'p1', 'lane', 'gate'), ('plate_match', 'p1:stolen', 'lane', 'gate')]
    >>> a = events[0].attributes
    >>> a["plate"], a["allowed"], a["allow_list"], a["allow_lists"], a["hotlisted"]
    ('AB12CDE', True, 'staff', 1, True)
    >>> events[1].attributes["distance"]
    1
    """
    place = place or PlatePlace()
    allowed = sorted(h.list_id for h in plate.hits
                     if h.list_kind == "allow" and h.list_id in place.allow_lists)
    hotlists = [h for h in plate.hits if h.list_kind == "hotlist"]
    seen: dict[str, AttributeValue] = {
        "plate": plate.text, "format": plate.format_id, "allowed": bool(allowed),
        "allow_lists": len(place.allow_lists), "hotlisted": bool(hotlists),
        "colour": plate.colour, "track_id": plate.track_id, "reads": plate.reads}
    if allowed:
        seen["allow_list"] = allowed[0]
    if plate.direction_deg is not None:
        seen["direction_deg"] = round(plate.direction_deg, 1)
    events = [_video_event(plate, place, plate.event_id, "plate_seen", seen)]
    for hit in hotlists:
        events.append(_video_event(
            plate, place, f"{plate.event_id}:{hit.list_id}", "plate_match",
            {"plate": plate.text, "list": hit.list_id, "list_kind": hit.list_kind,
             "entry_id": hit.entry_id, "distance": hit.distance, "colour": plate.colour,
             "track_id": plate.track_id, "reads": plate.reads}))
    return events


def _video_event(plate: PlateEvent, place: PlatePlace, event_id: str, kind: str,
                 attributes: dict[str, AttributeValue]) -> VideoEvent:
    return VideoEvent.model_validate({
        "event_id": event_id, "kind": kind, "camera_id": plate.camera_id,
        "site_id": plate.site_id, "zone_id": place.zone_id, "site_zone_id": place.site_zone_id,
        "ts": plate.ts, "seq": plate.seq, "class_name": plate.vehicle_class,
        "score": plate.confidence, "box": plate.vehicle_box, "count": 1,
        "attributes": attributes,
        "track_ids": [] if plate.track_id == WHOLE_PHOTO_TRACK_ID else [plate.track_id],
        "snapshot_ref": plate.snapshot_ref})

