"""Triton python-backend model ``anomaly``: two JPEGs of a camera in, motion anomaly out.

Inputs/outputs per batch item (see ``../config.pbtxt``):

* ``PREV``, ``IMAGE`` TYPE_STRING [1]: the camera's previous and current JPEG.
* ``CAMERA`` TYPE_STRING [1]: the camera id; its model is ``<dir>/<camera>.onnx``.
* ``SCORE`` FP32 [1]: the frame score (largest cell score, not smoothed).
* ``THRESHOLD`` FP32 [1], ``WINDOW`` INT32 [1]: the model's operating threshold and the
  causal smoothing window it was chosen for (the stage smooths and decides).
* ``GRID`` INT32 [2]: rows, cols; ``CELL_SCORES`` FP32 [-1]: row-major cell scores, padded
  with -1 to the largest grid of the request.

``<dir>`` is ``$ARGUS_ANOMALY_DIR``, else ``$ARGUS_MODEL_DIR/<model_subdir>``. Models are
loaded on first use and reloaded when their file changes (checked at most every
``check_interval_s``), so a newly trained camera needs no restart; the model loads (and
Triton starts) with no trained camera at all. Errors are per request: ``no_model: ...``
(no trained model for that camera), ``corrupt_jpeg: ...``, ``anomaly_error: ...``.
All the feature and scoring code lives in ``anomalylib.py`` next to this file.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Triton's stub appends this directory to sys.path, but at the END: put it first so our
# anomalylib.py wins over any installed module of that name, and the model repository's root
# (argus_backend.py, shared by every model) right after it.
_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(os.path.dirname(_HERE)), _HERE):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)
# No bytecode: a __pycache__ folder next to argus_backend.py would be a folder at the
# repository root, which Triton takes for a model, and it would refuse to start.
sys.dont_write_bytecode = True

import anomalylib  # noqa: E402
from argus_backend import Parameters, RequestError, log_info, model_dir, respond  # noqa: E402

CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ScorerCache:
    """One ``anomalylib.Scorer`` per camera, reloaded when its file changes."""

    def __init__(self, directory: str, check_interval_s: float, threads: int) -> None:
        self.directory = directory
        self.check_interval_s = check_interval_s
        self.threads = threads
        self._scorers: dict[str, anomalylib.Scorer] = {}
        self._checked: dict[str, float] = {}

    def get(self, camera: str) -> anomalylib.Scorer:
        """The camera's scorer; ``RequestError('no_model', ...)`` when it has none."""
        if not CAMERA_ID.match(camera):
            raise RequestError("no_model", f"invalid camera id {camera!r}")
        now = time.monotonic()
        scorer = self._scorers.get(camera)
        if scorer is not None and now - self._checked.get(camera, 0.0) < self.check_interval_s:
            return scorer
        path = os.path.join(self.directory, camera + ".onnx")
        try:
            mtime = os.path.getmtime(path)
        except OSError:
            self._scorers.pop(camera, None)
            raise RequestError("no_model", f"no anomaly model for camera {camera!r} "
                                           f"({path})") from None
        self._checked[camera] = now
        if scorer is None or scorer.mtime != mtime:
            scorer = anomalylib.Scorer(path, self.threads)
            self._scorers[camera] = scorer
            log_info(f"anomaly: loaded {path} (threshold {scorer.info.threshold:.3f})")
        return scorer


class TritonPythonModel:
    """Per-camera motion anomaly scorers behind one Triton model."""

    cache: ScorerCache

    def initialize(self, args: dict[str, str]) -> None:
        """Find the models folder (it may not exist yet: no camera is trained)."""
        params = Parameters("anomaly", args)
        directory = os.environ.get("ARGUS_ANOMALY_DIR") or os.path.join(
            model_dir(), params.get("model_subdir", "anomaly"))
        self.cache = ScorerCache(directory,
                                 float(params.get("check_interval_s", "5")),
                                 int(params.get("intra_op_threads", "1")))
        present = os.path.isdir(directory)
        log_info(f"anomaly: camera models in {directory}"
                 f"{'' if present else ' (missing: no camera trained yet)'}")

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; an error fails only the request that caused it."""
        return respond("anomaly", requests, self._infer)

    def _score_item(self, prev: bytes, image: bytes, camera: str
                    ) -> tuple[float, anomalylib.Scorer, np.ndarray]:
        scorer = self.cache.get(camera)
        grays = []
        for name, data in (("PREV", prev), ("IMAGE", image)):
            try:
                grays.append(anomalylib.decode_gray(data, scorer.config))
            except ValueError as exc:
                raise RequestError("corrupt_jpeg", f"{name}: {exc}") from None
        score, cells = scorer.score_pair(grays[0], grays[1])
        return score, scorer, cells

    def _infer(self, request: Any) -> Any:
        def column(name: str) -> np.ndarray:
            items = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            return items.reshape(items.shape[0], -1)[:, 0]

        prevs, images, cameras = column("PREV"), column("IMAGE"), column("CAMERA")
        results = []
        for prev, image, camera in zip(prevs, images, cameras, strict=True):
            name = camera.decode() if isinstance(camera, bytes) else str(camera)
            results.append(self._score_item(bytes(prev), bytes(image), name))
        width = max(len(cells) for _, _, cells in results)
        scores = np.zeros((len(results), 1), np.float32)
        thresholds = np.zeros((len(results), 1), np.float32)
        windows = np.zeros((len(results), 1), np.int32)
        grids = np.zeros((len(results), 2), np.int32)
        cell_scores = np.full((len(results), width), -1.0, np.float32)
        for i, (score, scorer, cells) in enumerate(results):
            scores[i, 0] = score
            thresholds[i, 0] = scorer.info.threshold
            windows[i, 0] = scorer.info.window
            grids[i] = (scorer.config.rows, scorer.config.cols)
            cell_scores[i, : len(cells)] = cells
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("SCORE", scores), pb_utils.Tensor("THRESHOLD", thresholds),
            pb_utils.Tensor("WINDOW", windows), pb_utils.Tensor("GRID", grids),
            pb_utils.Tensor("CELL_SCORES", cell_scores)])

    def finalize(self) -> None:
        """Release the onnxruntime sessions."""
        self.__dict__.pop("cache", None)
