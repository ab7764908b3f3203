"""Motion features and the ONNX scorer of the ``anomaly`` model (pure numpy + OpenCV).

This file is the one implementation of the anomaly features: Triton serves it (``model.py``
next to it) and the application imports the same file through
``pipelines.stages.anomaly.features`` (training, evaluation, tests), so the features a model was
trained on are exactly the ones it is served with. It runs with numpy 1.26 (Triton's
environment) and numpy 2 (the application's), and needs nothing but numpy, OpenCV and
onnxruntime.

Features: both frames are turned to grey and resized to the model's working size; the
dense optical flow between them (Farneback) and their absolute difference are cut into a
``rows`` x ``cols`` grid; each cell gets ``FEATURE_NAMES``:

* ``flow_mean``: mean flow magnitude (pixels per frame at the working size);
* ``flow_p90``: 90th percentile of the flow magnitude;
* ``moving_frac``: fraction of pixels moving faster than ``moving_px``;
* ``moving_speed``: mean magnitude of those moving pixels (speed of what moves, whatever
  its size);
* ``diff_mean``: mean absolute grey difference (0..255 scaled by 1/25.5).

The trained ONNX graph maps ``FEATURES`` [B, cells, 5] to ``CELL_SCORES`` [B, cells] (the
mean distance of each cell to its k nearest normal cells, in standardised feature space
plus the cell position) and ``SCORE`` [B] (the largest cell score). Its metadata
(``argus.anomaly``, JSON) holds the feature configuration, the operating threshold and the
smoothing window chosen at training time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, cast

import cv2
import numpy as np

FEATURE_NAMES = ("flow_mean", "flow_p90", "moving_frac", "moving_speed", "diff_mean")
METADATA_KEY = "argus.anomaly"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureConfig:
    """How frames become cell features (stored in the trained model's metadata)."""

    width: int = 360  # working size: every frame is resized to width x height
    height: int = 240
    rows: int = 8  # grid of cells
    cols: int = 12
    moving_px: float = 1.0  # a pixel "moves" above this flow magnitude (working pixels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        known = {k: data[k] for k in ("width", "height", "rows", "cols", "moving_px")
                 if k in data}
        return cls(**known)

    @property
    def cells(self) -> int:
        return self.rows * self.cols


def working_size(image_width: int, image_height: int, width: int = 360,
                 multiple: int = 8) -> tuple[int, int]:
    """The working (width, height) for a camera: ``width`` wide, the camera's aspect ratio,
    the height rounded to a multiple of ``multiple``.

    >>> working_size(360, 240)
    (360, 240)
    >>> working_size(1920, 1080)
    (360, 200)
    """
    height = max(multiple, round(image_height * width / image_width / multiple) * multiple)
    return width, int(height)


def to_gray(image: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """A decoded image (grey or BGR) as uint8 grey at the working size."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if gray.shape[:2] != (config.height, config.width):
        gray = cv2.resize(gray, (config.width, config.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray, dtype=np.uint8)


def decode_gray(jpeg: bytes, config: FeatureConfig) -> np.ndarray:
    """JPEG (or PNG) bytes as grey at the working size; ``ValueError`` if undecodable."""
    data = np.frombuffer(jpeg, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image ({len(jpeg)} bytes)")
    return to_gray(image, config)


def _cells(values: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """[H, W] -> [rows * cols, pixels per cell] (the remainder rows/columns are dropped)."""
    ch, cw = values.shape[0] // config.rows, values.shape[1] // config.cols
    cropped = values[: ch * config.rows, : cw * config.cols]
    blocks = cropped.reshape(config.rows, ch, config.cols, cw).swapaxes(1, 2)
    return blocks.reshape(config.rows * config.cols, ch * cw)


def optical_flow(prev_gray: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """Dense Farneback flow [H, W, 2] from ``prev_gray`` to ``gray``."""
    no_initial_flow = cast(Any, None)
    flow = cv2.calcOpticalFlowFarneback(prev_gray, gray, no_initial_flow, 0.5, 3, 15, 3, 5, 1.2, 0)
    return np.asarray(flow, dtype=np.float32)


def cell_features(prev_gray: np.ndarray, gray: np.ndarray, config: FeatureConfig
                  ) -> np.ndarray:
    """The [cells, len(FEATURE_NAMES)] float32 features of one pair of working-size frames."""
    flow = optical_flow(prev_gray, gray)
    magnitude = _cells(np.hypot(flow[..., 0], flow[..., 1]), config)
    diff = _cells(cv2.absdiff(prev_gray, gray).astype(np.float32), config)
    moving = magnitude > config.moving_px
    count = moving.sum(axis=1)
    p90_index = int(0.9 * (magnitude.shape[1] - 1))
    features = np.stack([
        magnitude.mean(axis=1),
        np.partition(magnitude, p90_index, axis=1)[:, p90_index],
        count / magnitude.shape[1],
        (magnitude * moving).sum(axis=1) / np.maximum(count, 1),
        diff.mean(axis=1) / 25.5,
    ], axis=1)
    return features.astype(np.float32)


def cell_boxes(config: FeatureConfig) -> np.ndarray:
    """[cells, 4] normalised x1, y1, x2, y2 of each cell (row-major, like the features)."""
    rows, cols = np.meshgrid(np.arange(config.rows), np.arange(config.cols), indexing="ij")
    x1, y1 = cols.ravel() / config.cols, rows.ravel() / config.rows
    return np.stack([x1, y1, x1 + 1 / config.cols, y1 + 1 / config.rows], 1).astype(np.float32)


@dataclass(frozen=True)
class ModelInfo:
    """What the trained model says about itself (its ``argus.anomaly`` metadata)."""

    features: FeatureConfig
    threshold: float  # operating threshold on the smoothed frame score
    window: int  # causal smoothing window (frames) the threshold was chosen for
    extra: dict[str, Any]

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        data = json.loads(text)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported anomaly model version {data.get('version')!r}")
        return cls(features=FeatureConfig.from_dict(data["features"]),
                   threshold=float(data["threshold"]), window=int(data["window"]),
                   extra={k: v for k, v in data.items()
                          if k not in ("version", "features", "threshold", "window")})

    def to_json(self) -> str:
        return json.dumps({"version": FORMAT_VERSION, "features": self.features.to_dict(),
                           "threshold": self.threshold, "window": self.window, **self.extra},
                          sort_keys=True)


class Scorer:
    """One trained camera model: frames or features in, cell and frame scores out."""

    def __init__(self, path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.path = path
        self.mtime = os.path.getmtime(path)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ValueError(f"{path} is not an anomaly model (no {METADATA_KEY} metadata)")
        self.info = ModelInfo.from_json(meta[METADATA_KEY])

    @property
    def config(self) -> FeatureConfig:
        return self.info.features

    def score_features(self, features: np.ndarray, chunk: int = 16
                       ) -> tuple[np.ndarray, np.ndarray]:
        """[B, cells, D] features -> (frame scores [B], cell scores [B, cells]), run
        ``chunk`` frames at a time (the distance matrix is cells x bank per frame)."""
        batch = np.ascontiguousarray(features, dtype=np.float32)
        if batch.ndim == 2:
            batch = batch[None]
        frames, cells = [], []
        for start in range(0, len(batch), chunk):
            part = {"FEATURES": batch[start:start + chunk]}
            cell_part, frame_part = self.session.run(["CELL_SCORES", "SCORE"], part)
            cells.append(np.asarray(cell_part, np.float32))
            frames.append(np.asarray(frame_part, np.float32))
        if not frames:
            return np.zeros(0, np.float32), np.zeros((0, self.config.cells), np.float32)
        return np.concatenate(frames), np.concatenate(cells)

    def score_pair(self, prev_gray: np.ndarray, gray: np.ndarray
                   ) -> tuple[float, np.ndarray]:
        """The frame score and [cells] cell scores of two working-size grey frames."""
        frames, cells = self.score_features(cell_features(prev_gray, gray, self.config))
        return float(frames[0]), cells[0]
