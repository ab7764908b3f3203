"""Console sessions on the real Redis (the app in process): a key exchanged for an
HttpOnly cookie, the cookie accepted like the key, sign-out and key removal ending the
session, the console header required for cookie writes, and no secret in Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from argus.settings import Settings
from services.alert_api.app import create_app
from services.alert_api.config import ApiConfig
from services.alert_api.sessions import COOKIE, PREFIX, session_key

pytestmark = pytest.mark.integration

OPERATOR_KEY = secrets.token_urlsafe(24)
READ_KEY = secrets.token_urlsafe(24)
CONSOLE = {"X-Requested-With": "argus-console"}


def app_with(stack: Settings, keys: str) -> TestClient:
    return TestClient(create_app(stack, ApiConfig(api_keys=keys, session_ttl_s=600)))


@pytest.fixture
def api(stack: Settings) -> Iterator[TestClient]:
    with app_with(stack, f"ops-anna:{OPERATOR_KEY}:operator,wall:{READ_KEY}:read") as client:
        yield client


def test_sign_in_sets_an_httponly_cookie_and_redis_holds_no_secret(api: TestClient,
                                                                   stack: Settings) -> None:
    answer = api.post("/v1/session", json={"api_key": OPERATOR_KEY})
    assert answer.status_code == 200 and answer.json() == {"name": "ops-anna",
                                                           "role": "operator"}
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=600" in cookie
    token = api.cookies[COOKIE]
    db = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    stored = db.get(session_key(token))
    assert stored is not None and 0 < db.ttl(session_key(token)) <= 600
    values = [db.get(k) for k in db.scan_iter(f"{PREFIX}*")]
    assert all(OPERATOR_KEY not in (v or "") and token not in (v or "") for v in values)
    assert all(token not in k for k in db.scan_iter(f"{PREFIX}*"))
    assert api.get("/v1/session").json() == {"name": "ops-anna", "role": "operator"}
    assert api.get("/v1/alerts").status_code == 200  # the cookie stands for the key


@pytest.mark.parametrize(("body", "status"), [
    ({"api_key": "not-a-configured-key-0000"}, 401),
    ({"api_key": ""}, 422),
    ({"key": OPERATOR_KEY}, 422),
])
def test_bad_sign_in_is_refused(api: TestClient, body: dict[str, str], status: int) -> None:
    answer = api.post("/v1/session", json=body)
    assert answer.status_code == status and COOKIE not in api.cookies


def test_sign_out_ends_the_session(api: TestClient, stack: Settings) -> None:
    api.post("/v1/session", json={"api_key": READ_KEY})
    token = api.cookies[COOKIE]
    assert api.delete("/v1/session").status_code == 204
    assert redis.Redis.from_url(stack.redis_url).exists(session_key(token)) == 0
    api.cookies.set(COOKIE, token)  # a copy of the old cookie no longer works
    assert api.get("/v1/session").status_code == 401


def test_cookie_writes_need_the_console_header(api: TestClient) -> None:
    api.post("/v1/session", json={"api_key": OPERATOR_KEY})
    refused = api.post("/v1/alerts/no-such-alert/ack")
    assert refused.status_code == 403 and "X-Requested-With" in refused.json()["detail"]
    assert api.post("/v1/alerts/no-such-alert/ack", headers=CONSOLE).status_code == 404


def test_read_session_cannot_act(api: TestClient) -> None:
    api.post("/v1/session", json={"api_key": READ_KEY})
    assert api.post("/v1/alerts/no-such-alert/ack", headers=CONSOLE).status_code == 403


def test_removing_the_key_ends_its_sessions(stack: Settings) -> None:
    key = secrets.token_urlsafe(24)
    with app_with(stack, f"temp:{key}:operator,wall:{READ_KEY}:read") as before:
        before.post("/v1/session", json={"api_key": key})
        token = before.cookies[COOKIE]
        assert before.get("/v1/session").status_code == 200
    with app_with(stack, f"wall:{READ_KEY}:read") as after:  # the key was removed
        after.cookies.set(COOKIE, token)
        assert after.get("/v1/session").status_code == 401
