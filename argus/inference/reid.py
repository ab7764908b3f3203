"""Appearance (re-identification) for the tracker: embedding codec, distances, fusion.

The ``detector`` Triton model can return an OSNet embedding per person box
(``triton_models/detector/1/appearance.py``): an L2-normalised 512-d vector sent as int8,
scaled so that its largest component is +-127. On the ``detections`` topic it is the
base64 of those 512 bytes (684 characters, :func:`encode_embedding`); the tracker keeps one
per track (an exponential moving average of its matched boxes' embeddings, stored the same
way in the persisted state).

Association (BoT-SORT style, :func:`fuse_cost`): the IoU gate decides which pairs may
match at all; among those, the cost is the smaller of the IoU cost and half the cosine
distance between the track's embedding and the box's, the latter only when that distance
is at most ``max_distance``. A person who looks like the track can thus win a box that
IoU alone would give to a neighbour, and appearance never blocks a match that IoU allows.
Pairs where either side lacks an embedding keep the plain IoU cost, so the tracker works
unchanged without re-id.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from argus.modelcode import load_module_from_path, load_yolox_module
from argus.settings import REPO_ROOT
from schemas.detections import Detection, Detections

Array = npt.NDArray[np.float64]
FloatArray = npt.NDArray[np.float32]
APPEARANCE_PY = REPO_ROOT / "triton_models" / "detector" / "1" / "appearance.py"


def load_appearance_module() -> ModuleType:
    """The detector's ``appearance.py`` (crops, quantize, ReidRunner), as Triton runs it."""
    return load_module_from_path("argus_triton_detector_appearance", APPEARANCE_PY)


class AppearanceConfig(BaseModel):
    """How appearance enters association (defaults measured on PETS09-S2L1,
    docs/tracking.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    max_distance: float = Field(default=0.6, gt=0.0, le=2.0,
                                description="appearance vouches for a pair up to this "
                                "cosine distance")
    ema: float = Field(default=0.9, ge=0.0, lt=1.0,
                       description="weight of the track's embedding in its running average")
    min_update_score: float = Field(default=0.5, ge=0.0, le=1.0,
                                    description="boxes below this score do not update it")
    occlusion_iou: float = Field(default=0.3, gt=0.0, le=1.0,
                                 description="nor do boxes overlapping another box this much")


def encode_embedding(vector: npt.ArrayLike) -> str:
    """A vector → base64 of int8 codes scaled so that the largest component is +-127."""
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    peak = float(np.abs(v).max()) if v.size else 0.0
    if peak <= 0.0 or not np.isfinite(peak):
        raise ValueError("cannot encode an all-zero or non-finite embedding")
    codes = np.clip(np.rint(v * (127.0 / peak)), -127, 127).astype(np.int8)
    return base64.b64encode(codes.tobytes()).decode("ascii")


def decode_embedding(text: str) -> FloatArray:
    """base64 int8 codes → a unit-length float32 vector; ValueError if unreadable."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"embedding is not base64: {exc}") from None
    v = np.frombuffer(raw, dtype=np.int8).astype(np.float32)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise ValueError("embedding is all zeros")
    return v / norm


def embeddings_of(detections: list[Detection]) -> FloatArray | None:
    """(N, D) unit rows, zero where a detection has none; None when no detection has one
    (or their sizes disagree)."""
    texts = [d.embedding for d in detections]
    if not any(texts):
        return None
    vectors = [None if t is None else decode_embedding(t) for t in texts]
    dims = {len(v) for v in vectors if v is not None}
    if len(dims) != 1:
        return None
    out = np.zeros((len(vectors), dims.pop()), dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            out[i] = v
    return out


def attach_embeddings(message: Detections, classes: npt.ArrayLike, codes: npt.ArrayLike | None,
                      model: str) -> Detections:
    """Put the detector's ``EMBEDDINGS`` output (int8 rows aligned with its padded
    ``CLASSES``; an all-zero row = no embedding) onto ``message``'s detections, which
    ``argus.inference.detector.to_detections`` built from the same rows (padding rows dropped)."""
    if codes is None:
        return message
    rows = np.asarray(codes)
    cls = np.asarray(classes).reshape(-1)
    if rows.ndim != 2 or rows.shape[1] == 0 or len(rows) != len(cls):
        return message
    kept = rows[cls >= 0]
    if len(kept) != len(message.detections) or not kept.any():
        return message
    dets = [d.model_copy(update={"embedding": encode_embedding(row)}) if row.any() else d
            for d, row in zip(message.detections, kept, strict=True)]
    return message.model_copy(update={"detections": dets, "embedding_model": model})


def cosine_distance(tracks: npt.ArrayLike, boxes: npt.ArrayLike) -> Array:
    """(T, N) 1 - cosine similarity of unit rows; NaN where either row is all zero."""
    a = np.asarray(tracks, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64)
    dist = np.asarray(1.0 - a @ b.T, dtype=np.float64)
    missing = ~np.any(a, axis=1)[:, None] | ~np.any(b, axis=1)[None, :]
    dist[missing] = np.nan
    return dist


def fuse_cost(iou_cost: Array, distance: Array, config: AppearanceConfig) -> Array:
    """The association cost: ``min(iou_cost, distance / 2)`` where ``distance`` (cosine,
    NaN = unknown) is at most ``max_distance``, else ``iou_cost`` (BoT-SORT's fusion; the
    caller applies the IoU gate)."""
    d = np.nan_to_num(np.asarray(distance, dtype=np.float64), nan=np.inf)
    vouched = np.where(d <= config.max_distance, d / 2.0, np.inf)
    return np.asarray(np.minimum(iou_cost, vouched), dtype=np.float64)


def updatable(boxes_iou: Array, scores: Array, config: AppearanceConfig) -> npt.NDArray[np.bool_]:
    """Which boxes may update a track's embedding: confident and not overlapping another box
    by ``occlusion_iou`` or more (its crop would show two people). ``boxes_iou`` is the
    boxes' (N, N) IoU with each other."""
    overlap = np.asarray(boxes_iou, dtype=np.float64).copy()
    np.fill_diagonal(overlap, 0.0)
    crowded = overlap.max(axis=1, initial=0.0) >= config.occlusion_iou
    return np.asarray((np.asarray(scores) >= config.min_update_score) & ~crowded)


def ema_update(feature: FloatArray | None, new: FloatArray, alpha: float) -> FloatArray:
    """The running embedding after one more observation (unit length)."""
    if feature is None:
        return np.asarray(new, dtype=np.float32)
    mixed = alpha * feature + (1.0 - alpha) * np.asarray(new, dtype=np.float32)
    norm = float(np.linalg.norm(mixed))
    return np.asarray(mixed / norm if norm > 0 else new, dtype=np.float32)


def feature_from_state(text: str | None) -> FloatArray | None:
    """A track's stored embedding (see :func:`encode_embedding`), None if absent."""
    return None if text is None else decode_embedding(text)


class LocalReid:
    """The detector's re-id step (``appearance.py`` with the Triton config's ``reid*``
    parameters) in this process, as ``model.py`` runs it: for ``argus eval mot --offline``
    and tests. ``runner`` is None when ``reid`` is ``none``."""

    def __init__(self, models_dir: Path, params: Mapping[str, str]) -> None:
        self.module = load_appearance_module()
        self.runner: Any = None
        self.name = ""
        self.score = float(params.get("reid_score_threshold", 0.5))
        self.max_crops = int(params.get("reid_max_crops", 32))
        self.near_margin = float(params.get("reid_near_margin", 0.5))
        self.seconds = 0.0
        if params.get("reid", "none") == "osnet":
            path = models_dir / params.get("reid_model_file", "osnet_x0_25_msmt17.onnx")
            self.runner = self.module.ReidRunner(str(path))
            self.name = path.stem

    def codes(self, jpeg: bytes, boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
              classes: npt.NDArray[np.int32], near_only: bool = False) -> npt.NDArray[np.int8]:
        """int8 embedding rows aligned with the boxes (zero rows: none); the time it takes
        adds up in ``seconds``."""
        if self.runner is None:
            raise RuntimeError("re-id is off (reid: none)")
        started = time.perf_counter()
        image = load_yolox_module().decode_jpeg(jpeg)
        out = np.zeros((len(scores), int(self.runner.dim)), dtype=np.int8)
        chosen = self.module.select(scores, classes, [0], self.score, self.max_crops)
        if near_only and len(chosen):
            people = np.nonzero(np.asarray(classes).reshape(-1) == 0)[0]
            chosen = chosen[self.module.near_others(boxes, chosen, people, self.near_margin)]
        if len(chosen):
            out[chosen] = self.module.quantize(self.runner.embed(image, boxes[chosen]))
        self.seconds += time.perf_counter() - started
        return out


class ReidSchedule:
    """Which frames of a camera get re-id embeddings for every person: one per
    ``interval_s`` of capture time (0: every frame); the detect stage asks for the others'
    embeddings only for people near another person (``near_others`` in the model), the
    ones IoU alone could swap. Embeddings cost one OSNet run per person box, as much as the
    detector itself on a busy scene; the tracker keeps each track's average embedding (fed
    by the full frames) and uses appearance where people are close.

    >>> s = ReidSchedule(0.5)
    >>> [s.due("c", t) for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.2)]
    [True, False, False, True, False, True]
    >>> ReidSchedule(0.0).due("c", 1.0), ReidSchedule(0.0).due("c", 1.0)
    (True, True)
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def due(self, camera_id: str, ts: float) -> bool:
        if self.interval_s <= 0:
            return True
        last = self._last.get(camera_id)
        if last is not None and 0.0 <= ts - last < self.interval_s - 1e-6:
            return False
        self._last[camera_id] = ts
        return True
