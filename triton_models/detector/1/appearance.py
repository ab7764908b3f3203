"""Person re-identification embeddings for the ``detector`` model (optional, ``reid``).

Pure numpy + OpenCV (+ onnxruntime in :class:`ReidRunner`), no Triton imports, so the same
file runs inside the Triton python backend (``model.py``) and in the application
environment (``argus eval mot --offline``, tests), loaded by file path.

Model contract (``osnet_x0_25_msmt17.onnx``, OSNet x0.25 trained on MSMT17): input
``batch``x3x256x128 float32, RGB, ``(pixel / 255 - mean) / std`` with the ImageNet mean and
std; output ``batch``x512. Each person box is cropped from the decoded frame, resized to
128x256 (width x height, aspect not kept, as in training), and its embedding is
L2-normalised.

Wire format (:func:`quantize`): each L2-normalised vector is scaled so that its largest
component is +-127 and rounded to int8 (512 bytes). The scale is not kept: a consumer
re-normalises (:func:`dequantize`), and cosine similarity is scale-free. The round trip
changes a cosine similarity by less than 0.005 on OSNet vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["INPUT_HEIGHT", "INPUT_WIDTH", "MEAN", "STD", "ReidRunner", "crop_windows", "crops",
           "crops_many", "dequantize", "l2_normalise", "quantize", "select"]

FloatArray = npt.NDArray[np.float32]
INPUT_HEIGHT, INPUT_WIDTH = 256, 128
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MIN_CROP_PX = 4


def crop_windows(height: int, width: int, boxes: npt.ArrayLike) -> list[tuple[int, int, int, int]]:
    """Pixel windows ``(left, top, right, bottom)`` of ``boxes`` (K, 4 normalised) in a
    ``height`` x ``width`` image: clipped to the image, at least ``MIN_CROP_PX`` each way."""
    box_px = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * [width, height, width, height]
    windows = []
    for x1, y1, x2, y2 in box_px:
        left = int(np.clip(np.floor(x1), 0, width - 1))
        top = int(np.clip(np.floor(y1), 0, height - 1))
        right = int(np.clip(max(np.ceil(x2), left + MIN_CROP_PX), 1, width))
        bottom = int(np.clip(max(np.ceil(y2), top + MIN_CROP_PX), 1, height))
        windows.append((min(left, right - 1), min(top, bottom - 1), right, bottom))
    return windows


def crops(image_bgr: npt.NDArray[np.uint8], boxes: npt.ArrayLike) -> FloatArray:
    """The network input for ``boxes`` (K, 4 normalised ``x1, y1, x2, y2``) of one BGR image:
    (K, 3, 256, 128) float32, RGB, ImageNet-normalised. A box is clipped to the image and
    widened to at least ``MIN_CROP_PX`` pixels each way."""
    return crops_many([(image_bgr, boxes)])


def crops_many(items: Sequence[tuple[npt.NDArray[np.uint8], npt.ArrayLike]]) -> FloatArray:
    """:func:`crops` of several ``(image, boxes)`` pairs, concatenated in order."""
    return _network_input(_crop_jobs(items))


CropJob = tuple[npt.NDArray[np.uint8], tuple[int, int, int, int]]


def _crop_jobs(items: Sequence[tuple[npt.NDArray[np.uint8], npt.ArrayLike]]) -> list[CropJob]:
    return [(image, window) for image, boxes in items
            for window in crop_windows(image.shape[0], image.shape[1], boxes)]


def _network_input(jobs: Sequence[CropJob]) -> FloatArray:
    """Each ``(image, window)`` resized as uint8 into one buffer, then converted plane by
    plane in place: the same float32 arithmetic as ``(rgb / 255 - MEAN) / STD`` per crop
    (bit-identical), without its per-crop temporaries."""
    patches = np.empty((len(jobs), INPUT_HEIGHT, INPUT_WIDTH, 3), dtype=np.uint8)
    for i, (image, (left, top, right, bottom)) in enumerate(jobs):
        patches[i] = cv2.resize(image[top:bottom, left:right], (INPUT_WIDTH, INPUT_HEIGHT),
                                interpolation=cv2.INTER_LINEAR)
    out = np.empty((len(jobs), 3, INPUT_HEIGHT, INPUT_WIDTH), dtype=np.float32)
    for plane in range(3):  # RGB planes from the BGR channels
        view = out[:, plane]
        np.divide(patches[..., 2 - plane], np.float32(255.0), out=view, dtype=np.float32)
        view -= MEAN[plane]
        view /= STD[plane]
    return out


def l2_normalise(vectors: npt.ArrayLike) -> FloatArray:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def quantize(vectors: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Rows → int8, each scaled so that its largest absolute component is 127 (an all-zero
    row stays zero: "no embedding")."""
    v = np.asarray(vectors, dtype=np.float32)
    peak = np.abs(v).max(axis=-1, keepdims=True, initial=0.0)
    scaled = np.divide(v * 127.0, peak, out=np.zeros_like(v), where=peak > 0)
    return np.clip(np.rint(scaled), -127, 127).astype(np.int8)


def dequantize(codes: npt.ArrayLike) -> FloatArray:
    """int8 rows from :func:`quantize` → unit-length float32 rows (zero rows stay zero)."""
    return l2_normalise(np.asarray(codes, dtype=np.float32))


def select(scores: npt.ArrayLike, classes: npt.ArrayLike, class_ids: Sequence[int],
           score_threshold: float, max_crops: int) -> npt.NDArray[np.int64]:
    """Indices of the detections that get an embedding: classes in ``class_ids`` with score
    >= ``score_threshold``, at most ``max_crops`` of them, best score first."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(classes).reshape(-1)
    wanted = np.nonzero(np.isin(c, list(class_ids)) & (s >= score_threshold))[0]
    return wanted[np.argsort(-s[wanted], kind="stable")][:max_crops]


def near_others(boxes: npt.ArrayLike, chosen: npt.ArrayLike, others: npt.ArrayLike,
                margin: float = 0.5) -> npt.NDArray[np.bool_]:
    """For each box of ``chosen``: whether another box of ``others`` (indices) comes within
    ``margin`` x its own width/height — the people whose identity IoU alone could swap.

    >>> b = np.array([[0, 0, .1, .2], [.12, 0, .22, .2], [.8, .8, .9, 1.]])
    >>> near_others(b, [0, 1, 2], [0, 1, 2]).tolist()
    [True, True, False]
    """
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    pick = np.asarray(chosen, dtype=np.int64).reshape(-1)
    pool = np.asarray(others, dtype=np.int64).reshape(-1)
    if len(pick) == 0 or len(pool) < 2:
        return np.zeros(len(pick), dtype=bool)
    a = xyxy[pick]
    w = (a[:, 2] - a[:, 0])[:, None] * margin
    h = (a[:, 3] - a[:, 1])[:, None] * margin
    b = xyxy[pool][None, :, :]
    apart = ((a[:, None, 0] - w > b[..., 2]) | (b[..., 0] > a[:, None, 2] + w)
             | (a[:, None, 1] - h > b[..., 3]) | (b[..., 1] > a[:, None, 3] + h))
    near = ~apart & (pick[:, None] != pool[None, :])
    return np.asarray(near.any(axis=1))


class ReidRunner:
    """OSNet (or any ``batch``x3x256x128 → ``batch``xD re-id ONNX model) in onnxruntime."""

    def __init__(self, model_path: str, threads: int | None = None,
                 providers: Sequence[str] | None = None, batch: int = 16) -> None:
        """Load ``model_path``; crops are run ``batch`` at a time."""
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
        self.session = ort.InferenceSession(str(model_path), options, providers=list(providers))
        self.input_name: str = self.session.get_inputs()[0].name
        dim = self.session.get_outputs()[0].shape[-1]
        self.dim = int(dim) if isinstance(dim, int) else 512
        self.batch = max(1, int(batch))

    def embed(self, image_bgr: npt.NDArray[np.uint8], boxes: npt.ArrayLike) -> FloatArray:
        """Unit-length embeddings (K, D) of ``boxes`` (normalised) in one BGR image."""
        return self.embed_many([(image_bgr, boxes)])[0]

    def embed_many(self, items: Sequence[tuple[npt.NDArray[np.uint8], npt.ArrayLike]],
                   ) -> list[FloatArray]:
        """:meth:`embed` of several ``(image, boxes)`` pairs: the crops of all images go
        through the network together, ``batch`` at a time (fewer, fuller runs)."""
        jobs = _crop_jobs(items)
        parts = [self.session.run(None, {self.input_name: _network_input(chunk)})[0]
                 for chunk in (jobs[i:i + self.batch] for i in range(0, len(jobs), self.batch))]
        flat = (l2_normalise(np.concatenate(parts, axis=0)) if parts
                else np.zeros((0, self.dim), dtype=np.float32))
        counts = [len(np.asarray(boxes).reshape(-1, 4)) for _, boxes in items]
        return np.split(flat, np.cumsum(counts)[:-1]) if counts else []
