"""``argus eval anomaly --smoke`` on the real UCSD Ped2 clips: a short leave-one-clip-out
run (40 frames per clip around the normal/abnormal change) with an AUC floor. The full
evaluation (docs/anomaly.md) reaches a pooled frame AUC of 98.3 %; the smoke windows keep
the hardest frames (objects entering), so its floor is lower."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from argus.settings import get_settings
from tools.eval_anomaly import main

pytestmark = pytest.mark.integration


def test_smoke_evaluation_reports_auc_and_rates(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = get_settings().shared / "data" / "ucsd_ped2"
    out = tmp_path / "report.json"
    started = time.perf_counter()
    code = main(["--frames", str(root / "frames"), "--labels", str(root / "frame_labels.csv"),
                 "--json", str(out), "--smoke"])
    elapsed = time.perf_counter() - started
    assert code == 0
    assert elapsed < 60
    printed = capsys.readouterr().out
    assert "| overall | 240 |" in printed and "protocol loco" in printed
    report = json.loads(out.read_text())
    assert report["smoke"] is True and list(report["protocols"]) == ["loco"]
    loco = report["protocols"]["loco"]
    assert [row["clip"] for row in loco["clips"]] == ["01", "02", "03", "04", "05", "06"]
    overall = loco["overall"]
    assert overall["frames"] == 240 and overall["abnormal"] == 136
    assert overall["auc"] >= 0.88
    assert overall["mean_clip_auc"] >= 0.9
    assert overall["false_alarm_rate"] <= 0.15
    assert overall["tp"] + overall["fp"] + overall["fn"] + overall["tn"] == 240
    assert 0.0 < overall["accuracy"] <= 1.0
    for row, training in zip(loco["clips"], loco["training"], strict=True):
        assert row["threshold"] == pytest.approx(training["threshold"]) and row["threshold"] > 0
