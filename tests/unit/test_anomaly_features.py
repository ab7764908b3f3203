"""Pure logic of the anomaly model: cell features, smoothing, the k-NN bank and its ONNX
export, label handling and the evaluation metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.stages.anomaly.features import (
    ScoreSmoother,
    causal_smooth,
    cell_boxes,
    cell_features,
    feature_config,
    feature_names,
    load_scorer,
    working_size,
)
from tools.eval_anomaly import auc, rates, smoke_window
from tools.train_anomaly import (
    KnnParams,
    calibration_groups,
    clip_labels,
    export_onnx,
    fit_bank,
    knn_cell_scores,
    load_labels,
    normal_pairs,
    train,
)

CONFIG = feature_config(width=96, height=64, rows=4, cols=6)  # 16x16 pixel cells


def textured_pair(dx: int, dy: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A flat grey frame with a random-texture square at (24..40, 16..32), and the same
    frame with the square moved by (dx, dy) pixels."""
    rng = np.random.default_rng(7)
    patch = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    frames = []
    for ox, oy in ((0, 0), (dx, dy)):
        frame = np.full((64, 96), 128, np.uint8)
        frame[16 + oy:32 + oy, 24 + ox:40 + ox] = patch
        frames.append(frame)
    return frames[0], frames[1]


def test_features_of_a_still_pair_are_zero() -> None:
    a, _ = textured_pair(0)
    features = cell_features(a, a, CONFIG)
    assert features.shape == (24, len(feature_names()))
    assert features.dtype == np.float32
    assert np.abs(features).max() < 1e-3


@pytest.mark.parametrize("dx, min_speed, max_speed", [(2, 0.8, 3.0), (4, 2.0, 5.5)])
def test_a_moving_square_is_seen_in_its_cell(dx: int, min_speed: float,
                                             max_speed: float) -> None:
    a, b = textured_pair(dx)
    features = cell_features(a, b, CONFIG)
    names = feature_names()
    speed = features[:, names.index("moving_speed")]
    cell = int(np.argmax(features[:, names.index("flow_mean")]))
    row, col = divmod(cell, CONFIG.cols)
    assert (row, col) in {(1, 1), (1, 2)}  # the square spans x 24..40, y 16..32
    assert min_speed <= speed[cell] <= max_speed
    assert features[cell, names.index("diff_mean")] > 0.5
    far = [i for i in range(24) if divmod(i, CONFIG.cols)[0] == 3]  # the bottom row
    assert np.abs(features[far]).max() < 0.05


@pytest.mark.parametrize("size, expected", [
    ((360, 240), (360, 240)), ((1920, 1080), (360, 200)), ((640, 480), (360, 272)),
])
def test_working_size_keeps_the_aspect(size: tuple[int, int],
                                       expected: tuple[int, int]) -> None:
    assert working_size(*size) == expected


def test_cell_boxes_tile_the_image() -> None:
    boxes = cell_boxes(CONFIG)
    assert boxes.shape == (24, 4)
    assert boxes[0].tolist() == pytest.approx([0.0, 0.0, 1 / 6, 0.25])
    assert boxes[-1].tolist() == pytest.approx([5 / 6, 0.75, 1.0, 1.0])
    assert float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()) == (
        pytest.approx(1.0))


@pytest.mark.parametrize("scores, window, expected", [
    ([1.0, 3.0, 5.0, 7.0], 1, [1.0, 3.0, 5.0, 7.0]),
    ([1.0, 3.0, 5.0, 7.0], 2, [1.0, 2.0, 4.0, 6.0]),
    ([3.0, 3.0, 9.0], 3, [3.0, 3.0, 5.0]),
    ([], 5, []),
])
def test_causal_smooth(scores: list[float], window: int, expected: list[float]) -> None:
    assert causal_smooth(scores, window).tolist() == pytest.approx(expected)


def test_the_stage_smoother_matches_the_evaluation() -> None:
    values = np.random.default_rng(1).random(40)
    smoother = ScoreSmoother(5)
    assert [smoother.push(v) for v in values] == pytest.approx(causal_smooth(values, 5).tolist())


@pytest.mark.parametrize("labels, expected", [
    ([0, 0, 0], [1, 2]), ([1, 0, 0, 1, 0], [2]), ([1, 1], []), ([0], []),
])
def test_normal_pairs_skip_any_abnormal_frame(labels: list[int], expected: list[int]) -> None:
    assert normal_pairs(np.array(labels)).tolist() == expected


@pytest.mark.parametrize("labels, size, expected", [
    ([0] * 10 + [1] * 10, 4, [8, 9, 10, 11]),
    ([1] * 5 + [0] * 3, 4, [3, 4, 5, 6]),
    ([0, 1], 10, [0, 1]),
    ([1] * 30, 4, [0, 1, 2, 3]),
])
def test_smoke_window(labels: list[int], size: int, expected: list[int]) -> None:
    assert smoke_window(np.array(labels), size).tolist() == expected


@pytest.mark.parametrize("scores, labels, expected", [
    ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),
    ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ([0.5, 0.5, 0.5], [0, 1, 1], 0.5),
    ([0.1, 0.2], [0, 0], None),
])
def test_auc(scores: list[float], labels: list[int], expected: float | None) -> None:
    assert auc(scores, labels) == expected


@pytest.mark.parametrize("flagged, labels, accuracy, false_alarms, misses", [
    ([1, 1, 0, 0], [1, 1, 0, 0], 1.0, 0.0, 0.0),
    ([0, 0, 1, 1], [1, 1, 0, 0], 0.0, 1.0, 1.0),
    ([1, 0, 1, 0], [1, 1, 0, 0], 0.5, 0.5, 0.5),
    ([1, 1], [1, 1], 1.0, None, 0.0),
])
def test_rates(flagged: list[int], labels: list[int], accuracy: float,
               false_alarms: float | None, misses: float | None) -> None:
    r = rates(np.array(flagged), np.array(labels))
    assert (r["accuracy"], r["false_alarm_rate"], r["miss_rate"]) == (
        accuracy, false_alarms, misses)


def test_labels_match_clip_names_without_leading_zeros(tmp_path: Path) -> None:
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("clip,frame_idx0,frame_num1,abnormal\n01,0,1,0\n01,1,2,1\n2,0,1,1\n")
    labels = load_labels(csv_file)
    assert clip_labels(labels, "1", 2).tolist() == [0, 1]
    assert clip_labels(labels, "02", 1).tolist() == [1]
    with pytest.raises(KeyError):
        clip_labels(labels, "01", 3)
    with pytest.raises(KeyError):
        clip_labels(labels, "07", 1)


def synthetic_normal(frames: int, seed: int) -> np.ndarray:
    """[frames, cells, 5] slow, small motion everywhere (a "normal" camera)."""
    rng = np.random.default_rng(seed)
    return (rng.random((frames, CONFIG.cells, 5)) * 0.5).astype(np.float32)


@pytest.mark.parametrize("groups, expected", [([30], 5), ([10, 12], 2), ([10, 0, 12], 2)])
def test_calibration_groups(groups: list[int], expected: int) -> None:
    parts = calibration_groups([synthetic_normal(n, i) for i, n in enumerate(groups)])
    assert len(parts) == expected
    assert sum(len(p) for p in parts) == sum(groups)


def test_the_onnx_graph_scores_like_numpy(tmp_path: Path) -> None:
    params = KnnParams(window=3)
    groups = [synthetic_normal(40, seed) for seed in range(3)]
    model, threshold, stats = train(groups, CONFIG, params)
    assert stats["bank"] == len(model.bank) and stats["frames"] == 120
    assert 0.0 < threshold < 5.0
    normal = synthetic_normal(4, seed=9)
    unusual = normal.copy()
    unusual[:, 5] = 6.0  # one cell moves far faster than anything seen
    queries = np.concatenate([normal, unusual])
    path = tmp_path / "cam.onnx"
    export_onnx(model, CONFIG, threshold, params, path)
    scorer = load_scorer(str(path))
    frame_scores, cell_scores = scorer.score_features(queries, chunk=3)
    expected = knn_cell_scores(model, queries)
    assert cell_scores == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert frame_scores == pytest.approx(expected.max(axis=1), rel=1e-3, abs=1e-3)
    assert (frame_scores[4:] > 5 * threshold).all()
    assert (frame_scores[:4] < threshold * 1.5).all()
    assert cell_scores[4:].argmax(axis=1).tolist() == [5] * 4
    assert scorer.info.threshold == pytest.approx(threshold)
    assert scorer.info.window == 3
    assert scorer.config == CONFIG


def test_the_bank_is_deduplicated_and_capped() -> None:
    features = np.zeros((50, CONFIG.cells, 5), np.float32)  # a camera where nothing moves
    model = fit_bank(features, CONFIG, KnnParams())
    # 1200 identical cells: at most one row per (quantised) cell position
    assert model.stats["cells"] == 1200 and 1 <= len(model.bank) <= CONFIG.cells
    many = synthetic_normal(200, 3) * 40
    capped = fit_bank(many, CONFIG, KnnParams(max_bank=500))
    assert len(capped.bank) == 500 and capped.stats["unique"] > 500
