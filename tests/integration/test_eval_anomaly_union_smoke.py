"""``argus eval anomaly --method flow,objects --smoke`` on the real UCSD Ped2 clips: both
methods with their own parameters and thresholds, a frame flagged when either flags it (the
union the worker's ``ARGUS_ANOMALY_METHOD=flow,objects`` shows), on the split protocol
(train 01,02,03 / test 04,05,06; 40 frames per clip), detecting every frame (no cache). The
smoke run reaches a pooled AUC of 97.9 % with 3.3 % false alarms and 6.7 % misses on the
development machine; the full split 99.4 / 2.8 / 2.3 % (docs/anomaly.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from argus.settings import get_settings
from tools.eval_anomaly import main

pytestmark = pytest.mark.integration


def test_union_smoke_split_flags_what_either_method_flags(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = get_settings().shared / "data" / "ucsd_ped2"
    out = tmp_path / "report.json"
    started = time.perf_counter()
    code = main(["--frames", str(root / "frames"), "--labels", str(root / "frame_labels.csv"),
                 "--method", "flow,objects", "--train-clips", "01,02,03", "--test-clips",
                 "04,05,06", "--smoke", "--no-cache", "--json", str(out)])
    elapsed = time.perf_counter() - started
    assert code == 0
    assert elapsed < 60
    printed = capsys.readouterr().out
    assert "| overall | 120 | 60 |" in printed
    assert "| clip | flow flagged (false alarms) | flow only |" in printed
    report = json.loads(out.read_text())
    assert report["method"] == "flow,objects"
    assert set(report["parts"]) == {"flow", "objects"}
    split = report["protocols"]["split"]
    training = split["training"][0]
    thresholds = training["thresholds"]
    assert thresholds == {name: training["parts"][name]["threshold"]
                          for name in ("flow", "objects")}
    overall = split["overall"]
    assert overall["auc"] >= 0.9
    assert overall["false_alarm_rate"] <= 0.1
    assert overall["events"] == 3 and overall["detected"] == 3
    # the union flags a frame when either method does: its flags are the two methods' union
    flagged = overall["tp"] + overall["fp"]
    by, only = overall["flagged_by"], overall["only_by"]
    assert flagged == by["flow"] + by["objects"] - overall["flagged_by_all"]
    assert flagged == only["flow"] + only["objects"] + overall["flagged_by_all"]
    assert overall["fp"] <= overall["false_alarms_by"]["flow"] + overall[
        "false_alarms_by"]["objects"]
    assert overall["fn"] <= min(overall["misses_by"].values())
    for row in split["clips"]:
        assert row["threshold"] == 1.0 and row["thresholds"] == thresholds
