"""The detector's two output decoders (YOLOX, YOLOv8/YOLO11 export) and optional tiling
(``triton_models/detector/1/decoders.py``, re-exported by ``yolox.py``), on synthetic
tensors; the runner's input handling with a stub session and the real model."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from argus.modelcode import load_yolox_module
from argus.settings import Settings

yolox: ModuleType = load_yolox_module()
MODEL = Settings().shared / "models" / "yolox_nano.onnx"


def v8_output(rows: list[tuple[float, float, float, float, int, float]], classes: int = 3,
              anchors: int = 50) -> np.ndarray:
    """A YOLOv8 export output (1, 4+C, N) with the given (cx, cy, w, h, class, score)."""
    raw = np.zeros((1, 4 + classes, anchors), dtype=np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        raw[0, :4, i * 3] = (cx, cy, w, h)
        raw[0, 4 + cls, i * 3] = score
    return raw


@pytest.mark.parametrize(("shape", "ok"), [
    ((1, 84, 8400), True), ((84, 8400), True), ((1, 7, 10), True),
    ((2, 84, 8400), False),   # a batch
    ((1, 8400, 84), False),   # YOLOX-style (N, 85) layout: not a YOLOv8 export
    ((1, 4, 100), False),     # no class scores
])
def test_decode_yolov8_shapes(shape: tuple[int, ...], ok: bool) -> None:
    raw = np.zeros(shape, dtype=np.float32)
    if not ok:
        with pytest.raises(ValueError):
            yolox.decode_yolov8(raw)
        return
    boxes, scores = yolox.decode_yolov8(raw)
    assert boxes.shape == (shape[-1], 4) and scores.shape == (shape[-1], shape[-2] - 4)


# (cx, cy, w, h, class, score) in network pixels → kept (class, score, normalised box)
POSTPROCESS_TABLE = [
    pytest.param([(100, 50, 20, 40, 1, 0.9)],
                 [(1, 0.9, (0.45, 0.2, 0.55, 70 / 150))], id="one box, mapped back"),
    pytest.param([(100, 50, 20, 40, 1, 0.9), (102, 51, 20, 40, 1, 0.8)],
                 [(1, 0.9, (0.45, 0.2, 0.55, 70 / 150))], id="NMS drops the duplicate"),
    pytest.param([(100, 50, 20, 40, 1, 0.9), (102, 51, 20, 40, 2, 0.8)],
                 [(1, 0.9, (0.45, 0.2, 0.55, 70 / 150)),
                  (2, 0.8, (0.46, 31 / 150, 0.56, 71 / 150))], id="NMS is per class"),
    pytest.param([(100, 50, 20, 40, 0, 0.05)], [], id="below the score floor"),
    pytest.param([(195, 145, 30, 30, 0, 0.5)], [(0, 0.5, (0.9, 130 / 150, 1.0, 1.0))],
                 id="clipped to the image"),
]


@pytest.mark.parametrize(("rows", "expected"), POSTPROCESS_TABLE)
def test_postprocess_yolov8(rows: list[Any], expected: list[Any]) -> None:
    # network 208x208 for a 400x300 image: ratio 0.5 (original = network / 0.5)
    boxes, scores, classes = yolox.postprocess(v8_output(rows), 0.5, 400, 300, 0.1, 0.45,
                                               208, decoder="yolov8")
    assert len(scores) == len(expected)
    for box, score, cls, (want_cls, want_score, want_box) in zip(
            boxes, scores, classes, expected, strict=True):
        assert (int(cls), float(score)) == (want_cls, pytest.approx(want_score))
        np.testing.assert_allclose(box, want_box, atol=1e-5)


def test_both_decoders_agree_on_the_same_box() -> None:
    size, cls, score = 416, 2, 0.8
    # YOLOX: anchor (gx, gy) = (10, 5) of stride 8; x = (0.5 + 10) * 8 = 84, w = e^1 * 8
    raw_x = np.zeros((1, 3549, 85), dtype=np.float32)
    raw_x[0, 5 * 52 + 10, :5] = (0.5, 0.5, 1.0, 1.5, 1.0)
    raw_x[0, 5 * 52 + 10, 5 + cls] = score
    cx, cy, w, h = 84.0, 44.0, float(np.exp(1.0) * 8), float(np.exp(1.5) * 8)
    raw_v8 = v8_output([(cx, cy, w, h, cls, score)], classes=80, anchors=3549)
    a = yolox.postprocess(raw_x, 1.0, 416, 416, 0.3, 0.45, size, decoder="yolox")
    b = yolox.postprocess(raw_v8, 1.0, 416, 416, 0.3, 0.45, size, decoder="yolov8")
    for got_a, got_b in zip(a, b, strict=True):
        np.testing.assert_allclose(got_a, got_b, atol=1e-5)
    assert a[2].tolist() == [cls]


def test_unknown_decoder() -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        yolox.candidates(np.zeros((1, 7, 10)), 416, "detr")


@pytest.mark.parametrize(("tiles", "count"), [("1x1", 0), ("2x2", 4), ("3x1", 3), ("2X1", 2)])
def test_tile_windows_cover_the_image(tiles: str, count: int) -> None:
    windows = yolox.tile_windows(480, 360, tiles)
    assert len(windows) == count
    if windows:
        covered = np.zeros((360, 480), dtype=bool)
        for x0, y0, x1, y1 in windows:
            assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 360
            covered[y0:y1, x0:x1] = True
        assert covered.all()


@pytest.mark.parametrize("tiles", ["0x2", "2", "axb"])
def test_bad_tiles(tiles: str) -> None:
    with pytest.raises(ValueError):
        yolox.tile_windows(480, 360, tiles)


def test_merge_tiles() -> None:
    person = np.array([[0.1, 0.1, 0.2, 0.5]], dtype=np.float32)  # of the whole 400x300 image
    whole = (person, np.array([0.6], np.float32), np.array([0], np.int32))
    # tile (0, 0)-(240, 180): the same person (better score) and a box cut by the tile's
    # right edge (x2 = 239 px), which is a part of something bigger
    in_tile = np.array([[40 / 240, 30 / 180, 80 / 240, 150 / 180],
                        [200 / 240, 10 / 180, 239 / 240, 60 / 180]], dtype=np.float32)
    tile = (in_tile, np.array([0.8, 0.9], np.float32), np.array([0, 0], np.int32))
    boxes, scores, classes = yolox.merge_tiles(
        400, 300, [((0, 0, 400, 300), whole), ((0, 0, 240, 180), tile)], 0.45)
    assert scores.tolist() == [pytest.approx(0.8)] and classes.tolist() == [0]
    np.testing.assert_allclose(boxes[0], person[0], atol=1e-6)


class StubSession:
    """Records the input tensor and answers with a fixed output."""

    def __init__(self, output: np.ndarray) -> None:
        self.output = output
        self.inputs: list[np.ndarray] = []

    def run(self, _names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.inputs.extend(feeds.values())
        return [self.output]


@pytest.fixture(scope="module")
def runner() -> Any:
    return yolox.DetectorRunner(str(MODEL), score_threshold=0.3, nms_threshold=0.45,
                                size=None)


def test_runner_takes_the_input_size_from_the_model(runner: Any) -> None:
    assert runner.size == 416
    with pytest.raises(ValueError, match="416x416"):
        yolox.DetectorRunner(str(MODEL), size=640)
    with pytest.raises(ValueError, match="unknown decoder"):
        yolox.DetectorRunner(str(MODEL), decoder="detr")


def test_yolov8_input_is_rgb_zero_to_one(runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stub = StubSession(v8_output([(208, 156, 41.6, 104, 0, 0.9)], anchors=3549))
    monkeypatch.setattr(runner, "session", stub)
    monkeypatch.setattr(runner, "decoder", "yolov8")
    image = np.zeros((360, 480, 3), dtype=np.uint8)
    image[:] = (255, 0, 51)  # B, G, R
    boxes, scores, classes = runner.detect_image(image)
    tensor = stub.inputs[0]
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, :, 0, 0], [0.2, 0.0, 1.0], atol=1e-6)  # R, G, B
    np.testing.assert_allclose(tensor[0, :, 415, 0], [114 / 255] * 3, atol=1e-6)  # padding
    np.testing.assert_allclose(boxes[0], [0.45, 1 / 3, 0.55, 2 / 3], atol=1e-5)
    assert classes.tolist() == [0] and scores.tolist() == [pytest.approx(0.9)]


def test_tiling_finds_at_least_the_whole_image_people(runner: Any) -> None:
    cap = cv2.VideoCapture(str(Settings().shared / "data/pets09_s2l1/vtest.avi"))
    ok, image = cap.read()
    cap.release()
    assert ok
    whole = runner.detect_image(image)
    tiled = yolox.DetectorRunner(str(MODEL), score_threshold=0.3, tiles="2x2")
    boxes, scores, classes = tiled.detect_image(image)
    people = int(((whole[2] == 0) & (whole[1] >= 0.5)).sum())
    assert int(((classes == 0) & (scores >= 0.5)).sum()) >= people >= 3
    assert np.all((boxes >= 0) & (boxes <= 1))
