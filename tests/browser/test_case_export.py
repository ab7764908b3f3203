"""Case export from the console: the zip an operator downloads verifies against its
``SHA256SUMS`` (here and with coreutils' ``sha256sum -c``), holds the alert, timeline,
audit trail and the evidence image with faces pixelated, and the export is audited with
the zip's own SHA-256. A read key may not export."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import uuid
import zipfile
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from argus.inference.faces import snapshot_ref
from schemas.alerts import Evidence, Severity
from services.alert_api.export import AUDIT
from tests.browser.conftest import KEYS, Console, sign_in, wait
from tests.browser.test_console import click, make_alert, open_detail
from tests.integration.test_snapshots import faces_of

pytestmark = pytest.mark.integration

DOWNLOAD = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(async (r) => {
  const bytes = new Uint8Array(await r.arrayBuffer());
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  done([r.status, r.headers.get('Content-Disposition'), btoa(text)]);
});
"""


def bad_files(data: bytes) -> list[str]:
    """The files of a case zip that do not match its SHA256SUMS, or that it does not list
    (empty: the zip verifies)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist()) - {"SHA256SUMS"}
        listed: dict[str, str] = {}
        for line in archive.read("SHA256SUMS").decode().splitlines():
            digest, name = line.split("  ", 1)
            listed[name] = digest
        bad = [n for n in sorted(names) if n not in listed]
        bad += [n for n, digest in listed.items()
                if n not in names or hashlib.sha256(archive.read(n)).hexdigest() != digest]
    return bad


def tampered(data: bytes, name: str) -> bytes:
    """The same zip with one byte of ``name`` changed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename == name:
                content = bytes([content[0] ^ 1]) + content[1:]
            dst.writestr(info, content)
    return out.getvalue()


def test_case_export_verifies_against_its_manifest(page: WebDriver, console: Console,
                                                   tmp_path: Path) -> None:
    jpeg = (console.settings.shared / "data" / "faces" / "deepface" / "couple.jpg").read_bytes()
    camera = f"cam-case-{uuid.uuid4().hex[:6]}"
    kept, expired = snapshot_ref(camera, 3), snapshot_ref(camera, 4)
    console.keep_snapshot(kept, jpeg)
    alert = make_alert("bt-north", Severity.CRITICAL, snapshot=kept)
    alert = alert.model_copy(update={"evidence": [*alert.evidence, Evidence(
        source="video", event_id=f"vid2-{alert.alert_id}", ts=alert.last_seen,
        camera_id=camera, snapshot_ref=expired)]})
    console.write(alert)
    sign_in(page, console.base, "operator")
    open_detail(page, alert.alert_id)
    click(page, "#ack")
    wait(page, lambda d: d.find_element(By.ID, "detail-state").text == "acknowledged")
    # the detail is redrawn after the acknowledgement (and when its camera's zones arrive):
    # read the link through wait(), which retries an element replaced meanwhile
    href = wait(page, lambda d: d.find_element(By.ID, "export").get_attribute("href"))
    assert href == f"{console.base}/v1/alerts/{alert.alert_id}/export"
    status, disposition, encoded = page.execute_async_script(DOWNLOAD, href)
    assert status == 200, status
    assert disposition == f'attachment; filename="case-{alert.alert_id}.zip"'
    data = base64.b64decode(encoded)

    assert bad_files(data) == []
    assert bad_files(tampered(data, "alert.json")) == ["alert.json"]  # the check can fail
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        image_name = f"evidence/frames.raw_{camera}_3.jpg"
        assert sorted(archive.namelist()) == sorted([
            "alert.json", "timeline.json", "audit.json", image_name, "export.json",
            "SHA256SUMS"])
        archive.extractall(tmp_path)
        case = {n: archive.read(n) for n in archive.namelist()}
    sha256sum = shutil.which("sha256sum")
    assert sha256sum is not None
    check = subprocess.run([sha256sum, "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0 and check.stdout.count(": OK") == 5, check.stdout

    stored, _ = console.stored(alert.alert_id)
    assert stored is not None
    assert json.loads(case["alert.json"]) == stored.model_dump(mode="json")
    audit = json.loads(case["audit.json"])
    assert [(e["action"], e["actor"]) for e in audit] == [("evidence", "engine"),
                                                          ("acknowledge", "ops-anna")]
    timeline = json.loads(case["timeline.json"])
    assert [t["kind"] for t in timeline] == ["sensor_event", "video_event", "video_event",
                                             "acknowledge"]
    meta = json.loads(case["export.json"])
    assert (meta["exported_by"], meta["version"], meta["missing_snapshots"]) == (
        "ops-anna", stored.version, [expired])
    assert meta["images"] == [{"ref": kept, "file": image_name, "faces_pixelated": 2}]
    image = cv2.imdecode(np.frombuffer(case[image_name], np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and original is not None and image.shape == original.shape
    # the face model finds both faces in the kept frame and none in the exported one
    assert len(faces_of(console.settings, jpeg)) == 2
    assert faces_of(console.settings, case[image_name]) == []

    # the export is audited with the SHA-256 of exactly the bytes handed over
    db = redis.Redis.from_url(console.settings.redis_url, decode_responses=True)
    rows: list[tuple[str, dict[str, str]]] = db.xrevrange(AUDIT, count=1)  # type: ignore[assignment]
    ((_, entry),) = rows
    assert (entry["alert_id"], entry["actor"], entry["action"]) == (
        alert.alert_id, "ops-anna", "case.export")
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()

    refused = httpx.get(href, headers={"X-API-Key": KEYS["read"]})
    assert refused.status_code == 403
    assert httpx.get(f"{console.base}/v1/alerts/no-such-alert/export",
                     headers={"X-API-Key": KEYS["operator"]}).status_code == 404
