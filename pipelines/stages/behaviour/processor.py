"""The ``behaviour`` stage's work on one ``tracks`` message, outside the Faust agent.

:meth:`BehaviourStage.process` parses the message, runs the camera's behaviours
(:class:`~pipelines.stages.behaviour.engine.BehaviourRegistry`, state in the worker's
``behaviour-state`` table) and counts line crossings; :meth:`BehaviourStage.snapshots`
keeps the decisive frame of each event from the frame cache as its evidence snapshot
(``snapshot_ref`` = the event id; best effort: a Redis failure is counted and the event
goes out without one); :meth:`BehaviourStage.falls` runs the person-down detector
(``fall.py``, pose on Triton) of cameras that have ``fall:`` configured. The stage
(``stage.py``) sends the events; the runner dead-letters what fails here.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from argus.log import get_logger
from argus.metrics import ALL_CAMERAS, LINE_CROSSINGS, STAGE_ERRORS, camera_label
from argus.stores.frame_cache import FrameCache
from argus.topology import Camera, Topology
from pipelines.stages.behaviour.engine import BehaviourRegistry
from pipelines.stages.behaviour.fall import FallDetector, PoseFn
from schemas.events import VideoEvent
from schemas.tracks import Tracks

log = get_logger(__name__)


class UnknownCamera(ValueError):
    """A ``tracks`` message from a camera the topology does not have."""


class BehaviourStage:
    def __init__(self, topology: Topology, frame_cache: FrameCache | None,
                 store: MutableMapping[str, Any] | None = None, persist_every_s: float = 1.0,
                 per_camera: bool = True, pose: PoseFn | None = None) -> None:
        self.topology = topology
        self.frame_cache = frame_cache
        self.registry = BehaviourRegistry(store, persist_every_s)
        self.per_camera = per_camera
        self.pose = pose
        self._falls: dict[str, FallDetector] = {}

    def parse(self, value: bytes) -> tuple[Tracks, Camera]:
        """A ``tracks`` message and its camera (raises ``ValidationError`` for a bad one,
        :class:`UnknownCamera` for a camera not in the topology)."""
        message = Tracks.model_validate_json(value)
        camera = self.topology.camera(message.camera_id)
        if camera is None:
            raise UnknownCamera(f"camera {message.camera_id!r} not in topology")
        return message, camera

    def process(self, value: bytes) -> list[VideoEvent]:
        """The rule behaviours' events of one ``tracks`` message (see :meth:`parse`)."""
        return self.rules(*self.parse(value))

    def rules(self, message: Tracks, camera: Camera) -> list[VideoEvent]:
        """The events of the camera's rule behaviours (lines, loitering, ...)."""
        result = self.registry.process(message, camera, self.topology.site(camera.site))
        if result is None:
            return []
        for line, direction in result.crossings:
            label = camera_label(camera.id, self.per_camera)
            LINE_CROSSINGS.labels(label, line if label != ALL_CAMERAS else ALL_CAMERAS,
                                  direction).inc()
        return result.events

    async def falls(self, message: Tracks, camera: Camera) -> list[VideoEvent]:
        """The ``fall`` events of a camera with ``fall:`` configured (none otherwise). Pose
        confirmation needs the frame cache and a pose client; without them the detector
        decides on box geometry alone."""
        if camera.fall is None or not camera.fall.enabled:
            return []
        detector = self._falls.get(camera.id)
        if detector is None:
            config = camera.fall
            can_confirm = self.pose is not None and self.frame_cache is not None
            if config.confirm_with_pose and not can_confirm:
                config = config.model_copy(update={"confirm_with_pose": False})
            cache = self.frame_cache
            detector = FallDetector(camera, config, pose=self.pose,
                                    frame_loader=cache.get if cache else None,
                                    snapshot_ref=cache.keep if cache else None)
            self._falls[camera.id] = detector
        return await detector.process(message)

    async def snapshots(self, events: list[VideoEvent]) -> list[VideoEvent]:
        """``events`` with ``snapshot_ref`` set where their frame is still cached."""
        if self.frame_cache is None or not events:
            return events
        out = []
        for event in events:
            if event.snapshot_ref is not None:
                out.append(event)
                continue
            try:
                ref = await self.frame_cache.keep(event.camera_id, event.seq, event.event_id)
            except Exception as exc:
                STAGE_ERRORS.labels("behaviour", "frame_cache").inc()
                log.warning("snapshot not kept", extra={"event": event.event_id,
                                                        "error": repr(exc)})
                ref = None
            out.append(event.model_copy(update={"snapshot_ref": ref}) if ref else event)
        return out
