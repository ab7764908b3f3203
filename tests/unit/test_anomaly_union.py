"""Tables for the union of anomaly methods (tools/anomaly_union.py): a frame is flagged when
any method's smoothed score is above that method's own threshold; its score is the largest
score over its method's threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tools.anomaly_metrics import Clip, Selection
from tools.anomaly_union import (
    UnionMethod,
    combine,
    contribution_table,
    contributions,
    sum_contributions,
)


@pytest.mark.parametrize(("flow", "objects", "thresholds", "score", "flagged"), [
    # neither above its threshold; each ratio below 1
    ([0.5], [0.1], (1.0, 0.5), [0.5], [False]),
    # only flow above its own threshold (objects' larger raw score does not matter)
    ([2.0], [0.9], (1.0, 1.0), [2.0], [True]),
    # only objects: a small raw score over a small threshold
    ([0.5], [0.3], (1.0, 0.1), [3.0], [True]),
    # both above
    ([4.0], [0.6], (2.0, 0.2), [3.0], [True]),
    # exactly at a threshold is not above it (as each stage decides: score > threshold)
    ([1.0], [0.5], (1.0, 0.5), [1.0], [False]),
    # several frames, each decided on its own
    ([0.0, 3.0, 0.2, 1.0], [0.0, 0.1, 0.9, 0.4], (2.0, 0.5),
     [0.0, 1.5, 1.8, 0.8], [False, True, True, False]),
])
def test_combine(flow: list[float], objects: list[float], thresholds: tuple[float, float],
                 score: list[float], flagged: list[bool]) -> None:
    got, union, by = combine({"flow": np.array(flow), "objects": np.array(objects)},
                             {"flow": thresholds[0], "objects": thresholds[1]})
    assert got.tolist() == pytest.approx(score)
    assert union.tolist() == flagged
    assert (union == (by["flow"] | by["objects"])).all()
    assert ((got > 1.0) == union).all()


def test_combine_keeps_score_above_one_for_the_float_just_above_a_threshold() -> None:
    threshold = 0.1
    just_above = float(np.nextafter(threshold, 1.0))
    score, flagged, _ = combine({"a": np.array([just_above])}, {"a": threshold})
    assert flagged.tolist() == [True] and score[0] > 1.0


@pytest.mark.parametrize(("thresholds", "message"), [
    ({"flow": 1.0}, "thresholds of"),
    ({"flow": 1.0, "objects": 0.0}, "positive"),
    ({"flow": -1.0, "objects": 1.0}, "positive"),
])
def test_combine_rejects(thresholds: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        combine({"flow": np.zeros(2), "objects": np.zeros(2)}, thresholds)


@pytest.mark.parametrize(("flow", "objects", "labels", "expected"), [
    ([0, 0, 0], [0, 0, 0], [0, 1, 1],
     {"flagged_by": {"flow": 0, "objects": 0}, "only_by": {"flow": 0, "objects": 0},
      "false_alarms_by": {"flow": 0, "objects": 0}, "misses_by": {"flow": 2, "objects": 2},
      "flagged_by_all": 0}),
    ([1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1],
     {"flagged_by": {"flow": 2, "objects": 2}, "only_by": {"flow": 1, "objects": 1},
      "false_alarms_by": {"flow": 1, "objects": 0}, "misses_by": {"flow": 2, "objects": 1},
      "flagged_by_all": 1}),
    ([0, 1, 1], [1, 1, 1], [1, 1, 0],
     {"flagged_by": {"flow": 2, "objects": 3}, "only_by": {"flow": 0, "objects": 1},
      "false_alarms_by": {"flow": 1, "objects": 1}, "misses_by": {"flow": 1, "objects": 0},
      "flagged_by_all": 2}),
])
def test_contributions(flow: list[int], objects: list[int], labels: list[int],
                       expected: dict[str, Any]) -> None:
    assert contributions({"flow": np.array(flow), "objects": np.array(objects)},
                         np.array(labels)) == expected


def test_sum_contributions_and_table() -> None:
    rows = [{"clip": c, **contributions({"flow": np.array(f), "objects": np.array(o)},
                                        np.array([0, 1]))}
            for c, f, o in (("01", [1, 1], [0, 1]), ("02", [0, 0], [1, 1]))]
    total = sum_contributions(rows)
    assert total == {"flagged_by": {"flow": 2, "objects": 3},
                     "only_by": {"flow": 1, "objects": 2},
                     "false_alarms_by": {"flow": 1, "objects": 1},
                     "misses_by": {"flow": 1, "objects": 0}, "flagged_by_all": 1}
    table = contribution_table([*rows, {"clip": "overall", **total}])
    assert table[0] == ("| clip | flow flagged (false alarms) | flow only | "
                        "objects flagged (false alarms) | objects only | all |")
    assert table[-1] == "| overall | 2 (1) | 1 | 3 (1) | 2 | 1 |"


class _Fixed:
    """A method whose raw scores are given: one score per test frame."""

    def __init__(self, name: str, window: int, threshold: float,
                 scores: dict[str, list[float]]) -> None:
        self.name, self.window, self.threshold, self.scores = name, window, threshold, scores
        self.choices = f"{name}'s choices"
        self.tags: list[str] = []

    def prepare(self, clips: list[Clip]) -> dict[str, Any]:
        return {"feature_ms_per_frame": 1.5, "params": {"window": self.window}}

    def fit_score(self, train_sets: Selection, tests: Selection, workdir: Path, tag: str
                  ) -> tuple[list[np.ndarray], float, dict[str, Any]]:
        self.tags.append(tag)
        return ([np.array(self.scores[c.name])[index] for c, index in tests], self.threshold,
                {"threshold": self.threshold})


def test_union_method_smooths_each_part_with_its_own_window(tmp_path: Path) -> None:
    clip = Clip("01", [], np.arange(4), np.array([0, 0, 1, 1]))
    flow = _Fixed("flow", 1, 1.0, {"01": [0.0, 2.0, 0.0, 0.0]})
    objects = _Fixed("objects", 2, 0.5, {"01": [0.0, 0.0, 0.0, 2.0]})
    union = UnionMethod([flow, objects])
    assert union.name == "flow,objects" and "flow's choices" in union.choices
    assert union.prepare([clip])["feature_ms_per_frame"] == 3.0
    raw, threshold, info = union.fit_score([], [(clip, np.arange(4))], tmp_path, "split")
    assert flow.tags == ["split-flow"] and objects.tags == ["split-objects"]
    assert threshold == 1.0 and info["thresholds"] == {"flow": 1.0, "objects": 0.5}
    # flow unsmoothed: 0, 2, 0, 0; objects' 2-frame mean over 0.5: 0, 0, 0, 2
    assert info["smoothed"][0].tolist() == [0.0, 2.0, 0.0, 2.0]
    assert raw[0].tolist() == [0.0, 2.0, 0.0, 4.0]
    fields = info["row_fields"][0]
    assert fields["flagged_by"] == {"flow": 1, "objects": 1}
    assert fields["false_alarms_by"] == {"flow": 1, "objects": 0}


def test_union_needs_two_different_methods() -> None:
    one = _Fixed("flow", 1, 1.0, {})
    with pytest.raises(ValueError, match="two or more"):
        UnionMethod([one])
    with pytest.raises(ValueError, match="two or more"):
        UnionMethod([one, _Fixed("flow", 1, 1.0, {})])


@pytest.mark.parametrize("option", [["--window", "3"], ["--quantile", "0.9"],
                                    ["--margin", "1.1"]])
def test_cli_refuses_one_methods_parameter_for_the_union(
        option: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.eval_anomaly import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--frames", str(tmp_path), "--labels", str(tmp_path / "labels.csv"),
              "--method", "flow,objects", *option])
    assert exit_info.value.code == 2
    assert "runs each with its own" in capsys.readouterr().err
