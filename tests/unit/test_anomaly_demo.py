"""The demo's walkway camera (tools/anomaly_demo.py): what it does without its video, and
when a cached model is reused."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from argus.settings import Settings
from tools import anomaly_demo


def test_without_the_video_the_demo_goes_on(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGUS_TOPOLOGY", "")  # restored at the end
    monkeypatch.delenv("ARGUS_TOPOLOGY")
    monkeypatch.setenv("ARGUS_ANOMALY_METHOD", "flow")
    settings = Settings(stack_dir=tmp_path, shared=tmp_path / "shared",
                        cache_dir=tmp_path / "cache")
    out = io.StringIO()
    assert anomaly_demo.prepare(settings, out) is None
    assert out.getvalue().startswith("Anomaly: skipped (no video ")
    assert "ARGUS_TOPOLOGY" not in os.environ
    assert os.environ["ARGUS_ANOMALY_METHOD"] == "flow"  # untouched


def test_a_cached_model_is_reused_only_if_this_recipe_made_it(tmp_path: Path) -> None:
    clip, model = tmp_path / "walkway.avi", tmp_path / "cam-walkway.json"
    assert not anomaly_demo.cached_model_fits(model, clip)  # none yet
    info = {"source": {"video": str(clip), "end_s": anomaly_demo.NORMAL_S[1]},
            "tracker": dict(anomaly_demo.TRACKING)}
    model.write_text(json.dumps({"info": info}))
    assert anomaly_demo.cached_model_fits(model, clip)
    model.write_text(json.dumps({"info": {**info, "tracker": {"default_threshold": 0.5,
                                                                "new_track_margin": 0.2}}}))
    assert not anomaly_demo.cached_model_fits(model, clip)
    model.write_text(json.dumps({"info": {**info, "source": "frames/"}}))
    assert not anomaly_demo.cached_model_fits(model, clip)
    model.write_text("{")
    assert not anomaly_demo.cached_model_fits(model, clip)
