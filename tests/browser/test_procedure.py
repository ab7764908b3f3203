"""The rule's procedure as a checklist on the console: steps from the rules file, ticks
stored and audited in the alert's trail, read keys see it but cannot tick."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from argus.stores import procedure as checklist
from schemas.alerts import Severity
from tests.browser.conftest import KEYS, Console, sign_in, wait
from tests.browser.test_console import click, make_alert, open_detail

pytestmark = pytest.mark.integration

STEPS = ["Look at the live camera", "Call the site guard",
         "Call the police if the guard cannot confirm"]


def procedure_ticks(console: Console, alert_id: str) -> dict[int, checklist.Tick]:
    async def run() -> dict[int, checklist.Tick]:
        client = aioredis.Redis.from_url(console.settings.redis_url)
        try:
            return await checklist.ticks(client, alert_id)
        finally:
            await client.aclose()
    return asyncio.run(run())


def test_ticking_the_procedure_is_audited(page: WebDriver, console: Console) -> None:
    alert = make_alert("bt-north", Severity.HIGH)  # rule "intrusion": 3 steps
    console.write(alert)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    items = wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#procedure li"))
    assert [i.text for i in items] == STEPS  # type: ignore[attr-defined]
    click(page, '#procedure input[data-step="1"]')
    wait(page, lambda d: "done by ops-anna" in d.find_elements(
        By.CSS_SELECTOR, "#procedure li")[1].text)
    ticks = procedure_ticks(console, alert.alert_id)
    assert list(ticks) == [1] and (ticks[1].done, ticks[1].by) == (True, "ops-anna")
    click(page, '#procedure input[data-step="1"]')  # untick
    wait(page, lambda d: "unticked by ops-anna" in d.find_elements(
        By.CSS_SELECTOR, "#procedure li")[1].text)
    stored, audit = console.stored(alert.alert_id)
    assert stored is not None and stored.version == 1  # a tick does not change the alert
    assert [(e.action.value, e.actor, e.comment, e.version) for e in audit[:2]] == [
        ("procedure", "ops-anna", "step 2 not done: Call the site guard", 1),
        ("procedure", "ops-anna", "step 2 done: Call the site guard", 1)]
    wait(page, lambda d: "step 2 not done" in d.find_element(By.ID, "audit").text)

    api = f"{console.base}/v1/alerts/{alert.alert_id}/procedure"
    operator = {"X-API-Key": KEYS["operator"]}
    assert httpx.post(f"{api}/3", headers=operator, json={"done": True}).status_code == 404
    assert httpx.post(f"{api}/0", headers={"X-API-Key": KEYS["read"]},
                      json={"done": True}).status_code == 403
    httpx.post(f"{console.base}/v1/alerts/{alert.alert_id}/resolve", headers=operator)
    closed = httpx.post(f"{api}/0", headers=operator, json={"done": True})
    assert closed.status_code == 409, closed.text


def test_read_key_sees_the_procedure_without_ticking(page: WebDriver, console: Console
                                                     ) -> None:
    alert = make_alert("bt-south", Severity.LOW)
    console.write(alert)
    sign_in(page, console.base, "read")
    open_detail(page, alert.alert_id)
    boxes = wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#procedure input"))
    assert [b.get_attribute("disabled") for b in boxes] == ["true"] * 3  # type: ignore[attr-defined]


def test_a_rule_without_procedure_shows_none(page: WebDriver, console: Console) -> None:
    alert = make_alert("bt-south", Severity.LOW, rule="no-procedure")
    console.write(alert)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    wait(page, lambda d: d.find_elements(By.ID, "audit"))
    assert page.find_elements(By.ID, "procedure") == []
    answer = httpx.get(f"{console.base}/v1/alerts/{alert.alert_id}/procedure",
                       headers={"X-API-Key": KEYS["read"]}).json()
    assert answer == {"alert_id": alert.alert_id, "rule": "no-procedure", "steps": []}
