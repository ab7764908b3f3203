"""Abandoned object: a bag (backpack, handbag, suitcase) that stays still for ``still_s``
seconds after the person who came with it has left.

The *owner* is the nearest confirmed person whose foot point is within ``owner_radius`` of
their own box heights from the bag's when the bag is first seen; a bag first seen with no
one near is unattended from the start. The owner has *left* while they are not confirmed
within ``leave_radius`` box heights of the bag (gone, lost or walked away); coming back
stops the clock. The clock runs from the later of "still since" and "owner left since";
one event per still period (moving the bag re-arms it).
"""

from __future__ import annotations

from typing import Any

from argus.behaviours import AbandonedObject as AbandonedConfig
from argus.geometry import point_in_polygon
from argus.topology import CameraZone
from pipelines.stages.behaviour.base import FrameView, centre, dump, foot, forget, load, make_event
from pipelines.stages.behaviour.stillness import Still
from schemas.events import AttributeValue, VideoEvent
from schemas.tracks import Track


class AbandonedObject:
    kind = "abandoned_object"

    def __init__(self, zone: CameraZone, config: AbandonedConfig) -> None:
        self.zone = zone
        self.config = config
        self.bags: dict[int, Still] = {}

    @property
    def key(self) -> str:
        return f"abandoned_object:{self.zone.id}"

    def _gap(self, frame: FrameView, person: Track, bag: Track) -> float:
        """Foot-to-foot distance in the person's box heights."""
        return frame.distance_px(foot(person.box), foot(bag.box)) / frame.height_px(person.box)

    def _owner(self, frame: FrameView, bag: Track, people: list[Track]) -> int | None:
        near = [(self._gap(frame, p, bag), p.track_id) for p in people]
        near = [item for item in near if item[0] <= self.config.owner_radius]
        return min(near)[1] if near else None

    def update(self, frame: FrameView) -> list[VideoEvent]:
        cfg = self.config
        width, height = frame.message.width, frame.message.height
        people = {p.track_id: p for p in frame.tracks(["person"])}
        events = []
        for bag in frame.tracks(cfg.classes):
            if not point_in_polygon(foot(bag.box), self.zone.polygon):
                continue
            point = centre(bag.box)
            st = self.bags.get(bag.track_id)
            if st is None:
                owner = self._owner(frame, bag, list(people.values()))
                st = Still(anchor_x=point[0], anchor_y=point[1], anchor_ts=frame.ts,
                           anchor_seq=frame.seq, last_ts=frame.ts, owner=owner,
                           owner_left_ts=frame.ts if owner is None else None)
                self.bags[bag.track_id] = st
            st.last_ts = frame.ts
            if st.moved_to(point, frame.height_px(bag.box), width, height, cfg.tolerance):
                st.settle(point, frame.ts, frame.seq)
            st.score_sum += bag.score
            st.frames += 1
            with_owner = people.get(st.owner) if st.owner is not None else None
            if with_owner is not None and self._gap(frame, with_owner, bag) <= cfg.leave_radius:
                st.owner_left_ts = None
            elif st.owner_left_ts is None:
                st.owner_left_ts = frame.ts
            if st.owner_left_ts is None or st.fired:
                continue
            since = max(st.anchor_ts, st.owner_left_ts)
            if frame.ts - since < cfg.still_s or not frame.allows(cfg.schedule):
                continue
            st.fired = True
            ids = [bag.track_id] + ([st.owner] if st.owner is not None else [])
            attributes: dict[str, AttributeValue] = {
                "still_s": round(frame.ts - since, 1), "track_id": bag.track_id}
            if st.owner is not None:
                attributes["owner_track_id"] = st.owner
            events.append(make_event(
                frame, "abandoned_object", self.zone.id, self.zone.site_zone, track_ids=ids,
                start_seq=st.anchor_seq, start_ts=since, class_name=bag.class_name,
                score=st.score_sum / st.frames, box=bag.box, attributes=attributes))
        forget(self.bags, frame.ts, cfg.grace_s)
        return events

    def to_dict(self) -> dict[str, Any]:
        return {"bags": dump(self.bags)}

    def load(self, data: dict[str, Any]) -> None:
        self.bags = load(data.get("bags"), Still)
