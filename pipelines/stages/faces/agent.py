"""The faces stage at the edge: person tracks (or sampled frames) → Triton ``faces`` →
watchlist match → ``events.face`` (matches only), with the matched face crop and the frame
as a snapshot in Redis (with TTLs).

Two modes (``ARGUS_FACES_MODE``):

* ``tracks`` (default): consumes ``tracks``; for each confirmed person track, at most once
  per ``ARGUS_FACES_TRACK_INTERVAL_S`` of capture time, fetches the frame's JPEG from the
  frame cache (written by the detect stage) and asks the ``faces`` model about the head
  region of the box only; the best face per track is matched (:mod:`pipelines.stages.faces.tracks`).
* ``frames``: consumes ``frames.raw`` and looks at whole frames, at most one per camera per
  ``ARGUS_FACES_SAMPLE_INTERVAL_S`` — for door or desk cameras whose close-up faces the
  person detector may not box; it costs a full-frame face search per sample.

Runs only when a watchlist key is configured (``ARGUS_FACE_KEY``): without it the watchlist
cannot be decrypted, so there is nothing to match against. Bad frames are the detect
stage's to dead-letter; this stage skips them. Non-matching faces are counted in
``argus_faces_total`` and forgotten.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import redis
import redis.asyncio as aioredis
from pydantic_settings import SettingsConfigDict
from tritonclient.grpc import InferenceServerException

from argus.frames import check_frame
from argus.inference.faces import (
    DetectedFace,
    FaceStage,
    FaceStageResult,
    FrameSampler,
    TritonFaces,
    keep_match_snapshots,
    store_match_crops,
)
from argus.kafka import Rejected
from argus.log import get_logger
from argus.metrics import FACES, STAGE_ERRORS
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache
from argus.topology import Topology
from argus.watchlist.store import KEY_ENV, WatchlistFollower, WatchlistStore, load_key
from pipelines.stage import StageSettings
from pipelines.stages.faces.tracks import TrackFaces, head_region
from schemas.faces import FaceEvent
from schemas.tracks import Tracks

log = get_logger(__name__)

OUTCOMES = ("matched", "unmatched", "low_quality", "suppressed", "no_face", "not_better")


class FacesSettings(StageSettings):
    """``ARGUS_FACES_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_FACES_", frozen=True, extra="ignore")

    mode: Literal["tracks", "frames"] = "tracks"
    """``tracks``: faces on confirmed person tracks (head region of the box, frame from the
    frame cache); ``frames``: whole frames sampled from ``frames.raw`` (docs/faces.md)."""
    track_interval_s: float = 2.0
    """Tracks mode: the faces model looks at each person track at most once per interval."""
    sample_interval_s: float = 1.0
    """Frames mode: at most one frame per camera per interval."""
    min_quality: float = 0.5
    cooldown_s: float = 10.0


def faces_enabled() -> bool:
    """The stage runs when the watchlist key is set."""
    return bool(os.environ.get(KEY_ENV, "").strip())


class FaceAgent:
    """Per-worker state of the faces stage: mode, model client, watchlist index."""

    def __init__(self, settings: Settings, topology: Topology,
                 frame_cache: FrameCache | None = None,
                 config: FacesSettings | None = None) -> None:
        self.settings = settings
        self.config = config or FacesSettings()
        self.topology = topology
        self.mode = self.config.mode
        self.sampler = FrameSampler(self.config.sample_interval_s)
        self.model = TritonFaces(settings.triton_grpc_url)
        self.redis = aioredis.Redis.from_url(settings.redis_url)
        self.cache = frame_cache or FrameCache.from_settings(self.redis, settings)
        self.follower: WatchlistFollower | None = None
        self.key = b""  # the watchlist key, loaded by start(): it also seals the face crops
        self.stage: FaceStage | None = None
        self.tracks: TrackFaces | None = None

    def start(self) -> None:
        """Load the watchlist index and follow its changes (a daemon thread, which ends
        with the worker)."""
        self.key = load_key()
        store = WatchlistStore(redis.Redis.from_url(self.settings.redis_url), self.key)
        self.follower = WatchlistFollower(store).start()
        self.stage = FaceStage(index=self.follower.index,
                               min_quality=self.config.min_quality,
                               cooldown_s=self.config.cooldown_s)
        self.tracks = TrackFaces(index=self.follower.index,
                                 min_quality=self.config.min_quality,
                                 interval_s=self.config.track_interval_s)
        if self.mode == "tracks" and not self.cache.enabled:
            log.warning("faces on tracks needs the frame cache (ARGUS_FRAME_CACHE_S > 0); "
                        "no face will be looked at")
        log.info("faces stage started", extra={"mode": self.mode,
                                               "entries": len(self.follower.index)})

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()

    async def aclose(self) -> None:
        """Close the Triton and Redis clients (on the loop that used them)."""
        await self.model.close()
        await self.redis.aclose()

    async def handle_tracks(self, value: bytes) -> list[FaceEvent]:
        """The watchlist matches on one ``tracks`` message (most tracks are not due).
        Raises ``pydantic.ValidationError`` for a message that is not ``Tracks``."""
        if self.tracks is None:
            await asyncio.to_thread(self.start)  # loading the index must not block the loop
        assert self.tracks is not None
        frame = Tracks.model_validate_json(value)
        camera = self.topology.camera(frame.camera_id)
        if camera is None:
            return []
        due = self.tracks.due(frame)
        if len(self.tracks) > 10_000:
            self.tracks.prune(frame.capture_ts)
        if not due:
            return []
        jpeg = await self.cache.get(frame.camera_id, frame.seq)
        if jpeg is None:
            FACES.labels("no_frame").inc(len(due))
            return []
        found = await self._infer_many(jpeg, [head_region(t.box, frame.width, frame.height)
                                                for t in due])
        if found is None:
            return []
        total = FaceStageResult()
        for track, faces in zip(due, found, strict=True):
            _add(total, self.tracks.consider(frame, camera.site, track, faces))
        return await self._finish(total, jpeg)

    async def handle(self, key: bytes | None, jpeg: bytes | None, headers: object
                     ) -> list[FaceEvent]:
        """Frames mode: the watchlist matches in one frame (most frames are skipped by the
        sampler)."""
        if self.stage is None:
            await asyncio.to_thread(self.start)
        assert self.stage is not None
        try:
            meta = check_frame(key, jpeg, headers, self.topology, self.settings.max_frame_bytes)
        except Rejected:
            return []  # the detect stage dead-letters bad frames
        camera = self.topology.camera(meta.camera_id)
        if camera is None or jpeg is None or not self.sampler.take(meta.camera_id,
                                                                   meta.capture_ts):
            return []
        found = await self._infer_many(jpeg, [None])
        if found is None:
            return []
        result = self.stage.process(camera.id, camera.site, meta.seq, meta.capture_ts, found[0])
        return await self._finish(result, jpeg)

    async def _infer_many(self, jpeg: bytes,
                          boxes: Sequence[tuple[float, float, float, float] | None]
                          ) -> list[list[DetectedFace]] | None:
        """The faces in each region of one frame (None: the frame is skipped)."""
        try:
            results = await asyncio.gather(*(self.model.infer(jpeg, box) for box in boxes))
        except Rejected:
            return None
        except InferenceServerException as exc:
            STAGE_ERRORS.labels("faces", "triton").inc()
            log.error("faces model call failed; frame skipped", extra={"error": str(exc)})
            return None
        return [faces for faces, _size, _ms in results]

    async def _finish(self, result: FaceStageResult, jpeg: bytes) -> list[FaceEvent]:
        """Count the outcomes; keep the crop and the snapshot of each match."""
        for outcome in OUTCOMES:
            count = getattr(result, outcome)
            if count:
                FACES.labels(outcome).inc(count)
        if result.events:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is not None:
                await store_match_crops(self.redis, np.asarray(image, np.uint8), result.events,
                                        self.settings.alert_ttl_s, self.key)
            await keep_match_snapshots(self.cache, jpeg, result.events)
        return result.events


def _add(total: FaceStageResult, one: FaceStageResult) -> None:
    """Add one track's outcome to the frame's."""
    total.events += one.events
    for outcome in OUTCOMES:
        setattr(total, outcome, getattr(total, outcome) + getattr(one, outcome))
