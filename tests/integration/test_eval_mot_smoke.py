"""``argus eval mot`` in smoke mode: 100 PETS frames through the real pipeline
(grabber → Kafka → Triton detector → tracker → ``tracks``) and a floor on the accuracy.

Measured on 2026-11-22 (docs/tracking.md), all boxes: MOTA 0.759, IDF1 0.763 on these
frames with appearance re-identification (0.717 / 0.678 without it). The floors hold with
room for run-to-run noise, fail if re-identification stops reaching the tracker, and never
let a broken tracker pass (a tracker that re-numbers every frame scores
IDF1 < 0.1; no tracks at all, MOTA 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.settings import Settings
from tools.eval_mot import main

pytestmark = pytest.mark.integration

MOTA_FLOOR = 0.68
IDF1_FLOOR = 0.70


def test_eval_mot_smoke(stack: Settings, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    pets = stack.shared / "data" / "pets09_s2l1"
    out = tmp_path / "mot.json"
    assert main(["--video", str(pets / "vtest.avi"), "--gt",
                 str(pets / "gt_frames_001_300.txt"), "--gt-scale", "0.625",
                 "--frames", "1-100", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["mode"], result["frames_evaluated"], result["fps"]) == ("pipeline", 100, 10.0)
    full = result["metrics"]["all boxes"]
    assert full["mota"] >= MOTA_FLOOR, full
    assert full["idf1"] >= IDF1_FLOOR, full
    assert full["precision"] >= 0.85 and full["recall"] >= 0.7, full
    assert full["num_switches"] <= 8 and full["num_unique_objects"] >= 5, full
    area = result["metrics"]["annotated area"]
    assert area["mota"] >= full["mota"] and area["recall"] == full["recall"]
    printed = capsys.readouterr().out
    assert "MOTA" in printed and "annotated area" in printed
