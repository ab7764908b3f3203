"""The demo's watchlist camera set up on the real Redis and Triton (without the fixed-port
demo): the clip is assembled, the demo topology adds the camera and keeps the configured
ones, G00 is enrolled with a key the child processes inherit, the clip's G00 photos match
and nobody else's does, and cleanup really removes the entry."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import cv2
import pytest
import redis

from argus.inference.faces import DetectedFace, TritonFaces
from argus.settings import REPO_ROOT, Settings
from argus.topology import load_topology
from argus.watchlist.store import KEY_ENV, WatchlistStore, load_key
from tools import face_demo
from tools.face_clip import read_clip

pytestmark = pytest.mark.integration

G00 = {"img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg"}


def test_demo_watchlist_camera(stack: Settings, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    # face_demo.prepare sets both in os.environ for the demo's children; set-then-delete
    # makes monkeypatch restore them (a plain delenv of an unset variable restores
    # nothing, and the key leaked into later tests' workers, switching their faces stage on)
    for name in (KEY_ENV, "ARGUS_TOPOLOGY"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    settings = Settings(redis_url=stack.redis_url, cache_dir=tmp_path,
                        topology=REPO_ROOT / "config" / "topology.yaml")
    out = io.StringIO()
    demo = face_demo.prepare(settings, out)
    assert demo is not None, out.getvalue()
    try:
        assert "DEMO-G00 enrolled on watchlist 'demo'" in out.getvalue()
        assert demo.clip.parent == tmp_path / "demo" and demo.clip.suffix == ".avi"
        capture = cv2.VideoCapture(str(demo.clip))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        per_photo = int(face_demo.SECONDS_PER_PHOTO * face_demo.CLIP_FPS)
        assert frames == len(face_demo.CLIP) * per_photo
        assert not set(face_demo.GALLERY) & set(face_demo.CLIP)  # enrolled from other photos

        configured = load_topology(settings.topology, stack.shared)
        topology = load_topology(demo.topology, stack.shared)
        camera = topology.camera(face_demo.CAMERA_ID)
        assert camera is not None and camera.loop and camera.source == str(demo.clip)
        assert camera.site == configured.sites[0].id
        assert [c.id for c in topology.cameras] == [
            *(c.id for c in configured.cameras), face_demo.CAMERA_ID]
        assert os.environ["ARGUS_TOPOLOGY"] == str(demo.topology)

        store = WatchlistStore(redis.Redis.from_url(stack.redis_url), load_key())
        person = store.find(face_demo.LIST_ID, face_demo.REFERENCE)
        assert person is not None and person.photos == 2 and person.category == "wanted"
        index = store.load_index()

        jpegs = read_clip(demo.clip)[per_photo // 2::per_photo]  # one frame per photo

        async def faces() -> list[list[DetectedFace]]:
            client = TritonFaces(stack.triton_grpc_url)
            try:
                return [(await client.infer(j))[0] for j in jpegs]
            finally:
                await client.close()

        matched = set()
        for name, found in zip(face_demo.CLIP, asyncio.run(faces()), strict=True):
            assert found, name
            hits = [m for m in index.match([f.embedding for f in found]) if m is not None]
            if hits:
                assert name in G00, f"{name} matched the demo entry"
                matched.add(name)
        assert len(matched) >= 2, f"the demo clip shows G00 matched only in {matched}"
    finally:
        demo.cleanup()
    check = redis.Redis.from_url(stack.redis_url)
    assert WatchlistStore(check, None).find(face_demo.LIST_ID, face_demo.REFERENCE) is None
    assert not check.exists(f"argus:wl:person:{demo.person.person_id}")
