"""Watchlist privacy on the real Redis, with embeddings from the real Triton ``faces`` model.

* embeddings and names are unreadable without the key (ciphertext ≠ plaintext, wrong key
  fails);
* removal really removes: the Redis keys are gone and a running worker's index drops the
  entry via pub/sub within seconds; the audit stream records who did what;
* no unmatched face is stored: processing frames writes only the matched faces' crops;
* the CLI refuses a photo with several faces and enrolls, lists and removes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from argus.inference.faces import (
    CROP_KEY,
    FaceStage,
    FaceStageResult,
    TritonFaces,
    load_match_crop,
    store_match_crops,
)
from argus.settings import Settings
from argus.watchlist.store import KEY_ENV, WatchlistFollower, WatchlistKeyError, WatchlistStore
from tools import watchlist_cli

pytestmark = pytest.mark.integration

NAME = "Jane Example-Privacy"


def deepface(settings: Settings) -> Path:
    return settings.shared / "data" / "faces" / "deepface"


@pytest.fixture(scope="module")
def embeddings(stack: Settings) -> dict[str, np.ndarray]:
    """Largest-face embeddings of a few photos, from Triton."""
    names = ("img1.jpg", "img2.jpg", "img5.jpg", "img20.jpg")

    async def run() -> list[np.ndarray]:
        client = TritonFaces(stack.triton_grpc_url)
        try:
            results = await asyncio.gather(
                *(client.infer((deepface(stack) / n).read_bytes()) for n in names))
        finally:
            await client.close()
        return [faces[0].embedding for faces, _, _ in results]

    return dict(zip(names, asyncio.run(run()), strict=True))


@pytest.fixture
def client(stack: Settings) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(stack.redis_url)
    yield conn
    conn.close()


@pytest.fixture
def store(client: redis.Redis) -> WatchlistStore:
    """A store under a prefix of its own (this test's keys only)."""
    return WatchlistStore(client, os.urandom(32), prefix=f"t{uuid.uuid4().hex[:8]}:")


def keys(client: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{prefix}*")}


def test_embeddings_and_names_are_sealed(store: WatchlistStore, client: redis.Redis,
                                         embeddings: dict[str, np.ndarray]) -> None:
    gallery = np.stack([embeddings["img1.jpg"], embeddings["img2.jpg"]])
    person = store.enroll("wanted", "CASE-1", NAME, gallery, actor="officer-7")
    raw = client.hgetall(f"{store.prefix}wl:person:{person.person_id}")
    assert set(raw) == {b"meta", b"name", b"emb"}
    for row in gallery:
        assert row.astype("<f4").tobytes()[:64] not in raw[b"emb"]
    everything = b"".join(v if isinstance(v, bytes) else v.encode()
                          for k in keys(client, store.prefix) if client.type(k) == b"hash"
                          for v in client.hgetall(k).values())
    assert NAME.encode() not in everything and b"Jane" not in everything
    # the right key reads them back ...
    np.testing.assert_allclose(store.embeddings(person.person_id), gallery, atol=0)
    assert store.name(person.person_id) == NAME
    # ... a wrong key or no key cannot
    wrong = WatchlistStore(client, os.urandom(32), prefix=store.prefix)
    with pytest.raises(WatchlistKeyError, match="wrong ARGUS_FACE_KEY"):
        wrong.embeddings(person.person_id)
    with pytest.raises(WatchlistKeyError, match="wrong ARGUS_FACE_KEY"):
        wrong.name(person.person_id)
    with pytest.raises(WatchlistKeyError, match="needs the encryption key"):
        WatchlistStore(client, None, prefix=store.prefix).load_index()
    # metadata stays readable without the key (for listing and removal)
    assert WatchlistStore(client, None, prefix=store.prefix).get(person.person_id) == person


def test_removal_really_removes(stack: Settings, store: WatchlistStore, client: redis.Redis,
                                embeddings: dict[str, np.ndarray]) -> None:
    follower = WatchlistFollower(store, resync_s=3600).start()
    try:
        gallery = np.stack([embeddings["img1.jpg"], embeddings["img2.jpg"]])
        person = store.enroll("wanted", "CASE-2", NAME, gallery, "officer-7")
        deadline = time.monotonic() + 5
        while person.person_id not in follower.index.persons and time.monotonic() < deadline:
            time.sleep(0.05)
        (match,) = follower.index.match([embeddings["img5.jpg"]])
        assert match is not None and match.person.person_id == person.person_id
        person_keys = {k for k in keys(client, store.prefix) if person.person_id in k}
        assert person_keys == {f"{store.prefix}wl:person:{person.person_id}"}

        started = time.monotonic()
        assert store.remove(person.person_id, actor="supervisor-2")
        while person.person_id in follower.index.persons and time.monotonic() - started < 5:
            time.sleep(0.02)
        dropped_after = time.monotonic() - started
    finally:
        follower.stop()
    assert dropped_after < 2.0, f"index still had the entry after {dropped_after:.2f} s"
    text = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert follower.index.match([embeddings["img5.jpg"]]) == [None]
    assert not any(person.person_id in k for k in keys(client, store.prefix))
    assert not client.sismember(f"{store.prefix}wl:persons", person.person_id)
    assert not client.hexists(f"{store.prefix}wl:ref:wanted", "CASE-2")
    assert store.find("wanted", "CASE-2") is None and store.load_index().persons == {}
    audit = [{str(k): str(v) for k, v in (fields or {}).items()}
             for _, fields in text.xrange(store.audit_stream) or []]
    assert [(a["action"], a["actor"]) for a in audit] == [
        ("list.set", "officer-7"), ("person.enroll", "officer-7"),
        ("person.remove", "supervisor-2")]
    assert all(NAME not in " ".join(a.values()) for a in audit)
    assert all(float(a["ts"]) > 0 for a in audit)
    text.close()


def test_expiring_entry_has_a_ttl_and_stops_matching(store: WatchlistStore, client: redis.Redis,
                                                     embeddings: dict[str, np.ndarray]) -> None:
    expires = time.time() + 120
    person = store.enroll("missing", "M-9", NAME,
                          np.stack([embeddings["img1.jpg"], embeddings["img2.jpg"]]),
                          "officer-7", expires_at=expires)
    assert 100 <= client.ttl(f"{store.prefix}wl:person:{person.person_id}") <= 122
    index = store.load_index()
    assert index.match([embeddings["img5.jpg"]], now=expires - 1)[0] is not None
    assert index.match([embeddings["img5.jpg"]], now=expires + 1) == [None]


def test_no_unmatched_face_is_stored(stack: Settings, store: WatchlistStore,
                                     client: redis.Redis,
                                     embeddings: dict[str, np.ndarray]) -> None:
    """Frames with the enrolled person (img5, and the left face of couple.jpg) and three
    others (the right face of couple.jpg, img20, img8): only the two matches leave a trace."""
    store.enroll("wanted", "CASE-3", NAME,
                 np.stack([embeddings["img1.jpg"], embeddings["img2.jpg"]]), "officer-7")
    stage = FaceStage(index=store.load_index(), min_quality=0.5, cooldown_s=0)
    frames = ["img5.jpg", "couple.jpg", "img20.jpg", "img8.jpg"]

    async def face_keys(conn: aioredis.Redis) -> set[str]:
        """Every key that could hold face data: anything named *face* and the watchlist's
        own keys (the database is shared with other tests, so not simply every key)."""
        found: set[str] = set()
        for pattern in ("*face*", f"{store.prefix}*"):
            found |= {str(k) async for k in conn.scan_iter(match=pattern)}
        return found

    async def run() -> tuple[list[FaceStageResult], int, set[str], set[str]]:
        from argus.inference.faces import load_facelib

        decode = load_facelib().decode_jpeg
        faces_client = TritonFaces(stack.triton_grpc_url)
        conn = aioredis.from_url(stack.redis_url, decode_responses=True)
        before = await face_keys(conn)
        results, written = [], 0
        try:
            for seq, name in enumerate(frames):
                jpeg = (deepface(stack) / name).read_bytes()
                faces, _, _ = await faces_client.infer(jpeg)
                result = stage.process("cam-x", "site-x", seq, 1000.0 + seq, faces)
                written += await store_match_crops(conn, decode(jpeg), result.events, 60,
                                                   store.key or b"")
                results.append(result)
            after = await face_keys(conn)
        finally:
            await faces_client.close()
            await conn.aclose()
        return results, written, before, after

    results, written, before, after = asyncio.run(run())
    events = [e for r in results for e in r.events]
    assert [e.seq for e in events] == [0, 1]
    assert {e.person_ref for e in events} == {"CASE-3"}
    assert events[1].face_box.x2 < 0.5  # the left face of the couple
    assert [r.unmatched for r in results] == [0, 1, 1, 1]
    assert written == 2
    assert after - before == {CROP_KEY.format(event_id=e.event_id) for e in events}
    for event in events:
        ref = event.crop_ref or ""
        assert 0 < client.ttl(ref) <= 60
        stored = client.get(ref)
        assert isinstance(stored, bytes) and not stored.startswith(b"\xff\xd8")  # not a JPEG
        crop = asyncio.run(read_crop(stack.redis_url, store.key or b"", ref))
        assert crop is not None and crop.startswith(b"\xff\xd8")
        image = cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and min(image.shape[:2]) >= 20  # a face-sized crop
        with pytest.raises(WatchlistKeyError):  # another key cannot read it
            asyncio.run(read_crop(stack.redis_url, os.urandom(32), ref))
        client.delete(ref)


async def read_crop(url: str, key: bytes, ref: str) -> bytes | None:
    conn = aioredis.from_url(url)
    try:
        return await load_match_crop(conn, key, ref)
    finally:
        await conn.aclose()


def test_cli_refuses_group_photos_and_manages_entries(
        stack: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    data = deepface(stack)
    ref = f"CLI-{uuid.uuid4().hex[:6]}"
    base = ["--redis-url", stack.redis_url, "--actor", "cli-test"]
    code = watchlist_cli.main([*base, "enroll", "--list", "cli", "--ref", ref, "--name", NAME,
                               str(data / "img1.jpg"), str(data / "couple.jpg")])
    err = capsys.readouterr().err
    assert code == 2 and "couple.jpg: 2 faces" in err and "nothing changed" in err
    assert watchlist_cli.main([*base, "enroll", "--list", "cli", "--ref", ref, "--name", NAME,
                               str(data / "img1.jpg"), str(data / "img2.jpg")]) == 0
    assert "from 2 photo(s)" in capsys.readouterr().out
    assert watchlist_cli.main([*base, "list", "--list", "cli"]) == 0
    listed = capsys.readouterr().out
    assert ref in listed and NAME not in listed
    assert watchlist_cli.main([*base, "list", "--list", "cli", "--names"]) == 0
    assert NAME in capsys.readouterr().out
    assert watchlist_cli.main([*base, "remove", "--list", "cli", "--ref", ref]) == 0
    assert f"(cli/{ref})" in capsys.readouterr().out
    assert watchlist_cli.main([*base, "list", "--list", "cli"]) == 0
    assert ref not in capsys.readouterr().out
    assert watchlist_cli.main([*base, "audit", "--count", "3"]) == 0
    audit = capsys.readouterr().out
    assert "action=person.remove" in audit and "actor=cli-test" in audit
