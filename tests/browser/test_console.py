"""The operations console in a real Chromium against the real alert API and Redis: sign-in
with each role, the live queue, acknowledge/resolve, the read role's limits, the map's pins,
the evidence snapshot, filters in the URL, keyboard, and the phone and desktop layouts."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from argus.inference.faces import snapshot_ref
from schemas.alerts import Alert, Evidence, Severity
from schemas.detections import Box
from services.alert_api.snapshots import AUDIT as SNAPSHOT_AUDIT
from tests.browser.conftest import (
    KEYS,
    NAMES,
    Console,
    row,
    rows,
    screenshot,
    sign_in,
    wait,
)

pytestmark = pytest.mark.integration

SITES = {"bt-north": (48.90, 2.35), "bt-south": (48.80, 2.25)}


def make_alert(site: str, severity: Severity, *, rule: str = "intrusion", age_s: float = 0,
               camera: str = "cam-gate", snapshot: str | None = None, box: Box | None = None,
               camera_zone: str | None = None) -> Alert:
    now = time.time() - age_s
    name = f"bt-{uuid.uuid4().hex[:8]}"
    lat, lon = SITES[site]
    return Alert(alert_id=name, rule=rule, title=f"{rule} at {site} ({name})", severity=severity,
                 site_id=site, zone_id="gate", camera_id=camera, lat=lat, lon=lon,
                 first_seen=now - 4, last_seen=now, created_at=now, evidence=[
                     Evidence(source="sensor", event_id=f"pir-{name}", ts=now - 4,
                              sensor_id="pir-1"),
                     Evidence(source="video", event_id=f"vid-{name}", ts=now, camera_id=camera,
                              snapshot_ref=snapshot, box=box, zone_id=camera_zone)])


def classes(element: WebElement) -> str:
    return element.get_attribute("class") or ""


def click(driver: WebDriver, selector: str) -> None:
    """Click the element at ``selector``, found again if the page redrew it meanwhile."""
    def once(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True
    wait(driver, once)


def type_into(driver: WebDriver, selector: str, text: str) -> None:
    def once(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).send_keys(text)
        return True
    wait(driver, once)


def open_detail(driver: WebDriver, alert_id: str) -> None:
    click(driver, f'.row[data-id="{alert_id}"]')
    wait(driver, lambda d: alert_id in d.find_element(By.CSS_SELECTOR, "#detail h2").text)


@pytest.mark.parametrize("role", ["operator", "read"])
def test_sign_in_shows_the_role_and_only_its_actions(page: WebDriver, console: Console,
                                                     role: str) -> None:
    alert = make_alert("bt-north", Severity.HIGH)
    console.write(alert)
    sign_in(page, console.base, role)
    assert page.find_element(By.ID, "who").text == NAMES[role]
    assert page.find_element(By.ID, "role").text == role
    # the session is an HttpOnly cookie: page script cannot read it, the URL has no key
    cookie = page.get_cookie("argus_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "argus_session" not in page.execute_script("return document.cookie")
    assert KEYS[role] not in page.current_url
    open_detail(page, alert.alert_id)
    buttons = page.find_elements(By.CSS_SELECTOR, "#detail .actions button")
    if role == "operator":
        assert [b.text for b in buttons] == ["Acknowledge (a)", "Add note", "Escalate",
                                             "Resolve… (r)", "Assign"]
        assert page.find_element(By.ID, "export").text == "Export case"
    else:
        assert buttons == [] and page.find_elements(By.ID, "export") == []
    screenshot(page, f"signed-in-{role}")


def test_unknown_key_is_refused_on_the_form(page: WebDriver, console: Console) -> None:
    page.get(f"{console.base}/console")
    key = page.find_element(By.ID, "api-key")
    wait(page, lambda d: key.is_displayed())
    key.send_keys("not-a-key-0123456789")
    page.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    wait(page, lambda d: d.find_element(By.ID, "signin-error").text == "Unknown API key.")
    assert page.get_cookie("argus_session") is None


def test_alert_from_the_sink_appears_live_within_a_second(page: WebDriver,
                                                          console: Console) -> None:
    sign_in(page, console.base, "read")
    alert = make_alert("bt-south", Severity.CRITICAL)
    started = time.monotonic()
    console.write(alert)
    item = row(page, alert.alert_id)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    assert item.get_attribute("data-state") == "open"
    assert "CRITICAL" in item.text and "▲" in item.text  # colour, symbol and text
    # a change (the engine's update with more evidence) shows without reload as well
    started = time.monotonic()
    console.write(alert.model_copy(update={"version": 2, "count": 3}))
    wait(page, lambda d: "\u00d73" in row(d, alert.alert_id).text, timeout=1.0)
    assert time.monotonic() - started < 1.0


def test_acknowledge_then_resolve_as_false_alarm(page: WebDriver, console: Console) -> None:
    alert = make_alert("bt-north", Severity.MEDIUM)
    console.write(alert)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    type_into(page, "#ack-note", "on my way")
    click(page, "#ack")
    wait(page, lambda d: d.find_element(By.ID, "detail-state").text == "acknowledged")
    stored, audit = console.stored(alert.alert_id)
    assert stored is not None
    assert (stored.state.value, stored.acknowledged_by) == ("acknowledged", "ops-anna")
    assert (audit[0].action.value, audit[0].actor, audit[0].comment) == (
        "acknowledge", "ops-anna", "on my way")
    wait(page, lambda d: row(d, alert.alert_id).get_attribute("data-state") == "acknowledged")
    wait(page, lambda d: "acknowledge" in d.find_element(By.ID, "audit").text)

    page.find_element(By.TAG_NAME, "body").send_keys("r")  # the keyboard's resolve
    dialog = wait(page, lambda d: d.find_element(By.ID, "resolve-dialog"))
    wait(page, lambda d: dialog.is_displayed())  # type: ignore[attr-defined]
    Select(page.find_element(By.ID, "resolve-reason")).select_by_visible_text("False alarm")
    page.find_element(By.ID, "resolve-note").send_keys("cat on the fence")
    click(page, "#resolve-confirm")
    wait(page, lambda d: d.find_element(By.ID, "detail-state").text == "resolved")
    stored, audit = console.stored(alert.alert_id)
    assert stored is not None and stored.state.value == "resolved"
    assert (audit[0].action.value, audit[0].comment) == ("resolve",
                                                         "false alarm: cat on the fence")
    wait(page, lambda d: not d.find_elements(By.CSS_SELECTOR, f'.row[data-id="{alert.alert_id}"]'))


def test_assign_note_and_escalate(page: WebDriver, console: Console) -> None:
    alert = make_alert("bt-south", Severity.HIGH)
    console.write(alert)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    type_into(page, "#assignee", "Bob Martin")
    type_into(page, "#ack-note", "night shift")
    click(page, "#assign")
    wait(page, lambda d: d.find_element(By.ID, "detail-assignee").text == "Bob Martin")
    wait(page, lambda d: "\u2192 Bob Martin" in row(d, alert.alert_id).text)
    type_into(page, "#ack-note", "gate camera fogged")
    click(page, "#note")
    wait(page, lambda d: "gate camera fogged" in d.find_element(By.ID, "audit").text)
    click(page, "#escalate")
    wait(page, lambda d: row(d, alert.alert_id).get_attribute("data-severity") == "critical")
    wait(page, lambda d: d.find_element(By.ID, "escalate").get_attribute("disabled") == "true")
    stored, audit = console.stored(alert.alert_id)
    assert stored is not None
    assert (stored.state.value, stored.severity.value, stored.assigned_to, stored.version) == (
        "open", "critical", "Bob Martin", 4)
    assert [(e.action.value, e.actor, e.comment) for e in audit] == [
        ("escalate", "ops-anna", ""), ("note", "ops-anna", "gate camera fogged"),
        ("assign", "ops-anna", "to Bob Martin: night shift"), ("evidence", "engine", "")]
    # the API's own checks: an assign names someone, a note has text
    operator = {"X-API-Key": KEYS["operator"]}
    for path, body in (("assign", {"comment": "x"}), ("note", {"comment": " "})):
        refused = httpx.post(f"{console.base}/v1/alerts/{alert.alert_id}/{path}",
                             headers=operator, json=body)
        assert refused.status_code == 422, refused.text


def test_a_stale_action_is_a_conflict_shown_not_applied(page: WebDriver,
                                                        console: Console) -> None:
    alert = make_alert("bt-north", Severity.LOW)
    console.write(alert)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    # another operator acknowledges version 1 first; this page still acts on version 1
    other = httpx.post(f"{console.base}/v1/alerts/{alert.alert_id}/ack",
                       headers={"X-API-Key": KEYS["operator"]},
                       json={"comment": "mine", "expected_version": 1})
    assert other.status_code == 200
    again = httpx.post(f"{console.base}/v1/alerts/{alert.alert_id}/resolve",
                       headers={"X-API-Key": KEYS["operator"]},
                       json={"comment": "late", "expected_version": 1})
    assert again.status_code == 409 and "version 2" in again.json()["detail"]
    result = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/v1/alerts/' + arguments[0] + '/resolve', {method: 'POST',
          headers: {'X-Requested-With': 'argus-console', 'Content-Type': 'application/json'},
          body: JSON.stringify({comment: 'x', expected_version: 1})})
        .then(r => r.json().then(b => done([r.status, b.detail])));""", alert.alert_id)
    assert result[0] == 409 and "changed" in result[1]
    stored, _ = console.stored(alert.alert_id)
    assert stored is not None and stored.state.value == "acknowledged"


def test_read_key_cannot_acknowledge(page: WebDriver, console: Console) -> None:
    alert = make_alert("bt-south", Severity.HIGH)
    console.write(alert)
    sign_in(page, console.base, "read")
    open_detail(page, alert.alert_id)
    assert page.find_elements(By.ID, "ack") == []
    page.find_element(By.TAG_NAME, "body").send_keys("a")  # the shortcut does nothing either
    status = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/v1/alerts/' + arguments[0] + '/ack', {method: 'POST',
          headers: {'X-Requested-With': 'argus-console'}}).then(r => done(r.status));""",
                                       alert.alert_id)
    assert status == 403
    assert httpx.post(f"{console.base}/v1/alerts/{alert.alert_id}/ack",
                      headers={"X-API-Key": KEYS["read"]}).status_code == 403
    stored, audit = console.stored(alert.alert_id)
    assert stored is not None and stored.state.value == "open"
    assert [e.action.value for e in audit] == ["evidence"]


def test_cookie_action_without_the_console_header_is_refused(page: WebDriver,
                                                            console: Console) -> None:
    alert = make_alert("bt-north", Severity.INFO)
    console.write(alert)
    sign_in(page, console.base, "operator")
    status = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/v1/alerts/' + arguments[0] + '/ack', {method: 'POST'})
          .then(r => done(r.status));""", alert.alert_id)
    assert status == 403
    stored, _ = console.stored(alert.alert_id)
    assert stored is not None and stored.state.value == "open"


def test_a_pin_filters_the_queue(page: WebDriver, console: Console) -> None:
    north = make_alert("bt-north", Severity.LOW)
    south = make_alert("bt-south", Severity.CRITICAL, age_s=30)
    console.write(north, south)
    sign_in(page, console.base, "read")
    row(page, north.alert_id)
    south_pin = '.pin[data-site="bt-south"]'
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, f"{south_pin} circle")
         .get_attribute("class") == "fill-critical")
    # no tile URL configured: the plain map, and Leaflet is never loaded
    assert page.find_element(By.ID, "map-pane").get_attribute("data-mode") == "plain"
    assert not page.execute_script("return performance.getEntriesByType('resource')"
                                   ".some(e => e.name.includes('leaflet'))")
    assert httpx.get(f"{console.base}/v1/console/map", headers={"X-API-Key": KEYS["read"]}
                     ).json() == {"tile_url": "", "attribution": ""}
    click(page, south_pin)
    wait(page, lambda d: "site=bt-south" in d.current_url)
    wait(page, lambda d: not d.find_elements(By.CSS_SELECTOR, f'.row[data-id="{north.alert_id}"]'))
    sites = {r.get_attribute("data-site") for r in rows(page)}
    assert sites == {"bt-south"}
    assert Select(page.find_element(By.ID, "f-site")).first_selected_option.text == "bt-south"
    screenshot(page, "map-filtered")
    # the filter is in the URL: a reload keeps it
    page.refresh()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, f'.row[data-id="{south.alert_id}"]'))
    assert {r.get_attribute("data-site") for r in rows(page)} == {"bt-south"}
    click(page, south_pin)
    wait(page, lambda d: "site=" not in d.current_url)
    row(page, north.alert_id)


def test_queue_order_filters_keyboard_and_site_time(page: WebDriver, console: Console) -> None:
    rule = f"order-{uuid.uuid4().hex[:6]}"
    older_critical = make_alert("bt-north", Severity.CRITICAL, rule=rule, age_s=120)
    newer_high = make_alert("bt-north", Severity.HIGH, rule=rule, age_s=10)
    newest_low = make_alert("bt-south", Severity.LOW, rule=rule, camera="cam-x")
    console.write(older_critical, newer_high, newest_low)
    sign_in(page, console.base, "operator", f"?rule={rule}")
    wait(page, lambda d: len(rows(d)) == 3)
    ids = [r.get_attribute("data-id") for r in rows(page)]
    assert ids == [older_critical.alert_id, newer_high.alert_id, newest_low.alert_id]
    body = page.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    wait(page, lambda d: "selected" in classes(rows(d)[0]))
    body.send_keys("j")
    wait(page, lambda d: "selected" in classes(rows(d)[1]))
    body.send_keys("k")
    wait(page, lambda d: "selected" in classes(rows(d)[0]))
    body.send_keys("a")
    wait(page, lambda d: rows(d)[0].get_attribute("data-state") == "acknowledged")
    stored, _ = console.stored(older_critical.alert_id)
    assert stored is not None and stored.acknowledged_by == "ops-anna"
    # times in the site's zone: Paris (CET/CEST) for north, New York (EST/EDT) for south
    assert any(z in rows(page)[0].text for z in ("CET", "CEST", "GMT+1", "GMT+2"))
    assert any(z in rows(page)[2].text for z in ("EST", "EDT", "GMT-5", "GMT-4"))
    Select(page.find_element(By.ID, "f-camera")).select_by_value("cam-x")
    wait(page, lambda d: len(rows(d)) == 1)
    assert "camera=cam-x" in page.current_url and f"rule={rule}" in page.current_url
    page.get(f"{console.base}/console?rule={rule}&severity=high")
    wait(page, lambda d: [r.get_attribute("data-id") for r in rows(d)] == [newer_high.alert_id])
    # the time range: the critical one was last seen 2 min ago, the others within it
    page.get(f"{console.base}/console?rule={rule}&since=15m")
    wait(page, lambda d: len(rows(d)) == 3)
    old_one = make_alert("bt-north", Severity.HIGH, rule=rule, age_s=3600 + 60)
    console.write(old_one)
    page.get(f"{console.base}/console?rule={rule}&since=1h")
    wait(page, lambda d: len(rows(d)) == 3)
    assert old_one.alert_id not in {r.get_attribute("data-id") for r in rows(page)}
    Select(page.find_element(By.ID, "f-since")).select_by_value("24h")
    wait(page, lambda d: len(rows(d)) == 4)
    assert "since=24h" in page.current_url


def test_evidence_shows_the_snapshot_with_faces_pixelated(page: WebDriver,
                                                          console: Console) -> None:
    jpeg = (console.settings.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    ref = snapshot_ref(f"cam-bt-{uuid.uuid4().hex[:6]}", 9)
    console.keep_snapshot(ref, jpeg)
    box = Box(x1=0.2, y1=0.1, x2=0.6, y2=0.9)
    alert = make_alert("bt-north", Severity.HIGH, snapshot=ref, camera="bt-cam-gate", box=box,
                       camera_zone="gate-area")
    console.write(alert)
    sign_in(page, console.base, "read")
    open_detail(page, alert.alert_id)
    image = page.find_element(By.CSS_SELECTOR, "#detail img.snapshot")
    wait(page, lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image), timeout=30)
    # the detection box and the camera zone (topology.yaml) drawn over the snapshot
    drawn = page.find_element(By.CSS_SELECTOR,
                              f'#detail .overlay rect.box[data-event="vid-{alert.alert_id}"]')
    zone = page.find_element(By.CSS_SELECTOR,
                             '#detail .overlay polygon.zone[data-zone="gate-area"]')
    assert zone.get_attribute("points") == "0.1,0.5 0.9,0.5 0.9,0.95 0.1,0.95"
    frame, rect = (page.execute_script("const r = arguments[0].getBoundingClientRect();"
                                       "return [r.x, r.y, r.width, r.height];", el)
                   for el in (image, drawn))
    expected = [frame[0] + box.x1 * frame[2], frame[1] + box.y1 * frame[3],
                (box.x2 - box.x1) * frame[2], (box.y2 - box.y1) * frame[3]]
    assert rect == pytest.approx(expected, abs=3), (rect, expected)
    assert "missing" not in (image.get_attribute("class") or "")
    blurred = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => done([r.status, r.headers.get('X-Argus-Faces-Blurred')]));""",
                                        image.get_attribute("src"))
    assert blurred == [200, "2"]  # no watchlist match kept: both faces pixelated
    timeline = page.find_element(By.CSS_SELECTOR, "#detail .timeline").text
    assert f"sensor event pir-{alert.alert_id}" in timeline
    assert f"video event vid-{alert.alert_id}" in timeline
    page.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
    screenshot(page, "evidence")
    # a live update redraws the detail but keeps the image: no second face-model pass
    db = redis.Redis.from_url(console.settings.redis_url, decode_responses=True)

    def views() -> int:
        entries: list[tuple[str, dict[str, str]]] = db.xrange(SNAPSHOT_AUDIT)  # type: ignore[assignment]
        return sum(1 for _, fields in entries if fields["ref"] == ref)
    seen = views()
    console.write(alert.model_copy(update={"version": 2, "count": 2}))
    wait(page, lambda d: d.find_element(By.ID, "detail-version").text == "2")
    assert image.get_attribute("alt")  # the same element, still in the page
    time.sleep(0.5)
    assert views() == seen


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1920, 1080)])
def test_layout_has_no_horizontal_overflow(page: WebDriver, console: Console, width: int,
                                           height: int) -> None:
    alert = make_alert("bt-south", Severity.CRITICAL, rule="a-rule-with-a-rather-long-name")
    console.write(alert)
    page.set_window_size(width, height)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    inner = page.execute_script("return window.innerWidth")
    assert abs(inner - width) < 40, inner  # the window really is that wide
    widths = page.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    queue = page.find_element(By.ID, "queue").rect
    assert queue["x"] >= 0 and queue["x"] + queue["width"] <= widths[1] + 1
    screenshot(page, f"console-{width}x{height}")
