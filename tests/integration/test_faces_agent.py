"""The faces stage's agent (what ``pipelines/app.py`` runs) on the real Redis and Triton,
in both modes: a frame or a person track showing an enrolled person becomes one event with
its face crop, its snapshot and the matched face box kept; someone else's becomes nothing;
a track whose frame left the frame cache is counted, not guessed."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import redis

from argus.inference.detector import TritonDetector
from argus.inference.faces import TritonFaces, keep_key
from argus.metrics import FACES
from argus.settings import Settings
from argus.stores.frame_cache import snapshot_key
from argus.topology import load_topology
from argus.watchlist.store import KEY_ENV, Person, WatchlistStore
from pipelines.stages.faces.agent import FaceAgent, FacesSettings
from schemas.detections import Box
from schemas.faces import FaceEvent
from schemas.frames import FrameHeaders
from schemas.tracks import Track, Tracks, Velocity
from tests.conftest import TEST_TOPOLOGY
from tools.face_clip import letterbox

pytestmark = pytest.mark.integration

KEY = os.urandom(32)
CAMERA = "cam-faces"


def photo(settings: Settings, name: str) -> bytes:
    image = cv2.imread(str(settings.shared / "data" / "faces" / "deepface" / name))
    assert image is not None
    ok, encoded = cv2.imencode(".jpg", letterbox(np.asarray(image, np.uint8)))
    assert ok
    return bytes(encoded.tobytes())


@pytest.fixture(scope="module")
def enrolled(stack: Settings) -> Iterator[Person]:
    """G00 enrolled (from img1, img2) under the workers' prefix, with this module's key."""
    async def gallery() -> np.ndarray:
        client = TritonFaces(stack.triton_grpc_url)
        try:
            return np.stack([(await client.infer(photo(stack, n)))[0][0].embedding
                             for n in ("img1.jpg", "img2.jpg")])
        finally:
            await client.close()

    store = WatchlistStore(redis.Redis.from_url(stack.redis_url), KEY)
    person = store.enroll(f"agent-{uuid.uuid4().hex[:6]}", "CASE-AGENT", "G00",
                          asyncio.run(gallery()), "agent-test")
    yield person
    store.remove(person.person_id, "agent-test")


def agent(stack: Settings, mode: str, monkeypatch: pytest.MonkeyPatch) -> FaceAgent:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    settings = Settings(redis_url=stack.redis_url, topology=TEST_TOPOLOGY)
    config = FacesSettings(mode=mode, sample_interval_s=0.0, track_interval_s=0.0)
    return FaceAgent(settings, load_topology(TEST_TOPOLOGY, stack.shared), config=config)


def check_kept(stack: Settings, event: FaceEvent) -> None:
    db = redis.Redis.from_url(stack.redis_url)
    assert event.crop_ref is not None and db.ttl(event.crop_ref) > 0
    assert event.snapshot_ref == f"frames.raw/{CAMERA}/{event.seq}"
    assert db.ttl(snapshot_key(event.snapshot_ref)) > 0
    assert db.scard(keep_key(event.snapshot_ref)) == 1


def test_frames_mode(stack: Settings, enrolled: Person, monkeypatch: pytest.MonkeyPatch
                     ) -> None:
    faces = agent(stack, "frames", monkeypatch)
    seq = uuid.uuid4().int % 10**9  # this test's own snapshot keys

    async def run() -> list[list[FaceEvent]]:
        found = []
        try:
            for offset, name in enumerate(("img5.jpg", "img8.jpg")):  # G00, someone else
                meta = FrameHeaders(camera_id=CAMERA, seq=seq + offset, capture_ts=time.time(),
                                    width=640, height=480)
                found.append(await faces.handle(CAMERA.encode(), photo(stack, name),
                                                meta.to_headers()))
        finally:
            await faces.aclose()
        return found

    try:
        (event,), other = asyncio.run(run())
    finally:
        faces.stop()
    assert other == []
    assert (event.person_id, event.track_id, event.seq) == (enrolled.person_id, None, seq)
    check_kept(stack, event)


def test_tracks_mode(stack: Settings, enrolled: Person, monkeypatch: pytest.MonkeyPatch
                     ) -> None:
    faces = agent(stack, "tracks", monkeypatch)
    seq = uuid.uuid4().int % 10**9
    jpeg = photo(stack, "img5.jpg")

    async def run() -> tuple[list[FaceEvent], list[FaceEvent]]:
        detector = TritonDetector(stack.triton_grpc_url)
        try:
            boxes, scores, classes, _ = await detector.infer(jpeg)
        finally:
            await detector.close()
        (x1, y1, x2, y2), score = next((b, s) for b, s, c in zip(boxes, scores, classes,
                                                                   strict=True) if c == 0)
        box = Box(x1=max(0.0, float(x1)), y1=max(0.0, float(y1)), x2=min(1.0, float(x2)),
                  y2=min(1.0, float(y2)))

        def tracks(offset: int) -> bytes:
            now = time.time()
            track = Track(track_id=7, class_id=0, class_name="person", box=box,
                          velocity=Velocity(vx=0, vy=0), age=3, state="confirmed",
                          first_seen=now - 1, last_seen=now, score=float(score))
            return Tracks(camera_id=CAMERA, seq=seq + offset, capture_ts=now, width=640,
                          height=480, tracks=[track]).to_bytes()

        try:
            await faces.cache.put_many([(CAMERA, seq, jpeg)])
            first = await faces.handle_tracks(tracks(0))
            return first, await faces.handle_tracks(tracks(1))  # seq + 1 was never cached
        finally:
            await faces.aclose()

    no_frame = FACES.labels("no_frame")._value.get()
    try:
        (event,), later = asyncio.run(run())
    finally:
        faces.stop()
    assert (event.person_id, event.track_id, event.seq) == (enrolled.person_id, 7, seq)
    assert event.similarity >= event.threshold
    check_kept(stack, event)
    assert later == [] and FACES.labels("no_frame")._value.get() == no_frame + 1
