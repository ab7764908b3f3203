"""The console's map with tiles: Leaflet (vendored, served by the API) draws the pins over
tiles from ``ARGUS_CONSOLE_TILE_URL`` (here a local tile server), a pin still filters the
queue; with the tile server unreachable the page falls back to the plain map."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest
from selenium.webdriver.chromium.webdriver import ChromiumDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from argus.settings import Settings
from schemas.alerts import Severity
from tests.browser.conftest import KEYS, Console, rows, run_api, screenshot, sign_in, wait
from tests.browser.test_console import click, make_alert
from tests.conftest import free_port

pytestmark = pytest.mark.integration

TILE_PORT = free_port()
TILES = f"http://127.0.0.1:{TILE_PORT}"
TILE_URL = f"{TILES}/{{z}}/{{x}}/{{y}}.png"
PANE = "#map-pane"


def tile_png() -> bytes:
    """A 256 px tile: a light ground with a grid, like a street map from far away."""
    image = np.full((256, 256, 3), (226, 232, 236), np.uint8)
    for at in range(0, 256, 32):
        cv2.line(image, (at, 0), (at, 255), (200, 206, 212), 1)
        cv2.line(image, (0, at), (255, at), (200, 206, 212), 1)
    cv2.line(image, (0, 40), (255, 220), (230, 190, 160), 6)  # a river (BGR)
    ok, png = cv2.imencode(".png", image)
    assert ok
    return bytes(png)


class TileServer(ThreadingHTTPServer):
    """Serves the same PNG for any tile path (never cached), noting the paths."""

    def __init__(self, port: int = TILE_PORT) -> None:
        super().__init__(("127.0.0.1", port), TileHandler)
        self.png = tile_png()
        self.paths: list[str] = []


class TileHandler(BaseHTTPRequestHandler):
    server: TileServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Cache-Control", "no-store")  # the unreachable test must not hit a cache
        self.send_header("Content-Length", str(len(self.server.png)))
        self.end_headers()
        self.wfile.write(self.server.png)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def console(stack: Settings) -> Iterator[Console]:
    """The API with a tile URL (the page's ``console`` fixture, overridden here)."""
    with run_api(stack, ARGUS_CONSOLE_TILE_URL=TILE_URL,
                 ARGUS_CONSOLE_TILE_ATTRIBUTION="Test tiles <not html>") as api:
        yield api


@contextmanager
def serve_tiles(port: int = TILE_PORT) -> Iterator[TileServer]:
    server = TileServer(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tiles() -> Iterator[TileServer]:
    with serve_tiles() as server:
        yield server


def origins(driver: WebDriver) -> set[str]:
    """Where the page loaded anything from (Resource Timing), besides the page itself."""
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    return {f"{urlsplit(n).scheme}://{urlsplit(n).netloc}" for n in names
            if urlsplit(n).scheme in ("http", "https")}


def test_tiles_under_the_pins_and_a_pin_filters(page: WebDriver, console: Console,
                                                tiles: TileServer) -> None:
    north = make_alert("bt-north", Severity.LOW)
    south = make_alert("bt-south", Severity.CRITICAL, age_s=30)
    console.write(north, south)
    policy = httpx.get(f"{console.base}/console").headers["content-security-policy"]
    assert f"img-src 'self' data: {TILES};" in policy
    assert httpx.get(f"{console.base}/v1/console/map", headers={"X-API-Key": KEYS["read"]}
                     ).json() == {"tile_url": TILE_URL, "attribution": "Test tiles <not html>"}
    sign_in(page, console.base, "read")
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, PANE).get_attribute("data-tiles")
         == "loaded", timeout=10)
    assert page.find_element(By.CSS_SELECTOR, PANE).get_attribute("data-mode") == "tiles"
    loaded = page.find_elements(By.CSS_SELECTOR, "#tile-map img.leaflet-tile-loaded")
    assert loaded and all((t.get_attribute("src") or "").startswith(TILES) for t in loaded)
    assert tiles.paths and all(p.endswith(".png") for p in tiles.paths)
    assert not page.find_element(By.ID, "map").is_displayed()  # the plain map is hidden
    # the attribution is text, never markup
    assert "Test tiles <not html>" in page.find_element(
        By.CSS_SELECTOR, ".leaflet-control-attribution").text
    # Leaflet came from the API itself; nothing from any other origin but the tiles
    assert origins(page) == {console.base, TILES}
    assert page.execute_script("return performance.getEntriesByType('resource')"
                               ".some(e => e.name.endsWith('/vendor/leaflet/leaflet.js'))")
    south_pin = '#tile-map .pin[data-site="bt-south"]'
    wait(page, lambda d: "fill-critical" in (d.find_element(By.CSS_SELECTOR, south_pin)
                                             .get_attribute("class") or "").split())
    # (other modules' alerts of the session may be open at these sites too)
    north_label = page.find_element(By.CSS_SELECTOR, '#tile-map .pin[data-site="bt-north"]'
                                    ).get_attribute("aria-label") or ""
    assert re.fullmatch(r"North depot: \d+ active, worst (low|medium|high|critical)", north_label)
    assert re.search(r"▲ South yard \(\d+\)", page.find_element(By.ID, "tile-map").text)
    assert not page.find_elements(By.CSS_SELECTOR, "#map .pin")  # one map at a time
    # Leaflet's styles are applied through the DOM, never inline markup the policy refuses
    assert isinstance(page, ChromiumDriver)
    assert not [e for e in page.get_log("browser") if "Content Security Policy" in e["message"]]
    click(page, south_pin)
    wait(page, lambda d: "site=bt-south" in d.current_url)
    wait(page, lambda d: {r.get_attribute("data-site") for r in rows(d)} == {"bt-south"})
    screenshot(page, "map-tiles")
    # Enter on the (focusable) pin clears the filter again
    pin = page.find_element(By.CSS_SELECTOR, south_pin)
    assert pin.get_attribute("tabindex") == "0"
    pin.send_keys(Keys.ENTER)
    wait(page, lambda d: "site=" not in d.current_url)
    # on a phone the tiled map fits the screen as the plain one does
    page.set_window_size(390, 844)
    wait(page, lambda d: d.execute_script(
        "const e = document.documentElement; return e.scrollWidth <= e.clientWidth"))
    width = page.execute_script("return document.getElementById('tile-map').clientWidth")
    assert 300 <= width <= 390


def test_unreachable_tiles_fall_back_to_the_plain_map(page: WebDriver, console: Console
                                                      ) -> None:
    south = make_alert("bt-south", Severity.HIGH)
    console.write(south)
    sign_in(page, console.base, "read")  # nothing listens on the tile port
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, PANE).get_attribute("data-tiles")
         == "unavailable", timeout=12)
    assert page.find_element(By.CSS_SELECTOR, PANE).get_attribute("data-mode") == "plain"
    assert page.find_element(By.ID, "map").is_displayed()
    assert not page.find_element(By.ID, "tile-map").is_displayed()
    assert "plain map" in page.find_element(By.ID, "map-note").text
    pin = '#map .pin[data-site="bt-south"]'
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, f"{pin} circle")
         .get_attribute("class") in ("fill-high", "fill-critical"))
    click(page, pin)
    wait(page, lambda d: "site=bt-south" in d.current_url)
    wait(page, lambda d: {r.get_attribute("data-site") for r in rows(d)} == {"bt-south"})
    screenshot(page, "map-fallback")
