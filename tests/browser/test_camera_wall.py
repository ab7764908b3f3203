"""The camera wall: a camera whose frames are cached shows its newest frame with every
face pixelated and its zone and tripwire drawn over it, online; one without frames is
offline; the tile follows new frames."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from argus.stores.frame_cache import FrameCache
from tests.browser.conftest import KEYS, Console, screenshot, sign_in, wait
from tests.browser.test_console import click

pytestmark = pytest.mark.integration

GATE = '[data-camera="bt-cam-gate"]'
YARD = '[data-camera="bt-cam-yard"]'


def cache_frame(console: Console, camera: str, seq: int, jpeg: bytes) -> None:
    """Cache a frame as the detect stage does."""
    async def run() -> None:
        client = aioredis.Redis.from_url(console.settings.redis_url)
        try:
            assert await FrameCache(client, 20.0, 60).put_many([(camera, seq, jpeg)])
        finally:
            await client.aclose()
    asyncio.run(run())


def test_wall_shows_cached_frames_pixelated_with_zones(page: WebDriver, console: Console
                                                       ) -> None:
    jpeg = (console.settings.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    cache_frame(console, "bt-cam-gate", 41, jpeg)
    sign_in(page, console.base, "read")
    click(page, "#view-cameras")
    wait(page, lambda d: "view=cameras" in d.current_url)
    wait(page, lambda d: (d.find_element(By.CSS_SELECTOR, f"{GATE} img")
                          .get_attribute("src") or "").endswith("seq=41"), timeout=15)
    assert page.find_element(By.CSS_SELECTOR, f"{GATE} .cam-status").text == "● online"
    assert "offline" in page.find_element(By.CSS_SELECTOR, f"{YARD} .cam-status").text
    assert len(page.find_elements(By.CSS_SELECTOR, f"{GATE} polygon.zone")) == 1
    assert len(page.find_elements(By.CSS_SELECTOR, f"{GATE} polyline.tripwire")) == 1
    screenshot(page, "camera-wall")

    read = {"X-API-Key": KEYS["read"]}
    served = httpx.get(f"{console.base}/v1/cameras/bt-cam-gate/latest.jpg", headers=read)
    assert served.status_code == 200
    assert (served.headers["x-argus-faces-blurred"], served.headers["x-argus-frame-seq"]) == (
        "2", "41")
    assert httpx.get(f"{console.base}/v1/cameras/bt-cam-yard/latest.jpg",
                     headers=read).status_code == 404
    assert httpx.get(f"{console.base}/v1/cameras").status_code == 401

    cache_frame(console, "bt-cam-gate", 42, jpeg)  # the tile follows the newest frame
    wait(page, lambda d: (d.find_element(By.CSS_SELECTOR, f"{GATE} img")
                          .get_attribute("src") or "").endswith("seq=42"), timeout=10)
