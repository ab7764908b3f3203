"""A console session that ends while the page is open: the live feed's WebSocket is
closed by the API with a policy code (1008) and the page shows the sign-in again."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from argus.settings import Settings
from services.alert_api.sessions import COOKIE, session_key
from services.alert_api.stream import SESSION_EXPIRED
from tests.browser.conftest import KEYS, Console, run_api, sign_in, wait

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def console(stack: Settings) -> Iterator[Console]:
    """The API checking live feeds' sessions every 0.5 s (the page's ``console`` fixture,
    overridden here)."""
    with run_api(stack, ARGUS_SESSION_CHECK_S="0.5") as api:
        yield api


def expire(console: Console, token: str) -> None:
    """Let the session run out now (its Redis key expires, as at the end of a shift)."""
    db = redis.Redis.from_url(console.settings.redis_url)
    assert db.pexpire(session_key(token), 50)


def test_the_feed_is_closed_with_1008_when_the_session_expires(console: Console) -> None:
    signed = httpx.post(f"{console.base}/v1/session", json={"api_key": KEYS["read"]})
    token = signed.cookies[COOKIE]
    ws_url = console.base.replace("http://", "ws://") + "/v1/alerts/stream"
    with connect(ws_url, additional_headers={"Cookie": f"{COOKIE}={token}",
                                             "Origin": console.base}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        expire(console, token)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, SESSION_EXPIRED)


def test_an_api_key_feed_is_not_closed(console: Console) -> None:
    """A feed opened with a key (no session) runs on: nothing to expire."""
    ws_url = console.base.replace("http://", "ws://") + "/v1/alerts/stream"
    with connect(ws_url, additional_headers={"X-API-Key": KEYS["read"]}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.5)  # three session checks' time: still open


def test_the_page_shows_the_sign_in_when_the_session_ends(page: WebDriver,
                                                          console: Console) -> None:
    sign_in(page, console.base, "operator", "?severity=critical")
    cookie = page.get_cookie(COOKIE)
    assert cookie is not None
    expire(console, cookie["value"])
    wait(page, lambda d: d.find_element(By.ID, "signin").is_displayed(), timeout=5)
    assert not page.find_element(By.ID, "console").is_displayed()
    assert not page.find_element(By.ID, "user").is_displayed()
    assert "sign in again" in page.find_element(By.ID, "signin-error").text
    assert page.find_element(By.ID, "live").text == "offline"
    assert "severity=critical" in page.current_url  # the filters are kept
    # signing in again brings the live console back
    page.find_element(By.ID, "api-key").send_keys(KEYS["operator"])
    page.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(page, lambda d: d.find_element(By.ID, "live").text == "live")
    assert page.find_element(By.ID, "console").is_displayed()
    assert not page.find_element(By.ID, "signin").is_displayed()
