"""Face detection, alignment, quality and embedding: the single source of truth for ``faces``.

Pure numpy + OpenCV (onnxruntime only inside the runner classes), no Triton imports, so
the same file runs inside the Triton python backend (``model.py`` next to it; numpy 1.26,
OpenCV 4.10) and in the application environment (numpy 2), loaded by file path
(``argus.inference.faces.load_facelib``) for the evaluation, enrollment fallback and tests.

Models (``../shared/README.md``):

* YuNet (``yunet_n_dynamic.onnx``) through onnxruntime, decoded exactly as
  ``cv2.FaceDetectorYN`` does (twice as fast here): per face x, y, w, h, five landmarks
  (eye left-in-image, eye right-in-image, nose tip, mouth left, mouth right), score.
* FaceNet (``facenet_20180408.onnx``): ``input:0`` 1x160x160x3 float32 RGB prewhitened,
  ``embeddings:0`` 1x512 L2-normalised (the export has a fixed batch of one).

Alignment maps the five landmarks onto the ArcFace/insightface 112x112 template scaled to the
crop size (a similarity transform, ``cv2.estimateAffinePartial2D``); ``align_scale`` < 1
zooms out around the crop centre to give FaceNet the margin it was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]

EMBEDDING_DIM = 512
CROP_SIZE = 160
ARCFACE_TEMPLATE_112: FloatArray = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
"""insightface's 5-point template for a 112x112 crop (image-left eye first)."""


def face_template(size: int = CROP_SIZE, scale: float = 1.0) -> FloatArray:
    """The 5-point template for a ``size`` x ``size`` crop.

    The 112 template is scaled by ``size / 112``; ``scale`` then shrinks (< 1: more margin) or
    grows the points around the crop centre.
    """
    points = ARCFACE_TEMPLATE_112 * (size / 112.0)
    centre = size / 2.0
    return np.asarray(centre + (points - centre) * scale, dtype=np.float32)


def alignment_matrix(landmarks: npt.ArrayLike, template: npt.ArrayLike) -> FloatArray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) taking ``landmarks``
    (5x2 image pixels) onto ``template`` in the least-squares sense.

    ``cv2.estimateAffinePartial2D`` with a reprojection threshold so large that every point is
    an inlier, so its Levenberg-Marquardt refinement runs over all five points.
    """
    src = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
    dst = np.asarray(template, dtype=np.float32).reshape(-1, 2)
    if src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"need matching point sets, got {src.shape} and {dst.shape}")
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                            ransacReprojThreshold=1e6, refineIters=50)
    if matrix is None:
        raise ValueError("degenerate landmarks: no similarity transform")
    return np.asarray(matrix, dtype=np.float32)


def align_face(image_bgr: ImageArray, landmarks: npt.ArrayLike, size: int = CROP_SIZE,
               scale: float = 1.0) -> ImageArray:
    """The ``size`` x ``size`` BGR face crop aligned to :func:`face_template`."""
    matrix = alignment_matrix(landmarks, face_template(size, scale))
    crop = cv2.warpAffine(image_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return np.asarray(crop, dtype=np.uint8)


def prewhiten(image: npt.ArrayLike) -> FloatArray:
    """FaceNet's per-image standardisation: ``(x - mean) / max(std, 1 / sqrt(n))``."""
    x = np.asarray(image, dtype=np.float32)
    std_adj = max(float(x.std()), 1.0 / math.sqrt(x.size))
    return np.asarray((x - x.mean()) / std_adj, dtype=np.float32)


def facenet_input(crop_bgr: ImageArray) -> FloatArray:
    """An aligned BGR crop → FaceNet's 1x160x160x3 RGB prewhitened float32 tensor."""
    rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
    return prewhiten(rgb)[None]


def l2_normalise(vectors: npt.ArrayLike) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.asarray(v / np.where(norms > 0, norms, 1.0), dtype=np.float32)


# --- quality ---------------------------------------------------------------------------------

def size_score(face_px: float, min_px: float = 24.0, good_px: float = 80.0) -> float:
    """0 below ``min_px`` (the short side of the face box), 1 from ``good_px``, linear between."""
    if good_px <= min_px:
        raise ValueError("good_px must exceed min_px")
    return float(np.clip((face_px - min_px) / (good_px - min_px), 0.0, 1.0))


def pose_ratios(landmarks: npt.ArrayLike) -> tuple[float, float]:
    """(yaw, pitch) ratios from five landmarks, independent of in-plane rotation and scale.

    yaw: the nose tip's offset from the eyes' midpoint along the eye axis, in half eye
    distances (0 frontal, ±1 when the nose is in front of an eye). pitch: the nose tip's
    position between the eye line (0) and the mouth line (1).
    """
    p = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_mid = (p[0] + p[1]) / 2.0
    eye_vec = p[1] - p[0]
    half = float(np.linalg.norm(eye_vec)) / 2.0
    if half <= 1e-6:
        return 1.0, 0.0
    u = eye_vec / (2.0 * half)
    v = np.array([-u[1], u[0]])  # perpendicular, pointing down the face
    nose = p[2] - eye_mid
    mouth = (p[3] + p[4]) / 2.0 - eye_mid
    yaw = float(nose @ u) / half
    mouth_down = float(mouth @ v)
    pitch = float(nose @ v) / mouth_down if mouth_down > 1e-6 else 0.0
    return yaw, pitch


PITCH_NEUTRAL = 0.62
"""Where YuNet's nose tip sits between the eye line (0) and the mouth line (1) on a frontal
face: the median over the deepface portraits (YuNet marks the nose tip lower than the ArcFace
template's 0.49)."""


def frontal_score(landmarks: npt.ArrayLike, yaw_limit: float = 0.9,
                  pitch_limit: float = 0.35) -> float:
    """1 for a frontal face, falling linearly to 0 at ``yaw_limit`` or at a pitch ratio
    ``pitch_limit`` away from the frontal one (the product of the two)."""
    yaw, pitch = pose_ratios(landmarks)
    yaw_ok = np.clip(1.0 - abs(yaw) / yaw_limit, 0.0, 1.0)
    pitch_ok = np.clip(1.0 - abs(pitch - PITCH_NEUTRAL) / pitch_limit, 0.0, 1.0)
    return float(yaw_ok * pitch_ok)


def laplacian_variance(crop_bgr: ImageArray) -> float:
    """Variance of the Laplacian of the grey crop (low = blurred or upscaled)."""
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY) if crop_bgr.ndim == 3 else crop_bgr
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sharpness_score(variance: float, blurred: float = 30.0, sharp: float = 300.0) -> float:
    """0 at or below ``blurred`` Laplacian variance, 1 from ``sharp``, linear in log scale."""
    if variance <= blurred:
        return 0.0
    return float(np.clip(math.log(variance / blurred) / math.log(sharp / blurred), 0.0, 1.0))


def quality_score(parts: npt.ArrayLike) -> float:
    """The geometric mean of the quality parts (size, frontal, sharpness): 0 if any is 0."""
    values = np.clip(np.asarray(parts, dtype=np.float64).reshape(-1), 0.0, 1.0)
    return float(np.prod(values) ** (1.0 / values.size)) if values.size else 0.0


# --- detection helpers -----------------------------------------------------------------------

def detection_scale(width: int, height: int, max_side: int = 640, min_side: int = 0) -> float:
    """Factor to resize an image by before YuNet: down to ``max_side``, up to ``min_side``."""
    long_side = max(width, height)
    if long_side <= 0:
        raise ValueError(f"empty image {width}x{height}")
    if long_side > max_side:
        return max_side / long_side
    if min_side and long_side < min_side:
        return min_side / long_side
    return 1.0


def roi_pixels(box: npt.ArrayLike | None, width: int, height: int) -> tuple[int, int, int, int]:
    """A normalised x1, y1, x2, y2 box → pixel bounds clipped to the image; the whole image
    when ``box`` is None or degenerate (x2 <= x1 or y2 <= y1 after clipping)."""
    if box is None:
        return 0, 0, width, height
    x1, y1, x2, y2 = np.clip(np.asarray(box, dtype=np.float64).reshape(4), 0.0, 1.0)
    px = (math.floor(x1 * width), math.floor(y1 * height),
          math.ceil(x2 * width), math.ceil(y2 * height))
    if px[2] - px[0] < 2 or px[3] - px[1] < 2:
        return 0, 0, width, height
    return px


def decode_jpeg(jpeg_bytes: bytes) -> ImageArray:
    """JPEG (or any OpenCV-readable image) bytes → HxWx3 BGR; ``ValueError`` if undecodable
    or cut short inside the image data (no end-of-image marker after the last scan)."""
    if not jpeg_bytes:
        raise ValueError("cannot decode JPEG (0 bytes)")
    if jpeg_bytes[:2] == b"\xff\xd8" and jpeg_bytes.rfind(b"\xff\xd9") < jpeg_bytes.rfind(
            b"\xff\xda"):
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes): truncated")
    try:
        image = cv2.imdecode(np.frombuffer(jpeg_bytes, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes): {exc}") from exc
    if image is None or image.size == 0:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes)")
    return np.asarray(image, dtype=np.uint8)


YUNET_STRIDES = (8, 16, 32)


def decode_yunet(outputs: Mapping[str, npt.NDArray[np.float32]], pad_w: int, pad_h: int,
                 score_threshold: float) -> npt.NDArray[np.float32]:
    """Raw YuNet outputs (``cls_/obj_/bbox_/kps_<stride>``, batch 1) of a ``pad_w`` x ``pad_h``
    input → rows (N, 15): x, y, w, h, 5 landmarks x/y, score, as ``cv2.FaceDetectorYN``
    decodes them (anchor-free: cell + offset, times the stride; exp for the size;
    score = sqrt(cls * obj)); only rows scoring at least ``score_threshold``, before NMS."""
    rows = []
    for stride in YUNET_STRIDES:
        cols = pad_w // stride
        cells = cols * (pad_h // stride)
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1)[:cells], 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1)[:cells], 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        grid = np.stack((keep % cols, keep // cols), axis=1).astype(np.float32)
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[keep]
        centre = (grid + bbox[:, :2]) * stride
        size = np.exp(bbox[:, 2:4]) * stride
        landmarks = (kps.reshape(-1, 5, 2) + grid[:, None, :]) * stride
        rows.append(np.concatenate([centre - size / 2, size, landmarks.reshape(-1, 10),
                                    score[keep, None]], axis=1))
    if not rows:
        return np.zeros((0, 15), dtype=np.float32)
    return np.asarray(np.concatenate(rows), dtype=np.float32)


class YuNet:
    """YuNet through onnxruntime (``yunet_n_dynamic.onnx``, any input size): ~2.5x faster
    than ``cv2.FaceDetectorYN`` on this CPU, same decoding and NMS."""

    def __init__(self, path: str, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 options: Any = None, providers: Sequence[str] = ("CPUExecutionProvider",),
                 ) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def detect(self, image_bgr: ImageArray) -> npt.NDArray[np.float32]:
        """Rows (N, 15) in ``image_bgr`` pixels, best score first."""
        height, width = image_bgr.shape[:2]
        pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
        padded = np.zeros((pad_h, pad_w, 3), np.float32)
        padded[:height, :width] = image_bgr
        names = [o.name for o in self.session.get_outputs()]
        raw = self.session.run(names, {"input": padded.transpose(2, 0, 1)[None]})
        rows = decode_yunet(dict(zip(names, raw, strict=True)), pad_w, pad_h,
                            self.score_threshold)
        if len(rows) == 0:
            return rows
        keep = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(),
                                self.score_threshold, self.nms_threshold)
        kept = rows[np.asarray(keep, dtype=np.int64).reshape(-1)]
        return kept[np.argsort(-kept[:, 14], kind="stable")]


@dataclass(frozen=True)
class Face:
    """One face, coordinates normalised to the whole image (0..1)."""

    box: FloatArray
    """x1, y1, x2, y2."""
    landmarks: FloatArray
    """5x2: eye (image left), eye (image right), nose tip, mouth left, mouth right."""
    score: float
    quality: float
    parts: FloatArray
    """Quality parts: size, frontal, sharpness (each 0..1)."""
    embedding: FloatArray
    """512-d, unit length."""


class FaceAnalyzer:
    """YuNet + alignment + quality + FaceNet (one instance per thread: not thread-safe)."""

    def __init__(self, yunet_path: str, facenet_path: str, *, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3, max_side: int = 640, min_side: int = 320,
                 max_faces: int = 16, align_scale: float = 1.0, threads: int | None = None,
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
        self.detector = YuNet(yunet_path, score_threshold, nms_threshold, options, providers)
        self.session = ort.InferenceSession(str(facenet_path), options,
                                            providers=list(providers))
        self.input_name: str = self.session.get_inputs()[0].name
        self.max_side, self.min_side = int(max_side), int(min_side)
        self.max_faces = int(max_faces)
        self.align_scale = float(align_scale)

    def detect(self, image_bgr: ImageArray) -> npt.NDArray[np.float32]:
        """YuNet rows (N, 15) in ``image_bgr`` pixels, largest (visible) box first."""
        height, width = image_bgr.shape[:2]
        scale = detection_scale(width, height, self.max_side, self.min_side)
        resized: ImageArray = image_bgr if scale == 1.0 else np.asarray(cv2.resize(
            image_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR), dtype=np.uint8)
        rows = self.detector.detect(resized)
        if len(rows) == 0:
            return rows
        rows[:, :14] /= scale
        visible_w = np.clip(rows[:, 0] + rows[:, 2], 0, width) - np.clip(rows[:, 0], 0, width)
        visible_h = np.clip(rows[:, 1] + rows[:, 3], 0, height) - np.clip(rows[:, 1], 0, height)
        order = np.argsort(-(visible_w * visible_h), kind="stable")
        return rows[order]

    def embed(self, crops: Sequence[ImageArray]) -> FloatArray:
        """(N, 512) unit embeddings of aligned 160x160 BGR crops."""
        out = np.zeros((len(crops), EMBEDDING_DIM), dtype=np.float32)
        for i, crop in enumerate(crops):
            out[i] = self.session.run(None, {self.input_name: facenet_input(crop)})[0][0]
        return l2_normalise(out)

    def analyze(self, image_bgr: ImageArray, box: npt.ArrayLike | None = None) -> list[Face]:
        """Every face (at most ``max_faces``, largest first) inside the normalised ``box``
        (default: the whole image), with quality and embedding."""
        height, width = image_bgr.shape[:2]
        x1, y1, x2, y2 = roi_pixels(box, width, height)
        rows = self.detect(image_bgr[y1:y2, x1:x2])[: self.max_faces]
        rows[:, [0, 4, 6, 8, 10, 12]] += x1
        rows[:, [1, 5, 7, 9, 11, 13]] += y1
        crops, metas = [], []
        for row in rows:
            landmarks = row[4:14].reshape(5, 2)
            crop = align_face(image_bgr, landmarks, CROP_SIZE, self.align_scale)
            parts = np.array([size_score(float(min(row[2], row[3]))), frontal_score(landmarks),
                              sharpness_score(laplacian_variance(crop))], dtype=np.float32)
            crops.append(crop)
            metas.append((row, landmarks, parts))
        embeddings = self.embed(crops)
        scale = np.array([width, height], dtype=np.float32)
        faces = []
        for (row, landmarks, parts), embedding in zip(metas, embeddings, strict=True):
            corners = np.array([row[0], row[1], row[0] + row[2], row[1] + row[3]],
                               dtype=np.float32).reshape(2, 2) / scale
            faces.append(Face(
                box=np.clip(corners.reshape(4), 0.0, 1.0),
                landmarks=np.asarray(landmarks / scale, dtype=np.float32),
                score=float(np.clip(row[14], 0.0, 1.0)),
                quality=quality_score(parts), parts=parts, embedding=embedding))
        return faces
