"""Plate lists and sightings through the alert API on the real Redis (FastAPI's TestClient
runs the app in process): operator role only, 503 without the plate key, clear 422s, list
add/show/remove with the audit naming the API key, sightings search (exact, wildcard, fuzzy,
site, time) audited without the plate, and no plate in the application logs."""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from argus.plates.hotlist import KEY_ENV, PlateKeys
from argus.plates.sightings import SightingStore
from argus.settings import Settings
from services.alert_api.app import create_app
from services.alert_api.config import ApiConfig
from tests.integration.test_plates_sightings import plate_event

pytestmark = pytest.mark.integration

READ = {"X-API-Key": secrets.token_urlsafe(24)}
OPERATOR = {"X-API-Key": secrets.token_urlsafe(24)}
PLATE_KEY = bytes(range(32, 64))
CONFIG = ApiConfig(api_keys=f"wall:{READ['X-API-Key']}:read,"
                            f"ops-anna:{OPERATOR['X-API-Key']}:operator")


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, base64.b64encode(PLATE_KEY).decode())
        app = create_app(stack, CONFIG)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def sightings(stack: Settings) -> Iterator[SightingStore]:
    """The store the plate stage writes to (the workers' prefix, in the test database)."""
    client = redis.Redis.from_url(stack.redis_url)
    yield SightingStore(client, PlateKeys.from_master(PLATE_KEY))
    client.close()


def unique_plate(prefix: str) -> str:
    return prefix + "".join(secrets.choice("ACEFHJKMNPRTUVWXY3479") for _ in range(5))


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/v1/plates/lists"), ("get", "/v1/plates/lists/stolen"),
    ("post", "/v1/plates/lists/stolen"), ("delete", "/v1/plates/lists/stolen/AB12CDE"),
    ("get", "/v1/plates/sightings?plate=AB12*"), ("get", "/v1/plates/audit"),
])
def test_plates_need_an_operator_key(api: TestClient, method: str, path: str) -> None:
    body = {"plate": "AB12CDE", "reason": "x"} if method == "post" else None
    assert api.request(method, path, json=body).status_code == 401
    refused = api.request(method, path, json=body, headers=READ)
    assert (refused.status_code, refused.json()["detail"]) == (
        403, "the read role cannot do this (needs operator)")


def test_without_the_plate_key_every_route_says_so(stack: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with TestClient(create_app(stack, CONFIG)) as client:
        for path in ("/v1/plates/lists", "/v1/plates/sightings?plate=AB12*"):
            response = client.get(path, headers=OPERATOR)
            assert response.status_code == 503
            assert response.json()["detail"] == (
                "plate lists and sightings are not available: ARGUS_PLATE_KEY is not set "
                "(base64 of 32 random bytes; keep it secret)")


def test_add_show_remove_a_listed_plate(api: TestClient) -> None:
    list_id = f"api-{uuid.uuid4().hex[:6]}"
    base = f"/v1/plates/lists/{list_id}"
    plate = unique_plate("LS")
    added = api.post(base, headers=OPERATOR, json={
        "plate": plate.lower()[:3] + " " + plate.lower()[3:], "reason": "reported stolen",
        "ttl_s": 86400})
    assert added.status_code == 201, added.text
    entry = added.json()
    assert (entry["plate"], entry["kind"], entry["reason"], entry["created_by"]) == (
        plate, "hotlist", "reported stolen", "ops-anna")
    assert 86300 < entry["expires_at"] - time.time() <= 86400
    shown = api.get(base, headers=OPERATOR).json()
    assert [(e["plate"], e["reason"], e["entry_id"]) for e in shown] == [
        (plate, "reported stolen", entry["entry_id"])]
    lists = {item["list_id"]: item for item in api.get("/v1/plates/lists",
                                                       headers=OPERATOR).json()}
    assert lists[list_id] == {"list_id": list_id, "kind": "hotlist", "entries": 1,
                              "by_kind": {"hotlist": 1}}
    conflict = api.post(base, headers=OPERATOR, json={"plate": "KX70ABC", "kind": "allow",
                                                      "reason": "staff"})
    assert (conflict.status_code, conflict.json()["detail"]) == (
        409, f"list '{list_id}' is a hotlist list, not allow: use another list")
    for body, detail in [
            ({"plate": "A", "reason": "x"}, "a plate has 2-12 characters A-Z0-9, got 1"),
            ({"plate": "AB12CDE", "reason": "x", "expires_at": time.time() - 10},
             "expires_at is in the past"),
            ({"plate": "AB12CDE", "reason": "x", "expires_at": 2e9, "ttl_s": 5},
             "give expires_at or ttl_s, not both"),
            ({"plate": "AB12CDE", "reason": ""}, "at least 1 character")]:
        response = api.post(base, headers=OPERATOR, json=body)
        assert response.status_code == 422 and detail in response.text, response.text
    assert api.post("/v1/plates/lists/Bad List", headers=OPERATOR,
                    json={"plate": "AB12CDE", "reason": "x"}).status_code == 422
    assert api.delete(f"{base}/{plate}", headers=OPERATOR).status_code == 204
    assert api.delete(f"{base}/{plate}", headers=OPERATOR).status_code == 404
    assert api.delete(f"{base}/A", headers=OPERATOR).status_code == 422
    assert api.get(base, headers=OPERATOR).json() == []
    audit = api.get("/v1/plates/audit", params={"limit": 3}, headers=OPERATOR).json()
    assert [(a["action"], a["actor"], a["entry_id"]) for a in audit] == [
        ("plate.remove", "ops-anna", entry["entry_id"])] * 2 + [
        ("plate.add", "ops-anna", entry["entry_id"])]
    assert plate not in str(audit)


def test_sightings_search_is_audited_without_the_plate(
        api: TestClient, sightings: SightingStore, caplog: pytest.LogCaptureFixture) -> None:
    plate = unique_plate("SG")
    confused = plate.replace("SG", "5G", 1)
    now = time.time()
    sightings.add(plate_event(plate, now - 300, "gate-1", "depot", track=1))
    sightings.add(plate_event(confused, now - 200, "gate-2", "yard", track=2))
    sightings.add(plate_event(plate, now - 100, "gate-2", "yard", track=3))
    url = "/v1/plates/sightings"

    def search(**params: str) -> list[tuple[str, str, int]]:
        response = api.get(url, params=params, headers=OPERATOR)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["sightings"]) and not body["truncated"]
        return [(s["plate"], s["camera_id"], s["distance"]) for s in body["sightings"]]

    with caplog.at_level(logging.DEBUG):
        assert search(plate=plate) == [(plate, "gate-2", 0), (plate, "gate-1", 0)]
        assert search(plate=plate, fuzzy="true") == [
            (plate, "gate-2", 0), (confused, "gate-2", 1), (plate, "gate-1", 0)]
        assert search(plate=plate[:4] + "*", site="depot") == [(plate, "gate-1", 0)]
        assert search(plate=plate, since=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 150))) == [(plate, "gate-2", 0)]
        assert search(plate="?" + plate[1:], until=str(now - 250)) == [(plate, "gate-1", 0)]
    one = api.get(url, params={"plate": plate, "limit": 1}, headers=OPERATOR).json()
    first = one["sightings"][0]
    assert (first["site_id"], first["snapshot_ref"], first["colour"], first["vehicle_class"]
            ) == ("yard", "frames.raw/gate-2/3", "blue", "car")
    assert first["ts"] == pytest.approx(now - 100) and "lat" in first and first["hits"] == []
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records
                      if r.name.startswith(("services.", "argus.", "uvicorn")))  # not httpx
    assert "plates.api.search" in logged and plate not in logged and plate[2:] not in logged

    audit = api.get("/v1/plates/audit", params={"limit": 6}, headers=OPERATOR).json()
    searches = [a for a in audit if a["action"] == "sightings.search"]
    assert searches[0]["actor"] == "ops-anna" and searches[0]["results"] == "1"
    exact = next(a for a in searches if a["fuzzy"] == "1")
    assert exact["pattern_tag"] == sightings.keys.tag(plate)
    assert exact["pattern_shape"] == "AA" + "".join(
        "9" if c.isdigit() else "A" for c in plate[2:])
    assert plate[2:] not in str(audit)

    for params, detail in [
            ({"plate": "*"}, "plate: a plate pattern needs at least 2 plate characters"),
            ({"plate": "AB_12"}, "plate: a plate pattern has only A-Z, 0-9"),
            ({"plate": "AB12*", "since": "yesterday"},
             "since: not a Unix time or ISO 8601 time: 'yesterday'"),
            ({"plate": "AB12*", "limit": "0"}, "greater than or equal to 1")]:
        response = api.get(url, params=params, headers=OPERATOR)
        assert response.status_code == 422 and detail in response.text, response.text
    assert api.get(url, headers=OPERATOR).status_code == 422  # no plate at all
