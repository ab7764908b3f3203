"""The embedded Prometheus scrapes Triton (and knows every Argus process as a target)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from argus.settings import Settings

pytestmark = pytest.mark.integration


def get(settings: Settings, path: str) -> dict[str, object]:
    url = f"http://127.0.0.1:{settings.prometheus_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
    return data


def test_prometheus_scrapes_triton(stack: Settings) -> None:
    jobs: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        targets = get(stack, "/api/v1/targets")["data"]["activeTargets"]  # type: ignore[index]
        jobs = {t["labels"]["job"]: t["health"] for t in targets}
        if jobs.get("triton") == "up":
            break
        time.sleep(1)
    assert jobs.get("triton") == "up", jobs
    assert {"argus-frame-grabber", "argus-worker", "argus-sensor-gateway"} <= set(jobs)
    result = get(stack, "/api/v1/query?query=nv_inference_request_success")
    series = result["data"]["result"]  # type: ignore[index]
    assert any(s["metric"].get("model") == "detector" for s in series)
