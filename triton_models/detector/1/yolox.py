"""YOLOX pre- and post-processing: the single source of truth for the ``detector`` model.

Pure numpy + OpenCV, no Triton imports, so the same file runs

* inside the Triton python backend (``model.py`` next to it; numpy 1.26, OpenCV 4.10), and
* in the application environment (numpy 2), loaded by file path through
  :func:`argus.modelcode.load_yolox_module` for benchmarks, tests and the plain-loop reference.

Model contract (``yolox_nano.onnx``, official YOLOX export): input ``images`` 1x3xSxS float32,
BGR 0-255, no normalisation, resized keeping the aspect ratio and padded with 114 at the
bottom/right (top-left aligned) by :func:`letterbox`; the raw output is decoded in
``decoders.py`` next to this file (YOLOX grid/stride + exp, or ``decoder="yolov8"``: the
common YOLOv8 / YOLO11 ONNX export, input 1x3xSxS float32 RGB 0-1, the same letterbox),
whose public names (:func:`decode`, :func:`postprocess`, :func:`nms`, ...) this module
re-exports.

Optional tiling (``tiles="2x2"``): the image is also cut into overlapping tiles, each
letterboxed to the network size (small people get bigger), and the boxes of every pass are
merged with class-aware NMS. It costs one extra inference per tile.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol

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


def _sibling(name: str) -> ModuleType:
    """A module next to this file, loaded by path (Triton and the application alike)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"argus_detector_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


decoders = _sibling("decoders")
STRIDES: tuple[int, ...] = decoders.STRIDES
DECODERS: tuple[str, ...] = decoders.DECODERS
decode = decoders.decode
decode_yolov8 = decoders.decode_yolov8
candidates = decoders.candidates
nms = decoders.nms
batched_nms = decoders.batched_nms
postprocess = decoders.postprocess
tile_windows = decoders.tile_windows
merge_tiles = decoders.merge_tiles

PAD_VALUE = 114

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
    """YOLOX ONNX model in an onnxruntime session, with the pre-processing above and the
    post-processing of ``decoders.py``."""

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
