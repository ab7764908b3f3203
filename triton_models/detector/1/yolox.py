"""YOLOX pre- and post-processing: the single source of truth for the ``detector`` model.

Pure numpy + OpenCV, no Triton imports, so the same file runs

* inside the Triton python backend (``model.py`` next to it; numpy 1.26, OpenCV 4.10), and
* in the application environment (numpy 2), loaded by file path through
  :func:`argus.modelcode.load_yolox_module` for benchmarks, tests and the plain-loop reference.

Model contract (``yolox_nano.onnx``, official YOLOX export): input ``images`` 1x3xSxS float32,
BGR 0-255, no normalisation, resized keeping the aspect ratio and padded with 114 at the
bottom/right (top-left aligned); output 1xNx85 raw per anchor point
``(x, y, w, h, obj, 80 class scores)`` decoded with the grid/stride (8, 16, 32) + exp as in
YOLOX ``demo_postprocess``.

Second decoder, ``decoder="yolov8"``: the common YOLOv8 / YOLO11 ONNX export
(``yolo export format=onnx``): input 1x3xSxS float32 RGB 0-1, output 1x(4+C)xN with already
decoded ``cx, cy, w, h`` in network pixels and C sigmoid class scores (no objectness).
The same letterbox (top-left, padded with 114) is used for both.

Optional tiling (``tiles="2x2"``): the image is also cut into overlapping tiles, each
letterboxed to the network size (small people get bigger), and the boxes of every pass are
merged with class-aware NMS. It costs one extra inference per tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "COCO_CLASSES",
    "DECODERS",
    "PAD_VALUE",
    "STRIDES",
    "DetectorRunner",
    "decode",
    "decode_jpeg",
    "decode_yolov8",
    "free_input_size",
    "letterbox",
    "nms",
    "postprocess",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]
Detections = tuple[FloatArray, FloatArray, IntArray]

STRIDES: tuple[int, ...] = (8, 16, 32)
PAD_VALUE = 114
DECODERS: tuple[str, ...] = ("yolox", "yolov8")

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


Shape = int | tuple[int, int]
"""A network input size: ``S`` (square SxS) or ``(height, width)``."""


def _hw(size: Shape) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def letterbox(image_bgr: npt.NDArray[np.uint8], size: int = 416, fit: bool = False,
              ) -> tuple[FloatArray, float]:
    """Resize keeping the aspect ratio so the long side is ``size``, pad with 114
    (bottom/right) to ``size``x``size``, or with ``fit`` only up to the next multiple of
    the largest stride (32): a 16:9 frame becomes 416x256 instead of 416x416, 40 % less
    network work for the same pixels of the image.

    Returns the network input (1x3xHxW float32, BGR 0-255, the image top-left aligned) and
    the scale ``ratio`` (network pixels per original pixel): an original coordinate ``c``
    lands at ``c * ratio`` in the tensor.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR image, got shape {image_bgr.shape}")
    height, width = image_bgr.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"empty image, shape {image_bgr.shape}")
    ratio = min(size / height, size / width)
    new_w = min(size, max(1, round(width * ratio)))
    new_h = min(size, max(1, round(height * ratio)))
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    step = STRIDES[-1]
    out_h, out_w = (-(-new_h // step) * step, -(-new_w // step) * step) if fit else (size, size)
    # straight into the float planes (no padded uint8 copy, no strided transpose copy)
    tensor = np.empty((1, 3, out_h, out_w), dtype=np.float32)
    tensor[0, :, new_h:, :] = PAD_VALUE
    tensor[0, :, :new_h, new_w:] = PAD_VALUE
    for channel in range(3):
        tensor[0, channel, :new_h, :new_w] = resized[:, :, channel]
    return tensor, float(ratio)


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
    (from :func:`letterbox`), clipped to the ``width``x``height`` image and divided by its
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


def free_input_size(model_path: str) -> tuple[bytes | None, int | None]:
    """The ONNX model at ``model_path`` with its input's height and width made free (for
    ``fit``), serialised, and the (square) size its input declared; ``(None, None)`` when
    the input's width is free already. YOLOX's export is fully convolutional (its reshapes
    use -1 and its upsampling scales), so only the declared sizes pin it; the inferred
    intermediate and output shapes of the old size are dropped. Needs the ``onnx``
    package."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - both environments install it
        raise RuntimeError("letterbox fit on a fixed-size model needs the onnx package; "
                           "install it or set letterbox to square") from exc
    model = onnx.load(model_path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"{model_path}: expected an NCHW input, got {len(dims)} dimensions")
    if not dims[3].HasField("dim_value"):
        return None, None
    declared = int(dims[3].dim_value)
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    del model.graph.value_info[:]
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    return bytes(model.SerializeToString()), declared


def decode_jpeg(jpeg_bytes: bytes) -> npt.NDArray[np.uint8]:
    """Decode JPEG (or any OpenCV-readable image) bytes to HxWx3 BGR.

    Raises ``ValueError("cannot decode JPEG ...")`` when OpenCV cannot decode them, and for
    a JPEG cut short inside its image data (no end-of-image marker after the last scan).
    """
    if not jpeg_bytes:
        raise ValueError("cannot decode JPEG (0 bytes)")
    last_eoi, last_sos = jpeg_bytes.rfind(b"\xff\xd9"), jpeg_bytes.rfind(b"\xff\xda")
    if jpeg_bytes[:2] == b"\xff\xd8" and last_eoi < last_sos:
        # Truncated inside the (last) scan. Some OpenCV builds (4.10) decode such a file
        # into a partly grey image with only a warning; reject it the same way everywhere.
        # Entropy-coded data byte-stuffs 0xFF, so neither marker can occur inside a scan.
        raise ValueError(
            f"cannot decode JPEG ({len(jpeg_bytes)} bytes): truncated, no end-of-image marker"
        )
    buffer = np.frombuffer(jpeg_bytes, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes): {exc}") from exc
    if image is None or image.size == 0:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes)")
    return np.asarray(image, dtype=np.uint8)


class Parameters(Protocol):
    def get(self, key: str, default: str, /) -> str: ...


LETTERBOXES: tuple[str, ...] = ("fit", "square")


class DetectorRunner:
    """YOLOX ONNX model in an onnxruntime session, with the pre/post-processing above."""

    @classmethod
    def configured(cls, model_path: str, params: Parameters, threads: int | None = None,
                   ) -> DetectorRunner:
        """The runner ``config.pbtxt``'s ``parameters`` describe (``score_threshold``,
        ``nms_threshold``, ``input_size``, ``letterbox``, ``decoder``, ``tiles``): one
        reading for the Triton model, the evaluations and the benchmark's plain loop."""
        size = params.get("input_size", "auto")
        letterbox_mode = params.get("letterbox", "square")
        if letterbox_mode not in LETTERBOXES:
            raise ValueError(f"unknown letterbox {letterbox_mode!r} "
                             f"(one of {', '.join(LETTERBOXES)})")
        return cls(model_path,
                   score_threshold=float(params.get("score_threshold", "0.3")),
                   nms_threshold=float(params.get("nms_threshold", "0.45")),
                   size=None if size == "auto" else int(size), threads=threads,
                   decoder=params.get("decoder", "yolox"), tiles=params.get("tiles", "1x1"),
                   fit=letterbox_mode == "fit")

    def __init__(
        self,
        model_path: str,
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        size: int | None = 416,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        decoder: str = "yolox",
        tiles: str = "1x1",
        fit: bool = False,
    ) -> None:
        """Load ``model_path``.

        ``size`` is the network input's long side; None takes it from the model (a model
        with a fixed input of another size is an error). ``fit``: pad each image only to a
        multiple of 32 (see :func:`letterbox`); a fixed-size export gets its height and
        width freed (:func:`free_input_size`). ``threads`` sets onnxruntime's intra-op
        threads (default: onnxruntime decides). ``providers`` defaults to CUDA when this
        onnxruntime build has it, else CPU. ``decoder``: ``yolox`` or ``yolov8``;
        ``tiles``: ``"CxR"`` adds a pass per tile (``"1x1"``: whole image only).
        """
        import onnxruntime as ort  # local: keeps the pure functions importable without it

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if providers is None:
            available = ort.get_available_providers()
            providers = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        # one session per runner (on a GPU, building one can take long): with fit, a
        # fixed-size file is freed first and its declared size read from the file
        freed, declared = free_input_size(str(model_path)) if fit else (None, None)
        self.session = ort.InferenceSession(freed or str(model_path), options,
                                            providers=list(providers))
        model_input = self.session.get_inputs()[0]
        self.input_name: str = model_input.name
        width = model_input.shape[-1]
        fixed = declared if freed is not None else width if isinstance(width, int) else None
        if size is None and fixed is None:
            raise ValueError(f"{model_path}: dynamic input size; set the input size")
        if size is not None and fixed is not None and size != fixed:
            raise ValueError(f"{model_path}: the model takes {fixed}x{fixed} input, "
                             f"configured input size is {size}")
        self.size = int(size or fixed or 0)
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r} (one of {', '.join(DECODERS)})")
        self.decoder = decoder
        self.fit = fit
        if freed is not None:
            self._check_fit(str(model_path))
        self.tiles = tiles
        tile_windows(self.size, self.size, tiles)  # validate early
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)

    def _check_fit(self, model_path: str) -> None:
        """One inference at a non-square size: a graph with sizes baked in fails here, at
        load, with a clear message, not on the first frame."""
        shape = (self.size // 2 // STRIDES[-1] * STRIDES[-1] or STRIDES[-1], self.size)
        try:
            raw = self.session.run(None, {self.input_name: np.full(
                (1, 3, *shape), PAD_VALUE, dtype=np.float32)})[0]
            candidates(raw, shape, self.decoder)
        except Exception as exc:
            raise ValueError(f"{model_path}: cannot run at {shape[1]}x{shape[0]} ({exc}); "
                             "use letterbox square for this model") from exc

    def _detect_one(self, image_bgr: npt.NDArray[np.uint8]) -> Detections:
        tensor, ratio = letterbox(image_bgr, self.size, self.fit)
        shape = (int(tensor.shape[2]), int(tensor.shape[3]))
        if self.decoder == "yolov8":  # RGB 0-1
            tensor = np.ascontiguousarray(tensor[:, ::-1] / np.float32(255.0))
        raw = self.session.run(None, {self.input_name: tensor})[0]
        height, width = image_bgr.shape[:2]
        return postprocess(raw, ratio, width, height, self.score_threshold,
                           self.nms_threshold, shape, self.decoder)

    def detect_image(self, image_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Detect on one decoded BGR image (and its tiles); see :func:`postprocess`."""
        whole = self._detect_one(image_bgr)
        height, width = image_bgr.shape[:2]
        windows = tile_windows(width, height, self.tiles)
        if not windows:
            return whole
        passes = [((0, 0, width, height), whole)]
        for x0, y0, x1, y1 in windows:
            crop = np.ascontiguousarray(image_bgr[y0:y1, x0:x1])
            passes.append(((x0, y0, x1, y1), self._detect_one(crop)))
        return merge_tiles(width, height, passes, self.nms_threshold)

    def detect_jpeg(
        self, jpeg_bytes: bytes
    ) -> tuple[FloatArray, FloatArray, IntArray, tuple[int, int]]:
        """Decode and detect one JPEG: ``(boxes, scores, classes, (width, height))``.

        Raises ``ValueError("cannot decode JPEG ...")`` for bytes OpenCV cannot decode.
        """
        image = decode_jpeg(jpeg_bytes)
        height, width = image.shape[:2]
        boxes, scores, classes = self.detect_image(image)
        return boxes, scores, classes, (int(width), int(height))
