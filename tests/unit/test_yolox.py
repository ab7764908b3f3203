"""The detector's pre/post-processing (``triton_models/detector/1/yolox.py``) and its runner.

The pure functions are checked against hand-computed tables; ``DetectorRunner`` runs the real
YOLOX-nano model on a real PETS 2009 frame and is checked against the ground truth.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from argus.modelcode import load_yolox_module
from argus.settings import Settings

yolox: ModuleType = load_yolox_module()

SIZE = 416
PETS_SCALE = 0.625  # ground truth is in 768x576 pixels, the video is 480x360


# --- letterbox ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("height", "width", "ratio", "new_h", "new_w"),
    [
        (360, 480, 416 / 480, 312, 416),  # landscape (the PETS video)
        (640, 320, 416 / 640, 416, 208),  # portrait
        (100, 100, 4.16, 416, 416),  # square, upscaled, no padding
        (416, 416, 1.0, 416, 416),  # exact size
        (10, 20, 20.8, 208, 416),  # tiny landscape
        (1080, 1920, 416 / 1920, 234, 416),  # full HD
    ],
)
def test_letterbox_ratio_padding_and_colour(
    height: int, width: int, ratio: float, new_h: int, new_w: int
) -> None:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    tensor, got_ratio = yolox.letterbox(image, SIZE)
    assert tensor.shape == (1, 3, SIZE, SIZE)
    assert tensor.dtype == np.float32
    assert tensor.flags["C_CONTIGUOUS"]
    assert got_ratio == pytest.approx(ratio)
    content = tensor[0, :, :new_h, :new_w]
    assert np.all(content[0] == 10) and np.all(content[1] == 20) and np.all(content[2] == 30)
    assert np.all(tensor[0, :, new_h:, :] == 114)  # bottom padding
    assert np.all(tensor[0, :, :, new_w:] == 114)  # right padding


@pytest.mark.parametrize(
    ("height", "width", "shape"),
    [
        (360, 480, (320, 416)),  # PETS 4:3: 312 rows of image, padded to 320
        (432, 768, (256, 416)),  # the Intel clips, 16:9: 234 rows
        (1080, 1920, (256, 416)),  # full HD
        (640, 320, (416, 224)),  # portrait: 208 columns
        (100, 100, (416, 416)),  # square: as before
    ],
)
def test_letterbox_fit_pads_only_to_a_multiple_of_32(
    height: int, width: int, shape: tuple[int, int]
) -> None:
    image = np.full((height, width, 3), 7, dtype=np.uint8)
    fitted, ratio = yolox.letterbox(image, SIZE, fit=True)
    square, square_ratio = yolox.letterbox(image, SIZE)
    assert fitted.shape == (1, 3, *shape) and ratio == square_ratio
    # the same pixels where both have them: fit is a crop of the square input
    assert np.array_equal(fitted[0], square[0, :, :shape[0], :shape[1]])
    assert np.all(square[0, :, shape[0]:, :] == 114) and np.all(square[0, :, :, shape[1]:] == 114)


@pytest.mark.parametrize(("shape", "points"), [(416, 3549), ((256, 416), 2184),
                                               ((320, 416), 2730), ((416, 224), 1911)])
def test_anchor_grid_of_a_non_square_input(shape: int | tuple[int, int], points: int) -> None:
    raw = np.zeros((1, points, 85), dtype=np.float32)
    assert yolox.decode(raw, shape).shape == (points, 85)
    with pytest.raises(ValueError, match="raw output has"):
        yolox.decode(np.zeros((1, points + 1, 85), dtype=np.float32), shape)


@pytest.mark.parametrize(
    ("height", "width", "block"),
    [
        (360, 480, (250, 300, 400, 460)),  # y1, y2, x1, x2 of a white block
        (640, 320, (10, 60, 200, 300)),
        (200, 200, (0, 50, 150, 200)),
    ],
)
def test_letterbox_places_content_top_left_scaled(
    height: int, width: int, block: tuple[int, int, int, int]
) -> None:
    y1, y2, x1, x2 = block
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[y1:y2, x1:x2] = 255
    tensor, ratio = yolox.letterbox(image, SIZE)
    ys, xs = np.nonzero(tensor[0, 0] > 127)
    # the block's bounds land at ratio * the original bounds (within a pixel of resampling)
    assert ys.min() == pytest.approx(y1 * ratio, abs=1.5)
    assert ys.max() + 1 == pytest.approx(y2 * ratio, abs=1.5)
    assert xs.min() == pytest.approx(x1 * ratio, abs=1.5)
    assert xs.max() + 1 == pytest.approx(x2 * ratio, abs=1.5)


@pytest.mark.parametrize(("height", "width"), [(432, 768), (360, 480), (640, 320), (50, 50)])
def test_letterbox_equals_the_padded_uint8_reference(height: int, width: int) -> None:
    """The float planes are written directly; the values are exactly those of the padded
    uint8 image, transposed and converted."""
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    tensor, ratio = yolox.letterbox(image, SIZE)
    new_w, new_h = min(SIZE, round(width * ratio)), min(SIZE, round(height * ratio))
    padded = np.full((SIZE, SIZE, 3), 114, dtype=np.uint8)
    padded[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(tensor, padded.transpose(2, 0, 1)[None].astype(np.float32))


def test_letterbox_rejects_non_bgr() -> None:
    with pytest.raises(ValueError):
        yolox.letterbox(np.zeros((10, 10), dtype=np.uint8), SIZE)


# --- nms -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("boxes", "scores", "iou_threshold", "keep"),
    [
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], 0.45, [0]),  # heavy overlap
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.6, 0.8], 0.45, [1]),  # the better one wins
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.9], 0.45, [1, 0]),  # disjoint: by score
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.45, [0, 1]),  # IoU 1/3 kept
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.30, [0]),  # IoU 1/3 suppressed
        # chain: A suppresses B, C only overlaps B, so C survives (greedy)
        ([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7], 0.3, [0, 2]),
        ([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.1, 0.3, 0.2], 0.45, [1]),
        (np.zeros((0, 4)), np.zeros((0,)), 0.45, []),
    ],
)
def test_nms(boxes: Any, scores: Any, iou_threshold: float, keep: list[int]) -> None:
    got = yolox.nms(np.asarray(boxes, dtype=np.float32), np.asarray(scores), iou_threshold)
    assert got.dtype == np.int32
    assert got.tolist() == keep


@pytest.mark.parametrize(
    ("classes", "keep"),
    [
        ([0, 0], [0]),  # same class: the duplicate goes
        ([0, 2], [0, 1]),  # different classes never suppress each other
        ([3, 3], [0]),
    ],
)
def test_batched_nms_is_class_aware(classes: list[int], keep: list[int]) -> None:
    boxes = np.array([[0, 0, 10, 10], [0.5, 0.5, 10.5, 10.5]], dtype=np.float32)
    got = yolox.batched_nms(boxes, np.array([0.9, 0.8]), np.array(classes), 0.45)
    assert got.tolist() == keep


# --- decode --------------------------------------------------------------------------------

def _index(stride: int, gx: int, gy: int, size: int = SIZE) -> int:
    """Row of the anchor point (gx, gy) of a stride in the raw output."""
    offset = 0
    for s in yolox.STRIDES:
        cells = size // s
        if s == stride:
            return offset + gy * cells + gx
        offset += cells * cells
    raise AssertionError(stride)


def test_decode_point_count() -> None:
    assert yolox.decode(np.zeros((1, 3549, 85), np.float32)).shape == (3549, 85)
    assert yolox.decode(np.zeros((525, 85), np.float32), size=160).shape == (525, 85)


@pytest.mark.parametrize(
    ("stride", "gx", "gy", "raw_xywh", "expected"),
    [
        (8, 0, 0, (0, 0, 0, 0), (0, 0, 8, 8)),
        (8, 3, 2, (0, 0, 0, 0), (24, 16, 8, 8)),
        (8, 3, 2, (0.5, 0.25, math.log(2), 0), (28, 18, 16, 8)),
        (8, 51, 51, (0, 0, 0, 0), (408, 408, 8, 8)),
        (16, 0, 0, (0, 0, 0, 0), (0, 0, 16, 16)),
        (16, 5, 1, (1, -1, 0, math.log(3)), (96, 0, 16, 48)),
        (32, 12, 12, (0, 0, 0, 0), (384, 384, 32, 32)),
        (32, 1, 7, (0.5, 0.5, math.log(4), math.log(0.5)), (48, 240, 128, 16)),
    ],
)
def test_decode_grid_and_stride(
    stride: int,
    gx: int,
    gy: int,
    raw_xywh: tuple[float, float, float, float],
    expected: tuple[float, float, float, float],
) -> None:
    raw = np.zeros((1, 3549, 85), dtype=np.float32)
    row = _index(stride, gx, gy)
    raw[0, row, :4] = raw_xywh
    raw[0, row, 4:] = 0.7  # objectness and class scores pass through unchanged
    before = raw.copy()
    out = yolox.decode(raw)
    assert out[row, :4] == pytest.approx(expected, abs=1e-4)
    assert np.all(out[row, 4:] == pytest.approx(0.7))
    assert np.array_equal(raw, before)  # the input is not modified


def test_decode_rejects_wrong_point_count() -> None:
    with pytest.raises(ValueError, match="3549"):
        yolox.decode(np.zeros((1, 3000, 85), np.float32))


# --- postprocess ---------------------------------------------------------------------------

def _raw_with(
    boxes: list[tuple[float, float, float, float]],
    objectness: list[float],
    classes: list[int],
    class_scores: list[float],
) -> np.ndarray:
    """A raw output whose decoded boxes (x1, y1, x2, y2 network pixels) are ``boxes``.

    Each box is put on its own stride-32 anchor point by inverting the decode.
    """
    raw = np.zeros((1, 3549, 85), dtype=np.float32)
    for i, ((x1, y1, x2, y2), obj, cls, cls_score) in enumerate(
        zip(boxes, objectness, classes, class_scores, strict=True)
    ):
        gx, gy = i % 13, i // 13
        row = _index(32, gx, gy)
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        raw[0, row, :4] = (cx / 32 - gx, cy / 32 - gy, math.log(w / 32), math.log(h / 32))
        raw[0, row, 4] = obj
        raw[0, row, 5 + cls] = cls_score
    return raw


def test_postprocess_maps_back_and_normalises() -> None:
    ratio = 416 / 480  # a 480x360 image
    net_box = (100 * ratio, 50 * ratio, 200 * ratio, 250 * ratio)  # (100, 50, 200, 250) px
    raw = _raw_with([net_box], [0.9], [0], [0.8])
    boxes, scores, classes = yolox.postprocess(raw, ratio, 480, 360, 0.3, 0.45)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert classes.dtype == np.int32
    assert boxes.shape == (1, 4)
    assert boxes[0] == pytest.approx((100 / 480, 50 / 360, 200 / 480, 250 / 360), abs=1e-4)
    assert scores[0] == pytest.approx(0.72, abs=1e-5)  # objectness x class score
    assert classes.tolist() == [0]


@pytest.mark.parametrize(
    ("box_px", "expected"),
    [
        ((-20, -10, 50, 40), (0, 0, 50 / 480, 40 / 360)),  # over the top-left corner
        ((430, 300, 520, 400), (430 / 480, 300 / 360, 1, 1)),  # over the bottom-right
        ((-5, 100, 490, 200), (0, 100 / 360, 1, 200 / 360)),  # wider than the image
    ],
)
def test_postprocess_clips_to_the_image(
    box_px: tuple[float, float, float, float], expected: tuple[float, float, float, float]
) -> None:
    ratio = 416 / 480
    x1, y1, x2, y2 = box_px
    raw = _raw_with([(x1 * ratio, y1 * ratio, x2 * ratio, y2 * ratio)], [1.0], [2], [0.9])
    boxes, _, classes = yolox.postprocess(raw, ratio, 480, 360, 0.3, 0.45)
    assert boxes[0] == pytest.approx(expected, abs=1e-4)
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert classes.tolist() == [2]


@pytest.mark.parametrize(
    ("objectness", "class_score", "kept"),
    [(0.8, 0.5, True), (0.5, 0.5, False), (1.0, 0.3, True), (0.9, 0.3, False)],
)
def test_postprocess_score_threshold(objectness: float, class_score: float, kept: bool) -> None:
    raw = _raw_with([(10, 10, 60, 90)], [objectness], [0], [class_score])
    boxes, scores, _ = yolox.postprocess(raw, 1.0, 416, 416, 0.3, 0.45)
    assert len(scores) == (1 if kept else 0)
    assert boxes.shape == (len(scores), 4)


@pytest.mark.parametrize(
    ("classes", "expected_classes"),
    [([0, 0], [0]), ([0, 2], [0, 2])],
)
def test_postprocess_nms_is_class_aware(classes: list[int], expected_classes: list[int]) -> None:
    raw = _raw_with([(10, 10, 60, 90), (12, 11, 61, 92)], [0.9, 0.9], classes, [0.9, 0.8])
    _, scores, got = yolox.postprocess(raw, 1.0, 416, 416, 0.3, 0.45)
    assert got.tolist() == expected_classes
    assert list(scores) == sorted(scores, reverse=True)


def test_postprocess_nothing_found() -> None:
    boxes, scores, classes = yolox.postprocess(
        np.zeros((1, 3549, 85), np.float32), 1.0, 416, 416, 0.3, 0.45
    )
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)
    assert classes.dtype == np.int32


@pytest.mark.parametrize("seed", range(6))
def test_postprocess_tests_only_rows_that_can_pass(seed: int) -> None:
    """The fast path (best class score x objectness tested before any (N, C) product) keeps
    exactly the rows, boxes and class scores of decoding every anchor."""
    rng = np.random.default_rng(seed)
    raw = (rng.standard_normal((1, 3549, 85)) * rng.uniform(0.2, 3)).astype(np.float32)
    if seed % 2:  # sigmoid scores like the real export; else also negative objectness
        raw[..., 4:] = 1 / (1 + np.exp(-raw[..., 4:]))
    raw[0, 7, 4:6] = (0.5, 0.6)  # a product exactly on the floor below
    floor = float(np.float32(0.5) * np.float32(0.6))
    for score_threshold in (0.05, floor, 0.6):
        full, full_scores = yolox.candidates(raw, SIZE, "yolox")
        passing = full_scores.max(axis=1) >= score_threshold
        boxes, scores = yolox.decoders._yolox_candidates_above(raw, SIZE, score_threshold)
        np.testing.assert_array_equal(boxes, full[passing])
        np.testing.assert_array_equal(scores, full_scores[passing])
        got = yolox.postprocess(raw, 0.5, 800, 600, score_threshold, 0.45)
        # the same through the (N, C) path of the other decoder
        cxcywh_scores = np.concatenate([full, full_scores], axis=1).T[None]
        want = yolox.postprocess(cxcywh_scores, 0.5, 800, 600, score_threshold, 0.45,
                                 decoder="yolov8")
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_coco_classes() -> None:
    assert len(yolox.COCO_CLASSES) == 80
    assert yolox.COCO_CLASSES[0] == "person" and yolox.COCO_CLASSES[2] == "car"
    assert yolox.COCO_CLASSES[79] == "toothbrush"


# --- the real model on a real frame --------------------------------------------------------

def pets_dir() -> Path:
    return Settings().shared / "data" / "pets09_s2l1"


def pets_jpeg(frame: int) -> bytes:
    """Frame ``frame`` (1-based, as in the ground truth) of the PETS video as JPEG bytes."""
    capture = cv2.VideoCapture(str(pets_dir() / "vtest.avi"))
    try:
        for _ in range(frame):  # read, not seek: seeking is not frame-exact in every codec
            ok, image = capture.read()
            assert ok, f"cannot read frame {frame} of the PETS video"
    finally:
        capture.release()
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(encoded.tobytes())


def pets_ground_truth(frame: int) -> np.ndarray:
    """Ground-truth person boxes of a frame, x1, y1, x2, y2 in 480x360 video pixels."""
    rows = np.loadtxt(pets_dir() / "gt_frames_001_300.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 0] == frame]
    x, y, w, h = (rows[:, i] * PETS_SCALE for i in (2, 3, 4, 5))
    return np.stack((x, y, x + w, y + h), axis=1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns), x1, y1, x2, y2."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter))


def check_persons_against_ground_truth(persons_px: np.ndarray, gt: np.ndarray) -> None:
    """Plausible person detections for a PETS frame.

    The count lies between 60 % of the annotated people and 5 more than them; at least 60 %
    of the annotated people are found (IoU >= 0.5); at most 3 detections overlap nobody
    annotated (the PETS ground truth leaves out a few people far in the background).
    """
    assert len(gt) > 0
    count = len(persons_px)
    assert math.ceil(0.6 * len(gt)) <= count <= len(gt) + 5, (count, len(gt))
    iou = iou_matrix(persons_px, gt)
    found = int((iou.max(axis=0) >= 0.5).sum())
    assert found >= math.ceil(0.6 * len(gt)), (found, len(gt), iou.round(2))
    unannotated = int((iou.max(axis=1) < 0.3).sum())
    assert unannotated <= 3, (unannotated, iou.round(2))


@pytest.fixture(scope="module")
def runner() -> Any:
    model = Settings().shared / "models" / "yolox_nano.onnx"
    return yolox.DetectorRunner(str(model), score_threshold=0.3, nms_threshold=0.45)


@pytest.fixture(scope="module")
def fit_runner() -> Any:
    model = Settings().shared / "models" / "yolox_nano.onnx"
    return yolox.DetectorRunner(str(model), score_threshold=0.3, nms_threshold=0.45, fit=True)


def test_fit_frees_the_fixed_input_and_finds_what_square_finds(runner: Any,
                                                               fit_runner: Any) -> None:
    """The shipped setting (letterbox fit) runs the 416x416 export at 416x320 on PETS and
    finds the same people as the square input, boxes within a few pixels."""
    assert runner.session.get_inputs()[0].shape[2:] == [416, 416]
    assert fit_runner.session.get_inputs()[0].shape[2:] == ["height", "width"]
    square_boxes, _, square_classes, _ = runner.detect_jpeg(pets_jpeg(1))
    fit_boxes, _, fit_classes, size = fit_runner.detect_jpeg(pets_jpeg(1))
    assert size == (480, 360)
    a = square_boxes[square_classes == 0] * np.array([480, 360, 480, 360], dtype=np.float32)
    b = fit_boxes[fit_classes == 0] * np.array([480, 360, 480, 360], dtype=np.float32)
    assert abs(len(a) - len(b)) <= 1, (len(a), len(b))
    iou = iou_matrix(a, b)
    assert int((iou.max(axis=1) >= 0.8).sum()) >= len(a) - 1, iou.round(2)
    check_persons_against_ground_truth(b, pets_ground_truth(1))


def test_configured_reads_the_triton_parameters() -> None:
    model = str(Settings().shared / "models" / "yolox_nano.onnx")
    runner = yolox.DetectorRunner.configured(
        model, {"letterbox": "fit", "score_threshold": "0.2", "input_size": "auto"})
    assert (runner.fit, runner.size, runner.score_threshold) == (True, 416, 0.2)
    with pytest.raises(ValueError, match="unknown letterbox 'wide'"):
        yolox.DetectorRunner.configured(model, {"letterbox": "wide"})


def test_runner_finds_the_people_of_pets_frame_1(runner: Any) -> None:
    boxes, scores, classes, size = runner.detect_jpeg(pets_jpeg(1))
    assert size == (480, 360)
    assert boxes.dtype == np.float32 and boxes.shape == (len(scores), 4)
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    persons = (classes == 0) & (scores >= 0.3)
    persons_px = boxes[persons] * np.array([480, 360, 480, 360], dtype=np.float32)
    check_persons_against_ground_truth(persons_px, pets_ground_truth(1))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a jpeg at all",
        np.random.default_rng(7).bytes(4096),
        b"\xff\xd8\xff\xe0" + np.random.default_rng(8).bytes(4096),  # JPEG magic, then noise
    ],
    ids=["empty", "text", "random", "magic-then-noise"],
)
def test_runner_rejects_garbage(runner: Any, data: bytes) -> None:
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        runner.detect_jpeg(data)


@pytest.mark.parametrize("keep", [300, 0.5, 0.95])
def test_runner_rejects_truncated_jpeg(runner: Any, keep: float) -> None:
    jpeg = pets_jpeg(1)
    cut = int(keep) if keep > 1 else int(len(jpeg) * keep)
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        runner.detect_jpeg(jpeg[:cut])
