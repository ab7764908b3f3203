"""The faces stage at the edge: ``frames.raw`` (sampled) → Triton ``faces`` → watchlist
match → ``events.face`` (matches only) and the matched face crop in Redis (with a TTL).

Runs only when a watchlist key is configured (``ARGUS_FACE_KEY``): without it the
watchlist cannot be decrypted, so there is nothing to match against. Bad frames are the
detect stage's to dead-letter; this stage skips them. Non-matching faces are counted in
``argus_faces_total`` and forgotten.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import redis
import redis.asyncio as aioredis
from tritonclient.grpc import InferenceServerException

from argus.log import get_logger
from argus.metrics import FACES, STAGE_ERRORS
from argus.settings import Settings
from argus.topology import Topology
from argus.watchlist import KEY_ENV, WatchlistStore, load_key
from pipelines.detect import Rejected, check_frame
from pipelines.faces import (
    FaceStage,
    FrameSampler,
    TritonFaces,
    WatchlistFollower,
    store_match_crops,
)
from schemas.faces import FaceEvent

log = get_logger(__name__)


def faces_enabled() -> bool:
    """The stage runs when the watchlist key is set."""
    return bool(os.environ.get(KEY_ENV, "").strip())


class FaceAgent:
    """Per-worker state of the faces stage: sampler, model client, watchlist index."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self.sampler = FrameSampler(settings.faces_sample_interval_s)
        self.model = TritonFaces(settings.triton_grpc_url)
        self.redis = aioredis.Redis.from_url(settings.redis_url)
        self.follower: WatchlistFollower | None = None
        self.stage: FaceStage | None = None

    def start(self) -> None:
        """Load the watchlist index and follow its changes (a daemon thread, which ends
        with the worker)."""
        store = WatchlistStore(redis.Redis.from_url(self.settings.redis_url), load_key())
        self.follower = WatchlistFollower(store).start()
        self.stage = FaceStage(index=self.follower.index,
                               min_quality=self.settings.faces_min_quality,
                               cooldown_s=self.settings.faces_cooldown_s)

    def stop(self) -> None:
        if self.follower is not None:
            self.follower.stop()

    async def handle(self, key: bytes | None, jpeg: bytes | None, headers: object
                     ) -> list[FaceEvent]:
        """The watchlist matches in one frame (most frames are skipped by the sampler)."""
        if self.stage is None:
            self.start()
        assert self.stage is not None
        try:
            meta = check_frame(key, jpeg, headers, self.topology, self.settings.max_frame_bytes)
        except Rejected:
            return []  # the detect stage dead-letters bad frames
        camera = self.topology.camera(meta.camera_id)
        if camera is None or jpeg is None or not self.sampler.take(meta.camera_id,
                                                                   meta.capture_ts):
            return []
        try:
            faces, _size, _ms = await self.model.infer(jpeg)
        except Rejected:
            return []
        except InferenceServerException as exc:
            STAGE_ERRORS.labels("faces", "triton").inc()
            log.error("faces model call failed; frame skipped", extra={"error": str(exc)})
            return []
        result = self.stage.process(camera.id, camera.site, meta.seq, meta.capture_ts, faces)
        for outcome in ("matched", "unmatched", "low_quality", "suppressed"):
            count = getattr(result, outcome)
            if count:
                FACES.labels(outcome).inc(count)
        if result.events:
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is not None:
                await store_match_crops(self.redis, np.asarray(image, np.uint8), result.events,
                                        self.settings.alert_ttl_s)
        return result.events
