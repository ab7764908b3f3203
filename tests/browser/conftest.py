"""Browser tests of the operations console: the real alert API (``python -m
services.alert_api`` on a free port, on the test session's Redis, Kafka and Triton) and a
headless Chromium driven by Selenium.

Chromium and its driver come from Debian (``ops/bootstrap.sh`` installs ``chromium`` and
``chromium-driver``); nothing is downloaded at run time: the paths are given to Selenium
(``ARGUS_CHROMIUM``, ``ARGUS_CHROMEDRIVER`` override them), so Selenium Manager is never
asked. A missing browser fails the tests with that message, it never skips them.
Screenshots go to ``build/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from argus.settings import REPO_ROOT, Settings
from argus.stores import alerts as alert_sink
from argus.stores.frame_cache import FrameCache
from argus.watchlist.crypto import KEY_ENV
from schemas.alerts import Alert
from tests.conftest import free_port

CHROMIUM = Path(os.environ.get("ARGUS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ARGUS_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
TOPOLOGY = Path(__file__).parent / "topology.yaml"
RULES = Path(__file__).parent / "rules.yaml"
OPERATOR_KEY = secrets.token_urlsafe(24)
READ_KEY = secrets.token_urlsafe(24)
KEYS = {"operator": OPERATOR_KEY, "read": READ_KEY}
FACE_KEY = os.urandom(32)
"""The watchlist encryption key of the API under test (names are sealed with it)."""
NAMES = {"operator": "ops-anna", "read": "wall"}


@dataclass(frozen=True)
class Console:
    """The running API: its base URL and the session's settings."""

    base: str
    settings: Settings

    def write(self, *alerts: Alert) -> None:
        """Write alerts through the real sink, as the correlate stage does."""
        async def run() -> None:
            client = aioredis.Redis.from_url(self.settings.redis_url)
            try:
                for alert in alerts:
                    await alert_sink.open_or_update(client, alert, ttl_s=900)
            finally:
                await client.aclose()
        asyncio.run(run())

    def keep_snapshot(self, ref: str, jpeg: bytes) -> None:
        """Keep a frame as evidence under ``ref``, as a stage does (the frame cache)."""
        async def run() -> None:
            client = aioredis.Redis.from_url(self.settings.redis_url)
            try:
                await FrameCache(client, 20.0, 900).store(ref, jpeg)
            finally:
                await client.aclose()
        asyncio.run(run())

    def stored(self, alert_id: str) -> tuple[Alert | None, list[alert_sink.AuditEntry]]:
        """The alert and its audit trail as Redis has them."""
        async def run() -> tuple[Alert | None, list[alert_sink.AuditEntry]]:
            client = aioredis.Redis.from_url(self.settings.redis_url)
            try:
                return (await alert_sink.get_alert(client, alert_id),
                        await alert_sink.audit_entries(client, 50, alert_id))
            finally:
                await client.aclose()
        return asyncio.run(run())


@contextmanager
def run_api(stack: Settings, **env_extra: str) -> Iterator[Console]:
    """The alert API (``python -m services.alert_api``) on a free port with the browser
    tests' topology, rules and keys (``env_extra`` added to its environment); stopped, and
    its log checked for the keys, on exit."""
    port = free_port()
    env = {**os.environ, **stack.to_env(), "ARGUS_TOPOLOGY": str(TOPOLOGY),
           "ARGUS_RULES": str(RULES), KEY_ENV: base64.b64encode(FACE_KEY).decode(),
           "ARGUS_API_KEYS": f"{NAMES['read']}:{READ_KEY}:read,"
                             f"{NAMES['operator']}:{OPERATOR_KEY}:operator", **env_extra}
    log_path = stack.stack_dir / f"test-console-{stack.app_id}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.alert_api", "--port",
                                 str(port)], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, "the alert API did not start"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield Console(base, stack)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text()
    assert OPERATOR_KEY not in text and READ_KEY not in text, "an API key was logged"


@pytest.fixture(scope="module")
def console(stack: Settings) -> Iterator[Console]:
    """The alert API for one test module; stopped after it, so its outbox loop (which
    sends unpublished changes of the session's Redis to Kafka) never races the later
    integration tests of the same session."""
    with run_api(stack) as api:
        yield api


def _check_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"browser tests need Chromium and its driver, missing: {', '.join(missing)}."
                    " Install them with `make bootstrap` (apt-get install chromium "
                    "chromium-driver) or point ARGUS_CHROMIUM/ARGUS_CHROMEDRIVER at them.",
                    pytrace=False)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    _check_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1920,1080", "--disable-extensions", "--mute-audio",
                "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, console: Console) -> Iterator[WebDriver]:
    """The browser, signed out, at the desktop size."""
    browser.set_window_size(1920, 1080)
    browser.get(f"{console.base}/console")
    browser.delete_all_cookies()
    yield browser


def wait(driver: WebDriver, what: Callable[[WebDriver], object], timeout: float = 5.0,
         poll: float = 0.05) -> object:
    """``what`` once truthy; the queue is redrawn on every change, so an element found a
    moment ago may be gone: that is retried like one not found yet."""
    return WebDriverWait(driver, timeout, poll_frequency=poll, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(what)


def sign_in(driver: WebDriver, base: str, role: str, query: str = "") -> None:
    """Sign in on the page's form with the role's key; waits for the live feed."""
    driver.get(f"{base}/console{query}")
    key = wait(driver, lambda d: d.find_element(By.ID, "api-key"))
    assert isinstance(key, WebElement)
    wait(driver, lambda d: key.is_displayed())
    key.send_keys(KEYS[role])
    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(driver, lambda d: d.find_element(By.ID, "live").text == "live")


def rows(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#queue .row")


def row(driver: WebDriver, alert_id: str) -> WebElement:
    found = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f'.row[data-id="{alert_id}"]'))
    assert isinstance(found, WebElement)
    return found


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path
