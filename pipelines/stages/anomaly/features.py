"""The anomaly model's motion features and score post-processing, for the application side.

The feature code itself lives in ``triton_models/anomaly/1/anomalylib.py`` (the Triton
model folder must be self-contained: the NGC image has none of the repository's packages),
and is imported from there, like the detector's ``yolox.py`` (:mod:`argus.modelcode`): the
training command, the evaluation and the tests compute exactly the features Triton
computes. This module adds typed access to it and the parts that run app-side only:
the causal smoothing of frame scores (:class:`ScoreSmoother`, :func:`causal_smooth`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from argus.modelcode import load_module_from_path
from argus.settings import REPO_ROOT

ANOMALYLIB_PATH = REPO_ROOT / "triton_models" / "anomaly" / "1" / "anomalylib.py"


@lru_cache(maxsize=1)
def anomalylib() -> ModuleType:
    """``anomalylib.py`` of the Triton model (FeatureConfig, cell_features, Scorer, ...)."""
    return load_module_from_path("argus_triton_anomaly_lib", ANOMALYLIB_PATH)


def feature_names() -> tuple[str, ...]:
    """The per-cell feature names, in column order."""
    return tuple(anomalylib().FEATURE_NAMES)


def feature_config(**values: Any) -> Any:
    """An ``anomalylib.FeatureConfig`` (defaults: 360x240 working size, 8x12 cells)."""
    return anomalylib().FeatureConfig(**values)


def working_size(image_width: int, image_height: int, width: int = 360) -> tuple[int, int]:
    """The working (width, height) for frames of this size (aspect kept)."""
    size: tuple[int, int] = anomalylib().working_size(image_width, image_height, width)
    return size


def to_gray(image: np.ndarray, config: Any) -> np.ndarray:
    """A decoded image as uint8 grey at the working size of ``config``."""
    gray: np.ndarray = anomalylib().to_gray(image, config)
    return gray


def decode_gray(jpeg: bytes, config: Any) -> np.ndarray:
    """JPEG bytes as grey at the working size; ``ValueError`` if undecodable."""
    gray: np.ndarray = anomalylib().decode_gray(jpeg, config)
    return gray


def cell_features(prev_gray: np.ndarray, gray: np.ndarray, config: Any) -> np.ndarray:
    """[cells, features] float32 motion features of one pair of working-size frames."""
    features: np.ndarray = anomalylib().cell_features(prev_gray, gray, config)
    return features


def cell_boxes(config: Any) -> np.ndarray:
    """[cells, 4] normalised boxes of the grid cells (row-major)."""
    boxes: np.ndarray = anomalylib().cell_boxes(config)
    return boxes


def load_scorer(path: str, threads: int = 1) -> Any:
    """An ``anomalylib.Scorer`` for a trained model file (onnxruntime, CPU)."""
    return anomalylib().Scorer(path, threads)


def causal_smooth(scores: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` scores (fewer at the start): what the stage
    computes frame by frame, so the evaluation measures what runs.

    >>> causal_smooth([0.0, 2.0, 4.0, 6.0], 2).tolist()
    [0.0, 1.0, 3.0, 5.0]
    >>> causal_smooth([1.0, 3.0], 1).tolist()
    [1.0, 3.0]
    """
    values = np.asarray(scores, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values.copy()
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return np.asarray((sums[ends] - sums[starts]) / (ends - starts))


class ScoreSmoother:
    """The stage's running version of :func:`causal_smooth` for one camera.

    >>> s = ScoreSmoother(2)
    >>> [s.push(v) for v in (0.0, 2.0, 4.0)]
    [0.0, 1.0, 3.0]
    """

    def __init__(self, window: int) -> None:
        self.window = max(1, int(window))
        self._values: deque[float] = deque(maxlen=self.window)

    def push(self, score: float) -> float:
        """Add one frame score; returns the smoothed score."""
        self._values.append(float(score))
        return sum(self._values) / len(self._values)

    def reset(self) -> None:
        """Forget the history (after a gap in the frames)."""
        self._values.clear()
