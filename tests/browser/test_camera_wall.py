"""The camera wall: a camera whose frames are cached shows its newest frame with every
face pixelated and its zone and tripwire drawn over it, online; one without frames is
offline (and looks it: label, dashed border, greyed picture); the tile follows new frames;
the track stage's newest tracks are drawn over the picture and alone keep a camera online."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from argus.stores.frame_cache import FrameCache
from argus.stores.latest_tracks import LatestTracks, tracks_key
from schemas.detections import Box
from schemas.tracks import Track, Tracks, Velocity
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


def write_tracks(console: Console, camera: str, seq: int,
                 tracks: list[tuple[int, str, tuple[float, float, float, float]]]) -> None:
    """Write a camera's newest tracks through the track stage's helper."""
    now = time.time()
    message = Tracks(camera_id=camera, seq=seq, capture_ts=now, width=640, height=480, tracks=[
        Track(track_id=tid, class_id=0, class_name="person", box=Box(x1=b[0], y1=b[1], x2=b[2],
              y2=b[3]), velocity=Velocity(vx=0, vy=0), age=5, state=state,
              first_seen=now - 1, last_seen=now, score=0.9)
        for tid, state, b in tracks])

    async def run() -> None:
        client = aioredis.Redis.from_url(console.settings.redis_url)
        try:
            assert await LatestTracks(client, every_s=0).write(message)
        finally:
            await client.aclose()
    asyncio.run(run())


def drop_tracks(console: Console, camera: str) -> None:
    redis.Redis.from_url(console.settings.redis_url).delete(tracks_key(camera))


def drawn_tracks(driver: WebDriver, tile: str) -> dict[str, str]:
    return {g.get_attribute("data-track") or "": g.get_attribute("class") or ""
            for g in driver.find_elements(By.CSS_SELECTOR, f"{tile} g.track")}


def test_wall_draws_the_live_tracks(page: WebDriver, console: Console) -> None:
    jpeg = (console.settings.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    cache_frame(console, "bt-cam-gate", 50, jpeg)
    write_tracks(console, "bt-cam-gate", 50, [(7, "confirmed", (0.1, 0.2, 0.4, 0.9)),
                                             (8, "lost", (0.5, 0.2, 0.8, 0.9)),
                                             (9, "tentative", (0.0, 0.0, 0.1, 0.1))])
    try:
        sign_in(page, console.base, "read", "?view=cameras")
        wait(page, lambda d: drawn_tracks(d, GATE) == {"7": "track confirmed", "8": "track lost"},
             timeout=10)
        box = page.find_element(By.CSS_SELECTOR, f'{GATE} g.track[data-track="7"] rect')
        assert [box.get_attribute(a) for a in ("x", "y", "width", "height")] == [
            "0.1", "0.2", str(0.4 - 0.1), "0.7"]
        assert "person 7" in page.find_element(By.CSS_SELECTOR, f'{GATE} g.track[data-track="7"]'
                                               ).text
        wait(page, lambda d: (d.find_element(By.CSS_SELECTOR, f"{GATE} img")
                              .get_attribute("src") or "").endswith("seq=50"), timeout=15)
        screenshot(page, "camera-wall-tracks")
        # the tracks follow the pipeline: a new frame's tracks replace the old ones
        write_tracks(console, "bt-cam-gate", 51, [(10, "confirmed", (0.3, 0.3, 0.6, 0.8))])
        wait(page, lambda d: drawn_tracks(d, GATE) == {"10": "track confirmed"}, timeout=10)
        read = {"X-API-Key": KEYS["read"]}
        served = httpx.get(f"{console.base}/v1/cameras/bt-cam-gate/tracks", headers=read).json()
        assert (served["seq"], [t["id"] for t in served["tracks"]]) == (51, [10])
        assert httpx.get(f"{console.base}/v1/cameras/bt-cam-yard/tracks",
                         headers=read).status_code == 404
        assert httpx.get(f"{console.base}/v1/cameras/bt-cam-gate/tracks").status_code == 401
    finally:
        drop_tracks(console, "bt-cam-gate")


def test_offline_tiles_look_offline_and_tracks_alone_mean_online(page: WebDriver,
                                                                  console: Console) -> None:
    sign_in(page, console.base, "read", "?view=cameras")
    label = f"{YARD} .offline-label"
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, label).is_displayed())
    yard = page.find_element(By.CSS_SELECTOR, YARD)
    assert "offline" in (yard.get_attribute("class") or "").split()
    assert page.find_element(By.CSS_SELECTOR, label).text == "OFFLINE"
    assert yard.value_of_css_property("border-top-style") == "dashed"  # not colour alone
    assert page.find_element(By.CSS_SELECTOR, f"{YARD} .cam-status").text.startswith("○ offline")
    # a camera whose frames are not cached is online while the track stage writes its tracks
    write_tracks(console, "bt-cam-yard", 3, [(1, "confirmed", (0.2, 0.2, 0.5, 0.6))])
    try:
        wait(page, lambda d: d.find_element(By.CSS_SELECTOR, f"{YARD} .cam-status").text
             == "● online", timeout=10)
        assert not page.find_element(By.CSS_SELECTOR, label).is_displayed()
        assert page.find_element(By.CSS_SELECTOR, YARD).value_of_css_property(
            "border-top-style") == "solid"
        wait(page, lambda d: drawn_tracks(d, YARD) == {"1": "track confirmed"}, timeout=5)
        drop_tracks(console, "bt-cam-yard")  # the pipeline stops seeing it
        wait(page, lambda d: d.find_element(By.CSS_SELECTOR, label).is_displayed(), timeout=10)
        assert drawn_tracks(page, YARD) == {}
        screenshot(page, "camera-wall-offline")
    finally:
        drop_tracks(console, "bt-cam-yard")
