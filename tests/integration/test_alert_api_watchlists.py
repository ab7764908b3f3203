"""Watchlists through the alert API on the real Redis and Triton (FastAPI's TestClient runs
the app in process): roles, enrollment from multipart and base64 photos with clear 422s for
photos with no face or several, listing without embeddings, update, removal that reaches a
running worker's index within seconds, and the audit log naming the API key."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from argus.inference.faces import TritonFaces
from argus.settings import Settings
from argus.watchlist.photos import embed_photos
from argus.watchlist.store import KEY_ENV, WatchlistFollower, WatchlistStore
from services.alert_api.app import create_app
from services.alert_api.config import ApiConfig

pytestmark = pytest.mark.integration

READ = {"X-API-Key": secrets.token_urlsafe(24)}
OPERATOR = {"X-API-Key": secrets.token_urlsafe(24)}
FACE_KEY = os.urandom(32)
NAME = "Jane Example-Api"


def deepface(settings: Settings) -> Path:
    return settings.shared / "data" / "faces" / "deepface"


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[TestClient]:
    config = ApiConfig(api_keys=f"wall:{READ['X-API-Key']}:read,"
                                f"ops-anna:{OPERATOR['X-API-Key']}:operator")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, base64.b64encode(FACE_KEY).decode())
        app = create_app(stack, config)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def store(stack: Settings) -> WatchlistStore:
    """The store the API writes to (the workers' prefix, in the test database)."""
    return WatchlistStore(redis.Redis.from_url(stack.redis_url), FACE_KEY)


def files(settings: Settings, *names: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photos", (n, (deepface(settings) / n).read_bytes(), "image/jpeg")) for n in names]


def b64(settings: Settings, name: str) -> str:
    return base64.b64encode((deepface(settings) / name).read_bytes()).decode()


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("get", "/v1/watchlists", {}, 401),
    ("get", "/v1/watchlists", READ, 403),
    ("post", "/v1/watchlists/x/entries", READ, 403),
    ("delete", "/v1/watchlists/x/entries/y", READ, 403),
    ("get", "/v1/watchlists/audit", READ, 403),
    ("get", "/v1/watchlists", OPERATOR, 200),
    ("get", "/v1/watchlists/x/entries/nobody", OPERATOR, 404),
    ("delete", "/v1/watchlists/x/entries/nobody", OPERATOR, 404),
    ("get", "/v1/watchlists/bad list!/entries", OPERATOR, 422),
])
def test_watchlists_need_an_operator_key(api: TestClient, method: str, path: str,
                                         headers: dict[str, str], status: int) -> None:
    assert api.request(method, path, headers=headers).status_code == status


def test_photos_with_no_face_or_several_are_refused(api: TestClient, stack: Settings,
                                                    store: WatchlistStore) -> None:
    list_id = f"api-{uuid.uuid4().hex[:6]}"
    url = f"/v1/watchlists/{list_id}/entries"
    form = {"reference": "CASE-R", "name": NAME}
    response = api.post(url, data=form, files=files(stack, "img1.jpg", "couple.jpg"),
                        headers=OPERATOR)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "1 of 2 photo(s) refused, nothing changed: couple.jpg: 2 faces; use a photo of the "
        "person alone or crop it to their face")
    ok, blank = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
    assert ok
    response = api.post(url, headers=OPERATOR, json={
        "reference": "CASE-R", "name": NAME,
        "photos": [b64(stack, "img1.jpg"), base64.b64encode(blank.tobytes()).decode()]})
    assert response.status_code == 422
    assert response.json()["detail"].endswith("photos[1]: no face found")
    response = api.post(url, headers=OPERATOR, json={
        "reference": "CASE-R", "name": NAME,
        "photos": [base64.b64encode(b"not an image at all").decode()]})
    assert (response.status_code, response.json()["detail"]) == (
        422, "1 of 1 photo(s) refused, nothing changed: photos[0]: not a readable image "
             "(JPEG or PNG)")
    response = api.post(url, headers=OPERATOR, json={"reference": "CASE-R", "name": NAME,
                                                     "photos": ["not base64!"]})
    assert (response.status_code, response.json()["detail"]) == (
        422, "photos[0]: not valid base64")
    response = api.post(url, headers=OPERATOR, json={"reference": "CASE-R", "name": NAME,
                                                     "photos": [], "colour": "red"})
    assert response.status_code == 422 and "colour: Extra inputs" in response.json()["detail"]
    assert store.find(list_id, "CASE-R") is None  # nothing was enrolled


def test_enroll_list_update_remove_through_the_api(api: TestClient, stack: Settings,
                                                   store: WatchlistStore) -> None:
    list_id = f"api-{uuid.uuid4().hex[:6]}"
    base = f"/v1/watchlists/{list_id}"
    follower = WatchlistFollower(store, resync_s=3600).start()
    try:
        assert api.put(base, json={"threshold": 0.7, "category": "wanted"},
                       headers=OPERATOR).json()["threshold"] == 0.7
        response = api.post(f"{base}/entries", files=files(stack, "img1.jpg", "img2.jpg"),
                            data={"reference": "CASE-9", "name": NAME, "expires_days": "30"},
                            headers=OPERATOR)
        assert response.status_code == 201, response.text
        entry = response.json()
        person_id = entry["person_id"]
        assert (entry["photos"], entry["category"], entry["created_by"]) == (2, "wanted",
                                                                            "ops-anna")
        assert entry["name"] is None and (entry["expires_at"] - time.time()) / 86400 > 29.9
        assert "emb" not in response.text and NAME not in response.text
        again = api.post(f"{base}/entries", files=files(stack, "img1.jpg"),
                         data={"reference": "CASE-9", "name": NAME}, headers=OPERATOR)
        assert again.status_code == 409

        probe = asyncio_embed(stack, "img5.jpg")  # the same person, another photo
        wait_for(lambda: person_id in follower.index.persons)
        (match,) = follower.index.match([probe])
        assert match is not None and match.person.reference == "CASE-9"
        assert match.threshold == 0.7

        listed = api.get(f"{base}/entries", headers=OPERATOR).json()
        assert [(e["reference"], e["name"]) for e in listed] == [("CASE-9", None)]
        named = api.get(f"{base}/entries/CASE-9", params={"names": "true"}, headers=OPERATOR)
        assert named.json()["name"] == NAME
        lists = {wl["list_id"]: wl for wl in api.get("/v1/watchlists", headers=OPERATOR).json()}
        assert lists[list_id]["entries"] == 1 and lists[list_id]["category"] == "wanted"

        response = api.patch(f"{base}/entries/CASE-9", headers=OPERATOR, json={
            "category": "missing", "add_photos": [b64(stack, "img4.jpg")]})
        assert response.status_code == 200, response.text
        assert (response.json()["photos"], response.json()["category"]) == (3, "missing")
        assert store.embeddings(person_id).shape == (3, 512)

        started = time.monotonic()
        assert api.delete(f"{base}/entries/CASE-9", headers=OPERATOR).status_code == 204
        wait_for(lambda: person_id not in follower.index.persons)
        dropped_after = time.monotonic() - started
    finally:
        follower.stop()
    assert dropped_after < 2.0, f"a worker's index kept the entry {dropped_after:.2f} s"
    assert follower.index.match([probe]) == [None]
    assert api.get(f"{base}/entries/CASE-9", headers=OPERATOR).status_code == 404
    db = store.redis
    assert not db.exists(f"argus:wl:person:{person_id}")
    assert not db.sismember("argus:wl:persons", person_id)
    assert not db.hexists(f"argus:wl:ref:{list_id}", "CASE-9")

    audit = [a for a in api.get("/v1/watchlists/audit", params={"limit": 50},
                                headers=OPERATOR).json()
             if a.get("list_id") == list_id]
    assert [(a["action"], a["actor"]) for a in reversed(audit)] == [
        ("list.set", "ops-anna"), ("person.enroll", "ops-anna"), ("person.update", "ops-anna"),
        ("person.remove", "ops-anna")]
    assert all(abs(float(a["ts"]) - time.time()) < 120 for a in audit)
    assert all(NAME not in str(a) for a in audit)


def asyncio_embed(settings: Settings, name: str) -> np.ndarray:
    """One photo's embedding from Triton, through the enrollment code path."""
    async def run() -> np.ndarray:
        client = TritonFaces(settings.triton_grpc_url)
        try:
            accepted, refused = await embed_photos(
                [(name, (deepface(settings) / name).read_bytes())], client)
        finally:
            await client.close()
        assert refused == []
        return accepted[0]

    return asyncio.run(run())


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
