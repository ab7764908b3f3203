"""Raw detector output → detections: the ``detector`` model's decoders, NMS and tile merge.

Pure numpy, no Triton imports; loaded by ``yolox.py`` next to it (by path, so the same file
serves Triton and the application), which re-exports the public names below.

``decoder="yolox"`` (``yolox_nano.onnx``, official YOLOX export): output 1xNx85 raw per
anchor point ``(x, y, w, h, obj, 80 class scores)`` decoded with the grid/stride (8, 16, 32)
+ exp as in YOLOX ``demo_postprocess``.

``decoder="yolov8"``: the common YOLOv8 / YOLO11 ONNX export (``yolo export format=onnx``):
output 1x(4+C)xN with already decoded ``cx, cy, w, h`` in network pixels and C sigmoid
class scores (no objectness).

With tiling, the whole-image pass and one pass per overlapping tile (:func:`tile_windows`)
are merged with class-aware NMS (:func:`merge_tiles`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DECODERS",
    "STRIDES",
    "batched_nms",
    "candidates",
    "decode",
    "decode_yolov8",
    "merge_tiles",
    "nms",
    "postprocess",
    "tile_windows",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]
Detections = tuple[FloatArray, FloatArray, IntArray]

STRIDES: tuple[int, ...] = (8, 16, 32)
DECODERS: tuple[str, ...] = ("yolox", "yolov8")

Shape = int | tuple[int, int]
"""A network input size: ``S`` (square SxS) or ``(height, width)``."""


def _hw(size: Shape) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@lru_cache(maxsize=32)
def _grid(height: int, width: int) -> tuple[FloatArray, FloatArray]:
    """Anchor-point grid (Nx2, x then y) and per-point stride (Nx1) for an HxW input."""
    grids: list[FloatArray] = []
    strides: list[FloatArray] = []
    for stride in STRIDES:
        rows, cols = height // stride, width // stride
        xv, yv = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack((xv, yv), axis=2).reshape(-1, 2).astype(np.float32))
        strides.append(np.full((rows * cols, 1), stride, dtype=np.float32))
    grid = np.concatenate(grids, axis=0)
    stride_col = np.concatenate(strides, axis=0)
    grid.setflags(write=False)
    stride_col.setflags(write=False)
    return grid, stride_col


def _one_image(raw_output: npt.NDArray[Any]) -> FloatArray:
    pred = np.asarray(raw_output, dtype=np.float32)
    if pred.ndim == 3 and pred.shape[0] != 1:
        raise ValueError(f"decode takes one image, got batch of {pred.shape[0]}")
    return pred[0] if pred.ndim == 3 else pred


def decode(raw_output: npt.NDArray[Any], size: Shape = 416) -> FloatArray:
    """Decode raw YOLOX output ((1, N, 85) or (N, 85)) into (N, 85) in network pixels.

    Columns 0-3 become centre x, centre y, width, height (``(xy + grid) * stride`` and
    ``exp(wh) * stride``); objectness and class scores are passed through. The input is
    not modified.
    """
    pred, grid, stride = _yolox_raw(raw_output, size)
    out = pred.copy()
    out[:, :2] = (pred[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(pred[:, 2:4]) * stride
    return out


def _yolox_raw(raw_output: npt.NDArray[Any], size: Shape,
               ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The (N, 85) raw rows of one image, checked against the anchor grid of ``size``, with
    that grid and the per-point stride."""
    pred = _one_image(raw_output)
    if pred.ndim != 2 or pred.shape[1] < 5:
        raise ValueError(f"expected (N, 5+classes) raw output, got shape {pred.shape}")
    grid, stride = _grid(*_hw(size))
    if pred.shape[0] != grid.shape[0]:
        raise ValueError(
            f"raw output has {pred.shape[0]} points, input size {size} needs {grid.shape[0]}"
        )
    return pred, grid, stride


def _yolox_candidates_above(raw_output: npt.NDArray[Any], size: Shape, floor: float,
                            ) -> tuple[FloatArray, FloatArray]:
    """``candidates(raw_output, size, "yolox")`` restricted to the anchors whose best class
    score can reach ``floor``, with the same values for those rows.

    Rounding is monotonic, so the best of the products ``class score x objectness`` is the
    product of the largest class score (smallest, were objectness negative) and objectness:
    the test needs no (N, C) product, and only the few rows that pass are decoded.
    """
    pred, grid, stride = _yolox_raw(raw_output, size)
    objectness, class_part = pred[:, 4], pred[:, 5:]
    best = np.maximum(class_part.max(axis=1) * objectness, class_part.min(axis=1) * objectness)
    rows = np.flatnonzero(best >= floor)
    sub = pred[rows]
    boxes = np.empty((len(rows), 4), dtype=np.float32)
    boxes[:, :2] = (sub[:, :2] + grid[rows]) * stride[rows]
    boxes[:, 2:4] = np.exp(sub[:, 2:4]) * stride[rows]
    return boxes, sub[:, 5:] * sub[:, 4:5]


def decode_yolov8(raw_output: npt.NDArray[Any]) -> tuple[FloatArray, FloatArray]:
    """Split a YOLOv8/YOLO11 export's output ((1, 4+C, N) or (4+C, N)) into boxes (N, 4)
    ``cx, cy, w, h`` in network pixels and class scores (N, C)."""
    pred = _one_image(raw_output)
    if pred.ndim != 2 or pred.shape[0] < 5 or pred.shape[0] > pred.shape[1]:
        raise ValueError(f"expected (4+classes, N) raw YOLOv8 output, got shape {pred.shape}")
    pred = pred.T
    return np.ascontiguousarray(pred[:, :4]), np.ascontiguousarray(pred[:, 4:])


def candidates(raw_output: npt.NDArray[Any], size: Shape, decoder: str = "yolox",
               ) -> tuple[FloatArray, FloatArray]:
    """Boxes (N, 4) ``cx, cy, w, h`` in network pixels and per-class scores (N, C) of every
    anchor, for either decoder (YOLOX: objectness x class score)."""
    if decoder == "yolox":
        pred = decode(raw_output, size)
        return pred[:, :4], pred[:, 5:] * pred[:, 4:5]
    if decoder == "yolov8":
        return decode_yolov8(raw_output)
    raise ValueError(f"unknown decoder {decoder!r} (one of {', '.join(DECODERS)})")


def nms(boxes: npt.NDArray[Any], scores: npt.NDArray[Any], iou_threshold: float) -> IntArray:
    """Greedy non-maximum suppression.

    ``boxes`` are (K, 4) x1, y1, x2, y2. Returns the indices of the kept boxes, best score
    first; a box is dropped when its IoU with an already kept box exceeds ``iou_threshold``.
    """
    boxes_f = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores_f = np.asarray(scores, dtype=np.float64).reshape(-1)
    if boxes_f.shape[0] != scores_f.shape[0]:
        raise ValueError(f"{boxes_f.shape[0]} boxes but {scores_f.shape[0]} scores")
    x1, y1, x2, y2 = boxes_f.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores_f, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = inter_w * inter_h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int32)


def batched_nms(
    boxes: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    classes: npt.NDArray[Any],
    iou_threshold: float,
) -> IntArray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Each class's boxes are shifted by ``class * (max coordinate + 1)`` so that boxes of
    different classes cannot overlap, then one greedy :func:`nms` runs over all of them.
    """
    boxes_f = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes_f.shape[0] == 0:
        return np.zeros((0,), dtype=np.int32)
    offset = float(np.abs(boxes_f).max()) + 1.0
    shifted = boxes_f + np.asarray(classes, dtype=np.float64).reshape(-1, 1) * offset
    return nms(shifted, scores, iou_threshold)


def postprocess(
    raw_output: npt.NDArray[Any],
    ratio: float,
    width: int,
    height: int,
    score_threshold: float,
    nms_threshold: float,
    size: Shape = 416,
    decoder: str = "yolox",
) -> Detections:
    """Raw output of one image → detections in normalised image coordinates.

    score = best class score (YOLOX: x objectness); anchors scoring below
    ``score_threshold`` are dropped; class-aware NMS; boxes are mapped back with ``ratio``
    (from ``yolox.letterbox``), clipped to the ``width``x``height`` image and divided by its
    size. ``decoder`` is ``"yolox"`` or ``"yolov8"`` (see the module docstring).

    Returns ``boxes`` float32 (K, 4) x1, y1, x2, y2 in 0..1, ``scores`` float32 (K,) and
    ``classes`` int32 (K,), best score first.
    """
    if decoder == "yolox":  # the same rows and values, computed only where they can pass
        pred, class_scores = _yolox_candidates_above(raw_output, size, score_threshold)
    else:
        pred, class_scores = candidates(raw_output, size, decoder)
    if class_scores.shape[0] == 0:
        return _empty()
    classes = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(pred.shape[0]), classes]
    mask = scores >= score_threshold
    if not np.any(mask):
        return _empty()
    pred, scores, classes = pred[mask], scores[mask], classes[mask]
    cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    boxes = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1) / ratio
    keep = batched_nms(boxes, scores, classes, nms_threshold)
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width) / width
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height) / height
    return boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int32)


def _empty() -> Detections:
    return (np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.float32),
            np.zeros((0,), dtype=np.int32))


def tile_windows(width: int, height: int, tiles: str, overlap: float = 0.2,
                 ) -> list[tuple[int, int, int, int]]:
    """``"CxR"`` → C x R overlapping windows ``(x0, y0, x1, y1)`` covering the image
    (``"1x1"``: none, the whole-image pass is always run)."""
    cols, rows = (int(v) for v in tiles.lower().split("x"))
    if cols < 1 or rows < 1:
        raise ValueError(f"bad tiles {tiles!r}: want CxR with C, R >= 1")
    if cols == rows == 1:
        return []
    tile_w = width / (cols - (cols - 1) * overlap)
    tile_h = height / (rows - (rows - 1) * overlap)
    return [(round(c * tile_w * (1 - overlap)), round(r * tile_h * (1 - overlap)),
             min(width, round(c * tile_w * (1 - overlap) + tile_w)),
             min(height, round(r * tile_h * (1 - overlap) + tile_h)))
            for r in range(rows) for c in range(cols)]


def merge_tiles(width: int, height: int, passes: list[tuple[tuple[int, int, int, int],
                                                              Detections]],
                nms_threshold: float) -> Detections:
    """Merge the whole-image pass and tile passes (each normalised to its own window) into
    one normalised result. Tile boxes touching an inner tile edge are cut-off parts of a
    bigger object and dropped; class-aware NMS removes the duplicates."""
    boxes_px, scores_all, classes_all = [], [], []
    for (x0, y0, x1, y1), (boxes, scores, classes) in passes:
        px = boxes.astype(np.float64) * [x1 - x0, y1 - y0, x1 - x0, y1 - y0] + [x0, y0, x0, y0]
        keep = np.ones(len(px), dtype=bool)
        for inner, column, edge, sign in ((x0 > 0, 0, x0, 1), (y0 > 0, 1, y0, 1),
                                          (x1 < width, 2, x1, -1), (y1 < height, 3, y1, -1)):
            if inner:
                keep &= (px[:, column] - edge) * sign > 2.0
        boxes_px.append(px[keep])
        scores_all.append(scores[keep])
        classes_all.append(classes[keep])
    boxes_cat, scores_cat = np.concatenate(boxes_px), np.concatenate(scores_all)
    classes_cat = np.concatenate(classes_all)
    if len(scores_cat) == 0:
        return _empty()
    order = batched_nms(boxes_cat, scores_cat, classes_cat, nms_threshold)
    norm = boxes_cat[order] / [width, height, width, height]
    return (norm.astype(np.float32), scores_cat[order].astype(np.float32),
            classes_cat[order].astype(np.int32))
