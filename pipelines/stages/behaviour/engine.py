"""All behaviours of one camera, their state, and the registry of every camera's.

:class:`CameraBehaviours` builds one detector per configured line and zone behaviour of
a camera and runs them on each ``tracks`` message. Its state is a JSON-safe dict
(:meth:`~CameraBehaviours.to_dict`) that :class:`BehaviourRegistry` writes to a mapping —
the worker's ``behaviour-state`` Faust table, co-partitioned with ``tracks`` (keyed by
camera) — at most once per ``persist_every_s`` of capture time, and restores from it when
another worker wrote it last (as the tracker does, docs/adr/0004-tracker-state.md).

A message not newer than the last one applied (capture time) is a redelivery: it is
skipped, so replays neither double dwell times nor repeat events.
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from argus.log import get_logger
from argus.topology import Camera, Site
from pipelines.stages.behaviour.abandoned import AbandonedObject
from pipelines.stages.behaviour.base import FrameView
from pipelines.stages.behaviour.crowd import Crowd
from pipelines.stages.behaviour.lines import LineCrossing
from pipelines.stages.behaviour.loitering import Loitering
from pipelines.stages.behaviour.running import Running
from pipelines.stages.behaviour.vehicle import VehicleStopped
from pipelines.stages.behaviour.wrong_way import WrongWay
from schemas.events import VideoEvent
from schemas.tracks import Tracks

log = get_logger(__name__)
STATE_VERSION = 1


class Detector(Protocol):
    """One configured behaviour of one zone or line."""

    kind: str

    @property
    def key(self) -> str: ...

    def update(self, frame: FrameView) -> list[VideoEvent]: ...

    def to_dict(self) -> dict[str, Any]: ...

    def load(self, data: dict[str, Any]) -> None: ...


def detectors_of(camera: Camera) -> list[Detector]:
    """One detector per enabled line and zone behaviour of ``camera``."""
    out: list[Detector] = [LineCrossing(line) for line in camera.lines if line.enabled]
    for zone in camera.zones:
        cfg = zone.behaviours
        if cfg is None:
            continue
        if cfg.loitering is not None and cfg.loitering.enabled:
            out.append(Loitering(zone, cfg.loitering))
        if cfg.running is not None and cfg.running.enabled:
            out.append(Running(zone, cfg.running))
        if cfg.crowd is not None and cfg.crowd.enabled:
            out.append(Crowd(zone, cfg.crowd))
        if cfg.wrong_way is not None and cfg.wrong_way.enabled:
            out.append(WrongWay(zone, cfg.wrong_way))
        if cfg.abandoned_object is not None and cfg.abandoned_object.enabled:
            out.append(AbandonedObject(zone, cfg.abandoned_object))
        if cfg.vehicle_stopped is not None and cfg.vehicle_stopped.enabled:
            out.append(VehicleStopped(zone, cfg.vehicle_stopped))
    return out


@dataclass
class BehaviourResult:
    """What one frame produced: events, and every line crossing as (line id, direction)
    for the per-direction counter (crossings outside a line's schedule included)."""

    events: list[VideoEvent] = field(default_factory=list)
    crossings: list[tuple[str, str]] = field(default_factory=list)


class CameraBehaviours:
    """The behaviours of one camera and their state."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.detectors = detectors_of(camera)
        self.last_ts: float | None = None
        self.last_seq: int | None = None

    def process(self, message: Tracks, site: Site) -> BehaviourResult | None:
        """Run every behaviour on one frame; None when the frame is a redelivery."""
        if self.last_ts is not None and message.capture_ts <= self.last_ts:
            return None
        self.last_ts, self.last_seq = message.capture_ts, message.seq
        frame = FrameView(message, self.camera, site)
        result = BehaviourResult()
        for detector in self.detectors:
            result.events.extend(detector.update(frame))
            if isinstance(detector, LineCrossing):
                result.crossings.extend((detector.line.id, d) for d in detector.crossings)
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "last_ts": self.last_ts, "last_seq": self.last_seq,
                "detectors": {d.key: d.to_dict() for d in self.detectors}}

    @classmethod
    def from_dict(cls, camera: Camera, data: dict[str, Any]) -> CameraBehaviours:
        """Restore; state of behaviours no longer configured is dropped, new ones start
        empty. Raises ``ValueError`` for a state of another version."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"behaviour state version {data.get('version')!r} is not "
                             f"{STATE_VERSION}")
        out = cls(camera)
        out.last_ts, out.last_seq = data.get("last_ts"), data.get("last_seq")
        stored = data.get("detectors") or {}
        for detector in out.detectors:
            if detector.key in stored:
                detector.load(stored[detector.key])
        return out


class BehaviourRegistry:
    """Every camera's :class:`CameraBehaviours`, persisted to ``store`` (camera id →
    ``{"revision", "state"}``)."""

    def __init__(self, store: MutableMapping[str, Any] | None = None,
                 persist_every_s: float = 1.0) -> None:
        self.store: MutableMapping[str, Any] = {} if store is None else store
        self.persist_every_s = persist_every_s
        self._cameras: dict[str, CameraBehaviours] = {}
        self._revisions: dict[str, str] = {}
        self._persisted_ts: dict[str, float] = {}
        self.restored = 0
        self.skipped = 0

    def behaviours(self, camera: Camera) -> CameraBehaviours:
        """This camera's behaviours: the local ones unless the store holds a state this
        process did not write (another worker owned the camera meanwhile)."""
        stored = self.store.get(camera.id)
        local = self._cameras.get(camera.id)
        if stored is not None and (local is None
                                   or stored.get("revision") != self._revisions.get(camera.id)):
            try:
                local = CameraBehaviours.from_dict(camera, stored["state"])
                self.restored += 1
                log.info("behaviour state restored", extra={"camera": camera.id,
                                                            "last_seq": local.last_seq})
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("stored behaviour state unusable; starting afresh",
                            extra={"camera": camera.id, "error": repr(exc)})
                local = None
            self._revisions[camera.id] = str(stored.get("revision"))
        if local is None:
            local = CameraBehaviours(camera)
        self._cameras[camera.id] = local
        return local

    def process(self, message: Tracks, camera: Camera, site: Site) -> BehaviourResult | None:
        """Run the camera's behaviours on one frame; None for a redelivered frame."""
        behaviours = self.behaviours(camera)
        if not behaviours.detectors:
            return BehaviourResult()
        result = behaviours.process(message, site)
        if result is None:
            self.skipped += 1
            return None
        self._persist(camera.id, behaviours, message.capture_ts)
        return result

    def _persist(self, camera_id: str, behaviours: CameraBehaviours, ts: float) -> None:
        last = self._persisted_ts.get(camera_id)
        if last is not None and 0.0 <= ts - last < self.persist_every_s:
            return
        revision = uuid.uuid4().hex[:16]
        self.store[camera_id] = {"revision": revision, "state": behaviours.to_dict()}
        self._revisions[camera_id] = revision
        self._persisted_ts[camera_id] = ts
