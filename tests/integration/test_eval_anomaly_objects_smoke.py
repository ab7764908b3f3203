"""``argus eval anomaly --method objects --smoke`` on the real UCSD Ped2 clips: the split
protocol (train 01,02,03 / test 04,05,06; 40 frames per clip around the normal/abnormal
change), detector and tracker run on every frame (no detection cache), with an AUC floor.
The smoke run reaches a pooled AUC of 95.3 % on the development machine; the full split
98.7 % (docs/anomaly.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from argus.settings import get_settings
from tools.eval_anomaly import main

pytestmark = pytest.mark.integration


def test_objects_smoke_split_reports_auc_rates_and_reasons(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = get_settings().shared / "data" / "ucsd_ped2"
    out = tmp_path / "report.json"
    started = time.perf_counter()
    code = main(["--frames", str(root / "frames"), "--labels", str(root / "frame_labels.csv"),
                 "--method", "objects", "--train-clips", "01,02,03", "--test-clips",
                 "04,05,06", "--smoke", "--no-cache", "--json", str(out)])
    elapsed = time.perf_counter() - started
    assert code == 0
    assert elapsed < 60
    printed = capsys.readouterr().out
    assert "protocol split: train 01,02,03 -> test 04,05,06" in printed
    assert "| overall | 120 | 60 |" in printed
    report = json.loads(out.read_text())
    assert report["method"] == "objects" and "split A" in report["parameter_choices"]
    assert isinstance(report["detect_ms_per_frame"], float)  # detected, not cached
    split = report["protocols"]["split"]
    assert split["train_clips"] == ["01", "02", "03"]
    assert [row["clip"] for row in split["clips"]] == ["04", "05", "06"]
    overall = split["overall"]
    assert overall["auc"] >= 0.88
    assert overall["false_alarm_rate"] <= 0.1
    assert overall["events"] == 3 and overall["detected"] == 3
    training = split["training"][0]
    assert training["threshold"] > 0 and training["objects"] > 100
    # the flagged frames say which object and attribute made them unusual
    assert training["examples"], "no flagged frame explained"
    for example in training["examples"]:
        assert example["group"] in {"class", "shape", "motion"}
        assert len(example["box"]) == 4 and example["reason"]
    assert any("normal" in e["reason"] for e in training["examples"])
