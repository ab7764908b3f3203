"""The console's watchlist view (operator keys): enroll a person from a face photo, see
the entry with its name, remove it; read keys have no such view and the API refuses."""

from __future__ import annotations

import uuid

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import KEYS, Console, screenshot, sign_in, wait
from tests.browser.test_console import click, type_into

pytestmark = pytest.mark.integration


def test_enroll_list_and_remove(page: WebDriver, console: Console) -> None:
    photo = console.settings.shared / "data" / "faces" / "deepface" / "img1.jpg"
    list_id = f"bt-{uuid.uuid4().hex[:6]}"
    sign_in(page, console.base, "operator")
    click(page, "#view-watchlists")
    wait(page, lambda d: "view=watchlists" in d.current_url)
    type_into(page, "#wl-list-id", list_id)
    type_into(page, "#wl-reference", "CASE-77")
    type_into(page, "#wl-name", "Jane Example")
    type_into(page, "#wl-photos", str(photo))
    click(page, "#wl-form button[type=submit]")
    wait(page, lambda d: d.find_element(By.ID, "wl-result").text.startswith(
        f"Enrolled CASE-77 on {list_id}"), timeout=30)
    entry = wait(page, lambda d: d.find_element(By.CSS_SELECTOR,
                                                '#wl-entries li[data-reference="CASE-77"]'))
    assert "Jane Example" in entry.text  # type: ignore[attr-defined]
    screenshot(page, "watchlists")
    operator = {"X-API-Key": KEYS["operator"]}
    stored = httpx.get(f"{console.base}/v1/watchlists/{list_id}/entries",
                       headers=operator).json()
    assert [(e["reference"], e["created_by"], e["photos"]) for e in stored] == [
        ("CASE-77", "ops-anna", 1)]

    click(page, '#wl-entries li[data-reference="CASE-77"] .wl-remove')
    wait(page, lambda d: d.find_element(By.ID, "wl-result").text == (
        f"Removed CASE-77 from {list_id}."))
    wait(page, lambda d: not d.find_elements(By.CSS_SELECTOR,
                                             '#wl-entries li[data-reference="CASE-77"]'))
    assert httpx.get(f"{console.base}/v1/watchlists/{list_id}/entries",
                     headers=operator).json() == []
    click(page, "#back-to-queue")
    wait(page, lambda d: d.find_element(By.ID, "console").is_displayed())
    assert "view=" not in page.current_url


def test_read_key_has_no_watchlist_view(page: WebDriver, console: Console) -> None:
    sign_in(page, console.base, "read", "?view=watchlists")
    assert not page.find_element(By.ID, "view-watchlists").is_displayed()
    assert not page.find_element(By.ID, "watchlists").is_displayed()
    assert httpx.get(f"{console.base}/v1/watchlists",
                     headers={"X-API-Key": KEYS["read"]}).status_code == 403
