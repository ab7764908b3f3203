"""``python -m services.alert_api`` as a real uvicorn process on the real Redis and
Kafka: health, readiness, metrics, docs, and the Server-Sent Events live feed."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from argus.settings import REPO_ROOT, Settings
from schemas.alerts import Severity
from tests.conftest import free_port
from tests.integration.test_alert_api import PARIS, make_alert, seed

pytestmark = pytest.mark.integration

READ_KEY = secrets.token_urlsafe(24)
OPERATOR_KEY = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def server(stack: Settings) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, **stack.to_env(),
           "ARGUS_API_KEYS": f"wall:{READ_KEY}:read,bob:{OPERATOR_KEY}:operator"}
    log_path = stack.stack_dir / f"test-alert-api-{stack.app_id}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.alert_api", "--port",
                                 str(port)], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        # uvicorn shuts down cleanly, then re-raises the signal it caught (status -15)
        assert proc.wait(15) in (0, -signal.SIGTERM), log_path.read_text()[-3000:]
        assert "Application shutdown complete." in log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of a Server-Sent Events stream (comments skipped)."""
    event, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif not line and data:
            yield event, data
            event, data = "message", ""


def test_health_ready_metrics_docs(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/readyz")
    assert (ready.status_code, ready.json()["redis"]) == (200, "ok")
    assert httpx.get(f"{server}/docs").status_code == 200
    assert httpx.get(f"{server}/v1/alerts").status_code == 401
    metrics = httpx.get(f"{server}/metrics").text
    assert 'argus_alert_api_requests_total{method="GET",route="/v1/alerts",status="401"} 1.0' \
        in metrics


def test_sse_feed_gets_the_acknowledgement(server: str, stack: Settings) -> None:
    alert = make_alert(f"sse-{uuid.uuid4().hex[:6]}", "sse-site", Severity.CRITICAL, PARIS)
    seed(stack, alert)
    with httpx.Client(timeout=10) as http, http.stream(
            "GET", f"{server}/v1/alerts/stream",
            params={"site": "sse-site", "api_key": READ_KEY}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        feed = events(stream.iter_lines())
        kind, data = next(feed)
        assert kind == "snapshot" and alert.alert_id in data
        started = time.monotonic()
        acked = http.post(f"{server}/v1/alerts/{alert.alert_id}/ack",
                          headers={"X-API-Key": OPERATOR_KEY}, json={"comment": "seen"})
        assert acked.status_code == 200
        kind, data = next(feed)
        assert kind == "change"
        change = httpx.Response(200, content=data).json()
        assert (change["alert"]["alert_id"], change["alert"]["state"],
                change["alert"]["acknowledged_by"]) == (alert.alert_id, "acknowledged", "bob")
        assert time.monotonic() - started < 3.0
