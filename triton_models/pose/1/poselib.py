"""Single-person pose on a person box: the single source of truth for the ``pose`` model.

Pure numpy + OpenCV (onnxruntime only inside :class:`PoseRunner`), no Triton imports, so
the same file runs inside the Triton python backend (``model.py`` next to it; numpy 1.26,
OpenCV 4.10) and in the application environment (numpy 2), loaded by file path for tests.

Model: MoveNet Lightning (``movenet-lightning.onnx``): ``input:0`` 1x192x192x3 int32 RGB
0-255, ``Identity:0`` 1x1x17x3 (y, x, score) normalised to the input square. The 17
keypoints are COCO's (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).

The crop: the person box grows by ``margin`` of its width/height on every side, becomes a
square around its centre (the longer side), is cut from the image with black padding where
it leaves the image and resized to the network input. Keypoints are
mapped back to the whole image, normalised (x, y in 0..1, may fall slightly outside where
the square was padded).

>>> square_region((10, 20, 30, 60), margin=0.0, width=100, height=100)
(0.0, 20.0, 40.0)
>>> square_region((0, 0, 0, 0), margin=0.1, width=200, height=100)
(0.0, -50.0, 200.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]
Region = tuple[float, float, float]
"""A square in image pixels: left, top, side."""

NUM_KEYPOINTS = 17
INPUT_SIZE = 192


def decode_jpeg(jpeg_bytes: bytes) -> ImageArray:
    """Decode JPEG (or any OpenCV-readable image) bytes to HxWx3 BGR.

    Raises ``ValueError("cannot decode JPEG ...")`` when OpenCV cannot decode them or the JPEG
    is cut short inside its image data.
    """
    if not jpeg_bytes:
        raise ValueError("cannot decode JPEG (0 bytes)")
    last_eoi, last_sos = jpeg_bytes.rfind(b"\xff\xd9"), jpeg_bytes.rfind(b"\xff\xda")
    if jpeg_bytes[:2] == b"\xff\xd8" and last_eoi < last_sos:
        raise ValueError(
            f"cannot decode JPEG ({len(jpeg_bytes)} bytes): truncated, no end-of-image marker")
    buffer = np.frombuffer(jpeg_bytes, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes): {exc}") from exc
    if image is None or image.size == 0:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes)")
    return np.asarray(image, dtype=np.uint8)


def square_region(box_px: Sequence[float], margin: float, width: int, height: int) -> Region:
    """The square crop (left, top, side in pixels) around a person box in pixels.

    The box grows by ``margin`` x its width (height) on the left and right (top and bottom),
    then the shorter side grows to the longer one around the centre. A degenerate box
    (x2 <= x1 or y2 <= y1) means the whole image, as a square around its centre. Values are
    rounded to whole pixels (the crop that :func:`crop_input` cuts).
    """
    x1, y1, x2, y2 = (float(v) for v in box_px)
    if x2 <= x1 or y2 <= y1:
        x1, y1, x2, y2, margin = 0.0, 0.0, float(width), float(height), 0.0
    side = float(max(1, round(max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin))))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return float(round(cx - side / 2.0)), float(round(cy - side / 2.0)), side


def box_to_pixels(box: Sequence[float], width: int, height: int) -> tuple[float, ...]:
    """A normalised box (x1, y1, x2, y2 in 0..1) in pixels, clipped to the image."""
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
    return x1 * width, y1 * height, x2 * width, y2 * height


def crop_input(image_bgr: ImageArray, region: Region, size: int = INPUT_SIZE,
               ) -> npt.NDArray[np.int32]:
    """The 1 x size x size x 3 int32 RGB network input for a square ``region`` (black
    padding where it leaves the image)."""
    height, width = image_bgr.shape[:2]
    x0, y0, side = int(region[0]), int(region[1]), max(1, int(region[2]))
    x1, y1 = x0 + side, y0 + side
    part = image_bgr[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
    square: npt.NDArray[Any]
    if part.size == 0:  # the region lies entirely outside the image
        square = np.zeros((side, side, 3), dtype=np.uint8)
    else:
        square = cv2.copyMakeBorder(
            part, max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width),
            cv2.BORDER_CONSTANT, value=(0, 0, 0))
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return np.asarray(rgb, dtype=np.int32).reshape(1, size, size, 3)


def to_image(keypoints_yx: npt.ArrayLike, region: Region, width: int, height: int,
             ) -> FloatArray:
    """MoveNet's (y, x, score) in the input square → (x, y, score) normalised to the image.

    >>> to_image([[0.5, 0.25, 0.5]], (0.0, -50.0, 200.0), 200, 100).tolist()
    [[0.25, 0.5, 0.5]]
    """
    kp = np.asarray(keypoints_yx, dtype=np.float64).reshape(-1, 3)
    left, top, side = region
    out = np.empty_like(kp)
    out[:, 0] = (left + kp[:, 1] * side) / width
    out[:, 1] = (top + kp[:, 0] * side) / height
    out[:, 2] = kp[:, 2]
    return np.asarray(out, dtype=np.float32)


class PoseRunner:
    """MoveNet in an onnxruntime session: image + person box → 17 keypoints."""

    def __init__(self, model_path: str, margin: float = 0.15, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort  # local: keeps the pure functions importable without it

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available]
        self.session: Any = ort.InferenceSession(str(model_path), options,
                                                 providers=list(providers))
        model_input = self.session.get_inputs()[0]
        self.input_name: str = model_input.name
        shape = model_input.shape
        self.size = shape[1] if isinstance(shape[1], int) else INPUT_SIZE
        self.margin = margin

    def estimate(self, image_bgr: ImageArray, box: Sequence[float] | None) -> FloatArray:
        """17 x 3 (x, y, score) normalised to the image for the person in ``box``
        (normalised x1, y1, x2, y2; None or degenerate: the whole image)."""
        height, width = image_bgr.shape[:2]
        box_px = box_to_pixels(box, width, height) if box is not None else (0, 0, 0, 0)
        region = square_region(box_px, self.margin, width, height)
        inputs = crop_input(image_bgr, region, self.size)
        raw = self.session.run(None, {self.input_name: inputs})[0]
        return to_image(np.asarray(raw).reshape(NUM_KEYPOINTS, 3), region, width, height)

    def estimate_jpeg(self, jpeg: bytes, box: Sequence[float] | None) -> FloatArray:
        """:meth:`estimate` on JPEG bytes."""
        return self.estimate(decode_jpeg(jpeg), box)
