"""Snapshots served by the alert API on the real Redis and Triton: the frame a watchlist
match kept is served with every other face pixelated and the matched face untouched;
``?blur=none`` is for operators only; every view is audited."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from argus.inference.faces import (
    DetectedFace,
    TritonFaces,
    keep_key,
    keep_match_snapshots,
    pixel_box,
    snapshot_ref,
)
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache, SnapshotKeyError, snapshot_key
from schemas.detections import Box
from schemas.faces import FaceEvent
from services.alert_api.app import create_app
from services.alert_api.config import ApiConfig
from services.alert_api.snapshots import AUDIT

pytestmark = pytest.mark.integration

READ = {"X-API-Key": secrets.token_urlsafe(24)}
OPERATOR = {"X-API-Key": secrets.token_urlsafe(24)}
TTL_S = 600


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[TestClient]:
    config = ApiConfig(api_keys=f"wall:{READ['X-API-Key']}:read,"
                                f"ops-anna:{OPERATOR['X-API-Key']}:operator")
    with TestClient(create_app(stack, config)) as client:
        yield client


def match_event(camera: str, face: DetectedFace) -> FaceEvent:
    x1, y1, x2, y2 = face.box
    return FaceEvent(event_id=f"face-{camera}", camera_id=camera, site_id="site-x", ts=1.0,
                     seq=7, track_id=3, list_id="wanted", category="wanted", person_id="p1",
                     person_ref="CASE-1", similarity=0.9, threshold=0.79, quality=face.quality,
                     face_box=Box(x1=x1, y1=y1, x2=x2, y2=y2),
                     snapshot_ref=snapshot_ref(camera, 7))


def keep(stack: Settings, jpeg: bytes, events: list[FaceEvent], ref: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            cache = FrameCache(client, 20.0, TTL_S)
            if events:
                assert await keep_match_snapshots(cache, jpeg, events) == 1
            else:
                await cache.store(ref, jpeg)
        finally:
            await client.aclose()

    asyncio.run(run())


def faces_of(stack: Settings, jpeg: bytes) -> list[DetectedFace]:
    async def run() -> list[DetectedFace]:
        client = TritonFaces(stack.triton_grpc_url)
        try:
            return (await client.infer(jpeg))[0]
        finally:
            await client.close()

    return asyncio.run(run())


def region(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x1, y1, x2, y2 = pixel_box(box, image.shape[1], image.shape[0])
    return image[y1:y2, x1:x2].astype(np.float32)


def detail_kept(served: np.ndarray, original: np.ndarray) -> float:
    """Correlation of the fine detail (Laplacian of the grey image) of two patches: about 1
    when the detail survived, about 0 when it was pixelated away."""
    a, b = (cv2.Laplacian(cv2.cvtColor(p.astype(np.uint8), cv2.COLOR_BGR2GRAY), cv2.CV_64F)
            for p in (served, original))
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image)


def test_matched_face_kept_every_other_face_pixelated(api: TestClient, stack: Settings) -> None:
    jpeg = (stack.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    faces = faces_of(stack, jpeg)
    assert len(faces) == 2
    matched, other = faces
    camera = f"cam-snap-{uuid.uuid4().hex[:6]}"
    ref = snapshot_ref(camera, 7)
    keep(stack, jpeg, [match_event(camera, matched)], ref)
    db = redis.Redis.from_url(stack.redis_url)
    assert 0 < db.ttl(snapshot_key(ref)) <= TTL_S and 0 < db.ttl(keep_key(ref)) <= TTL_S

    response = api.get(f"/v1/snapshots/{ref}", headers=READ)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-argus-faces-blurred"] == "1"
    assert response.headers["cache-control"] == "no-store"
    original, served = decode(jpeg), decode(response.content)
    assert served.shape == original.shape
    kept_diff = float(np.abs(region(served, matched.box) - region(original, matched.box)).mean())
    hidden_diff = float(np.abs(region(served, other.box) - region(original, other.box)).mean())
    assert kept_diff < 2.0, kept_diff  # only JPEG re-encoding (measured 0.85)
    assert hidden_diff > 10.0, hidden_diff  # measured 20.5; and the detail is gone:
    assert detail_kept(region(served, matched.box), region(original, matched.box)) > 0.8  # 0.98
    assert detail_kept(region(served, other.box), region(original, other.box)) < 0.2  # 0.001

    # the faces model finds only the matched face in the served frame
    (visible,) = faces_of(stack, response.content)
    assert visible.box == pytest.approx(matched.box, abs=0.02)

    assert api.get(f"/v1/snapshots/{ref}", params={"blur": "none"},
                   headers=READ).status_code == 403
    raw = api.get(f"/v1/snapshots/{ref}", params={"blur": "none"}, headers=OPERATOR)
    assert raw.status_code == 200 and raw.content == jpeg
    assert raw.headers["x-argus-faces-blurred"] == "0"
    assert api.get(f"/v1/snapshots/{ref}", params={"blur": "some"},
                   headers=OPERATOR).status_code == 422
    assert api.get(f"/v1/snapshots/{ref}").status_code == 401

    text = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    entries = [{str(k): str(v) for k, v in (fields or {}).items()}
               for _, fields in text.xrange(AUDIT) or []]
    views = [v for v in entries if v.get("ref") == ref]
    assert [(v["actor"], v["action"], v["blur"], v["faces_blurred"]) for v in views] == [
        ("wall", "snapshot.view", "faces", "1"), ("ops-anna", "snapshot.view", "none", "0")]


def test_without_a_match_every_face_is_pixelated(api: TestClient, stack: Settings) -> None:
    jpeg = (stack.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    ref = snapshot_ref(f"cam-snap-{uuid.uuid4().hex[:6]}", 9)
    keep(stack, jpeg, [], ref)  # kept by another stage: no matched face
    response = api.get(f"/v1/snapshots/{ref}", headers=READ)
    assert response.status_code == 200 and response.headers["x-argus-faces-blurred"] == "2"
    assert api.get("/v1/snapshots/frames.raw/cam-none/1", headers=READ).status_code == 404


def test_sealed_snapshots_are_not_jpeg_at_rest_and_served_with_the_key(stack: Settings) -> None:
    """With ``ARGUS_EVIDENCE_KEY`` the worker seals what it keeps: Redis holds no JPEG, the
    API with the key serves the frame, an API with another key answers 503, not the data."""
    key = base64.b64encode(os.urandom(32)).decode()
    sealed_stack = stack.model_copy(update={"evidence_key": key})
    jpeg = (stack.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    camera = f"cam-seal-{uuid.uuid4().hex[:6]}"
    ref = snapshot_ref(camera, 3)

    async def keep_sealed() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            cache = FrameCache.from_settings(client, sealed_stack)
            assert await cache.put_many([(camera, 3, jpeg)])
            assert await cache.keep(camera, 3, ref) == ref
            assert await cache.snapshot(ref) == jpeg
            with pytest.raises(SnapshotKeyError):  # a reader without the key
                await FrameCache(client, 20.0, TTL_S).snapshot(ref)
        finally:
            await client.aclose()

    asyncio.run(keep_sealed())
    stored = redis.Redis.from_url(stack.redis_url).get(snapshot_key(ref))
    assert isinstance(stored, bytes)
    assert not stored.startswith(b"\xff\xd8") and jpeg not in stored
    config = ApiConfig(api_keys=f"ops:{OPERATOR['X-API-Key']}:operator")
    with TestClient(create_app(sealed_stack, config)) as client:
        served = client.get(f"/v1/snapshots/{ref}", params={"blur": "none"}, headers=OPERATOR)
        assert served.status_code == 200 and served.content == jpeg
    other_key = base64.b64encode(os.urandom(32)).decode()
    with TestClient(create_app(stack.model_copy(update={"evidence_key": other_key}),
                               config)) as client:
        refused = client.get(f"/v1/snapshots/{ref}", params={"blur": "none"}, headers=OPERATOR)
        assert refused.status_code == 503 and "ARGUS_EVIDENCE_KEY" in refused.text
