"""Object-centric anomaly scoring (argus/anomaly_objects.py): attributes, per-group k-NN,
calibration, explanations, the model's round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from argus.anomaly_objects import (
    FEATURES,
    CentreHistory,
    ObjectModel,
    ObjectParams,
    causal_mean,
    fit_group,
    fit_model,
    object_features,
)
from pipelines.stages.anomaly.features import causal_smooth


def col(row: np.ndarray, name: str) -> float:
    return float(row[FEATURES.index(name)])


@pytest.mark.parametrize(("box", "velocity", "expected"), [
    # 360x240 image; a 48 px tall, 24 px wide box moving 48 px/s right: 1 height/s
    ((0.4, 0.4, 0.4 + 24 / 360, 0.6), (48 / 360, 0.0),
     {"height": 0.2, "aspect": 0.5, "speed": 1.0, "vx": 1.0, "vy": 0.0, "partial": 0.0,
      "cx": 0.4 + 12 / 360, "cy": 0.5}),
    # moving down 24 px/s (0.5 height/s) and left 18 px/s -> speed hypot(0.375, 0.5)
    ((0.4, 0.4, 0.4 + 24 / 360, 0.6), (-18 / 360, 24 / 240),
     {"speed": 0.625, "vx": -0.375, "vy": 0.5, "partial": 0.0}),
    # touching the left border: partly visible
    ((0.0, 0.4, 0.05, 0.6), (0.0, 0.0), {"partial": 1.0, "speed": 0.0}),
    ((0.5, 0.5, 0.6, 0.995), (0.0, 0.0), {"partial": 1.0}),
])
def test_object_features(box: tuple[float, ...], velocity: tuple[float, float],
                         expected: dict[str, float]) -> None:
    row = object_features(box, 0, velocity, 360, 240, change=7.0)
    assert row.shape == (len(FEATURES),)
    assert col(row, "class") == 0 and col(row, "change") == 7.0
    for name, value in expected.items():
        assert col(row, name) == pytest.approx(value), name


@pytest.mark.parametrize(("centres", "expected"), [
    ([0.1], (0.0, 0.0)),  # first sighting: no velocity
    ([0.1, 0.2, 0.3], (1.0, 0.0)),  # 0.1 per 0.1 s
    ([0.1, 0.2, 0.6, 0.7, 0.8], (1.0, 0.0)),  # one jump (switch to a neighbour) ignored
    ([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4], (1.0, 0.0)),  # only the last 5 steps
])
def test_centre_history_median_velocity(centres: list[float],
                                        expected: tuple[float, float]) -> None:
    history = CentreHistory(frames=5)
    for i, x in enumerate(centres):
        v = history.velocity(7, (x - 0.01, 0.5, x + 0.01, 0.6), i * 0.1)
    assert v == pytest.approx(expected)


def test_causal_mean_is_the_stage_smoothing() -> None:
    scores = np.array([0.0, 3.0, 1.0, 5.0, 2.0, 2.0, 9.0])
    assert causal_mean(scores, 3).tolist() == pytest.approx([0.0, 1.5, 4 / 3, 3.0, 8 / 3, 3.0,
                                                             13 / 3])
    assert causal_mean(scores, 5) == pytest.approx(causal_smooth(scores, 5))


def walker(speed: float, height: float = 0.2, class_id: int = 0, x: float = 0.4
           ) -> np.ndarray:
    """A fully visible object of ``height`` moving at ``speed`` heights/s."""
    h_px = height * 240
    box = (x, 0.4, x + 0.5 * h_px / 360, 0.4 + height)
    return object_features(box, class_id, (speed * h_px / 360, 0.0), 360, 240)


def normal_clips(seed: int = 0) -> list[list[np.ndarray]]:
    """Three clips of 40 frames with 4 walkers each (speed ~1, height ~0.2)."""
    rng = np.random.default_rng(seed)
    return [[np.stack([walker(rng.normal(1.0, 0.1), rng.normal(0.2, 0.01),
                              x=float(rng.uniform(0.1, 0.8))) for _ in range(4)])
             for _ in range(40)] for _ in range(3)]


def test_group_distances_and_reasons() -> None:
    rows = np.stack([walker(s) for s in (0.8, 0.9, 1.0, 1.1, 1.2)])
    motion = fit_group("motion", ("speed",), rows, k=1)
    assert motion.distances(rows) == pytest.approx(np.zeros(5), abs=1e-6)
    # 1 std of these speeds is ~0.1414: a walker at 1.2 + 0.1414 is 1 std from the nearest
    far = motion.distances(walker(1.2 + float(np.std([0.8, 0.9, 1.0, 1.1, 1.2])))[None])
    assert far == pytest.approx([1.0], rel=1e-2)  # (std + 1e-3 in the scale)
    assert motion.reason(walker(3.1)) == "speed 3.1x normal"
    kind = fit_group("kind", ("class", "height"), rows, k=1, class_weight=3.0)
    bicycle = walker(1.0, class_id=1)
    assert kind.distances(bicycle[None]) == pytest.approx([3.0 * np.sqrt(2)], rel=1e-3)
    assert kind.reason(bicycle) == "class seen in 0 of 5 normal objects"
    assert kind.reason(walker(1.0, height=0.4)) == "size 2.0x normal"


@pytest.mark.parametrize(("frame", "group", "reason", "above"), [
    ([walker(1.0)], "motion", None, False),
    ([walker(1.0), walker(3.0)], "motion", "speed 3.0x normal", True),
    ([walker(1.0, class_id=1)], "class", "class seen in 0 of 480 normal objects", True),
    ([walker(1.0, height=0.45)], "shape", "size 2.2x normal", True),
])
def test_fit_model_scores_and_explains(frame: list[np.ndarray], group: str,
                                       reason: str | None, above: bool) -> None:
    model = fit_model(normal_clips(), ObjectParams())
    assert model.info["objects"] == 480 and model.info["frames"] == 120
    assert 0.1 < model.threshold <= 1.0  # held-out normals score <= 1 (norm = their max)
    score, why = model.score_frame(np.stack(frame))
    assert why is not None
    assert (score > 2 * model.threshold) is above
    if above:
        assert why.group == group and why.reason == reason
        assert why.index == len(frame) - 1  # the unusual object, not its neighbour


@pytest.mark.parametrize("norm_quantile", [1.0, 0.5])
def test_calibration_quantile(norm_quantile: float) -> None:
    """Each group's norm is the quantile of the held-out normal distances: with 1.0 (the
    default, their largest) no held-out normal object scores above 1, so neither does the
    threshold; a lower quantile scales every score up."""
    clips = normal_clips()
    params = ObjectParams(norm_quantile=norm_quantile, min_norm=1e-6)  # class: all 0
    model = fit_model(clips, params)
    held = []  # each clip's distances under groups fitted on the other two
    for i, clip in enumerate(clips):
        others = fit_model([c for j, c in enumerate(clips) if j != i], params)
        held.append(np.stack([np.concatenate([g.distances(r) for r in clip])
                              for g in others.groups], axis=1))
    expected = np.maximum(np.quantile(np.concatenate(held), norm_quantile, axis=0), 1e-6)
    assert [g.norm for g in model.groups] == pytest.approx(expected.tolist())
    if norm_quantile == 1.0:
        assert model.threshold <= 1.0
    else:
        assert model.threshold > fit_model(clips, ObjectParams(min_norm=1e-6)).threshold


def test_no_objects_scores_the_floor_and_round_trip() -> None:
    model = fit_model(normal_clips(), ObjectParams(floor=0.25, window=3))
    assert model.score_frame(np.zeros((0, len(FEATURES)))) == (0.25, None)
    again = ObjectModel.from_dict(json.loads(json.dumps(model.to_dict())))
    rows = np.stack([walker(1.0), walker(2.5), walker(1.0, class_id=2)])
    assert again.object_scores(rows) == pytest.approx(model.object_scores(rows), abs=1e-3)
    assert (again.threshold, again.window, again.floor) == (model.threshold, 3, 0.25)


@pytest.mark.parametrize(("clips", "message"), [
    ([[]], "at least two"),
    ([[np.zeros((0, len(FEATURES)))] * 5, [np.zeros((0, len(FEATURES)))] * 5],
     "normal objects"),
])
def test_fit_model_needs_normal_objects(clips: list[list[np.ndarray]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_model(clips)


def test_unknown_attribute_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown attributes"):
        fit_group("x", ("speed", "colour"), np.stack([walker(1.0)]))
    with pytest.raises(ValueError, match="not an object anomaly model"):
        ObjectModel.from_dict({"version": 1, "method": "flow"})
