"""``argus eval fall`` on URFD fall-01 through the real Triton detector, tracker, fall
detector and Triton pose model.

Measured on 2026-11-22 (docs/behaviours-fall.md): one ``fall`` event at frame 110, 0.9 s
after the fall onset (frame 83), in the labelled falling phase, no false fire. The test
asserts the event fires within the falling/lying frames (83-160), never before frame 83,
and only once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.settings import Settings
from tools.eval_fall import main

pytestmark = pytest.mark.integration


def test_eval_fall_smoke(stack: Settings, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    data = stack.shared / "data" / "urfd_fall"
    out = tmp_path / "fall.json"
    assert main(["--video", str(data / "fall-01-cam0.mp4"),
                 "--labels", str(data / "urfall-cam0-falls.csv"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["sequence"], result["frames"], result["fps"]) == ("fall-01", 160, 30.0)
    assert (result["fall_onset_frame"], result["lying_onset_frame"]) == (83, 113)
    assert result["labelled_frames"] == {"not lying": 82, "falling": 30, "lying": 48}
    assert result["detected"] is True
    assert 83 <= result["first_event_frame"] <= 160
    assert 0.0 <= result["delay_s"] <= (160 - 83) / 30
    assert result["false_fires"] == 0
    assert [e["frame"] >= 83 for e in result["events"]] == [True]  # one event, not early
    event = result["events"][0]
    assert event["label"] in (0, 1) and event["confidence"] >= 0.55
    assert event["torso_angle"] > 45 and event["snapshot"].startswith("eval:urfd-cam0:")
    assert result["fall_detector"]["events"] == 1 and result["pose_calls"]["calls"] >= 1
    printed = capsys.readouterr().out
    assert "detected=True" in printed and "fall-01" in printed
