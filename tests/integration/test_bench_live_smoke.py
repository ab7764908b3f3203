"""``argus bench live`` in smoke mode (2 cameras, 20 s): it completes and reports every
field. Not a timing assertion: the verdict may be either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.settings import Settings
from tools.bench_live import main
from tools.bench_measure import LATENCY_PATHS

pytestmark = pytest.mark.integration

PROCESSES = {"bench", "worker", "grabber", "gateway", "kafka", "redis", "triton",
             "other processes", "machine (all cores)"}


@pytest.mark.timeout(420)
def test_bench_live_smoke(stack: Settings, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "live.json"
    assert main(["--cameras", "2", "--fps", "5", "--duration", "20", "--warmup", "10",
                 "--json", str(out)]) == 0
    run = json.loads(out.read_text())
    assert {"date", "machine", "versions", "parameters", "window_s", "input_fps",
            "frames_published", "frames_dropped", "stages", "latency", "lag", "sensor",
            "alert_changes", "processes", "keeps_up", "verdict", "verdict_reasons"} <= set(run)
    assert {"cpu", "cores"} <= set(run["machine"])
    assert {"python", "kafka", "tritonserver"} <= set(run["versions"])
    assert run["parameters"]["cameras"] == 2 and run["input_fps"] > 0
    assert {"detect", "track", "zones", "behaviour", "correlate"} <= set(run["stages"])
    assert {"total", "by_reason"} <= set(run["frames_dropped"])
    assert set(run["latency"]) == set(LATENCY_PATHS)
    for figures in run["latency"].values():
        assert set(figures) == {"n", "p50_ms", "p95_ms", "p99_ms", "max_ms"}
    assert run["latency"]["detections"]["n"] > 0
    assert {"start", "end", "slope_per_s"} <= set(run["lag"])
    assert run["lag"]["start"]["total"] >= 0 and run["lag"]["end"]["total"] >= 0
    assert {"posted", "alerted"} <= set(run["sensor"]) and run["sensor"]["posted"] > 0
    assert set(run["processes"]) >= PROCESSES
    assert all({"cpu_pct", "rss_mib"} == set(v) for v in run["processes"].values())
    assert run["verdict"] in ("keeps up", "falls behind")
    assert "verdict:" in capsys.readouterr().out
