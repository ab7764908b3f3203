"""Triton python-backend model ``pose``: JPEG bytes + a person box in, 17 keypoints out.

Inputs/outputs per batch item (see ``../config.pbtxt``):

* ``IMAGE`` TYPE_STRING [1]: one JPEG. ``BOX`` FP32 [4] (optional): the person box, x1, y1,
  x2, y2 normalised; missing or degenerate: the whole image.
* ``KEYPOINTS`` FP32 [17, 3]: COCO keypoints, x, y normalised to the whole image, score.
* ``IMAGE_SIZE`` INT32 [2]: width, height of the decoded JPEG.

MoveNet Lightning takes one crop per run (its ONNX export has a fixed batch of one), so a
dynamic batch is a loop here; batching still saves the per-request overhead. A request with
an undecodable JPEG gets an error response whose message starts with ``corrupt_jpeg:``; the
other requests of the same dynamic batch are answered normally. The crop and the mapping
back to the image live in ``poselib.py`` next to this file.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Put this directory first on sys.path so our poselib.py is the one imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path[:1] != [_HERE]:
    sys.path.insert(0, _HERE)

import poselib  # noqa: E402  (found through the sys.path entry above)

DEFAULT_MODEL_DIR = "/models"


class CorruptJpegError(Exception):
    """An ``IMAGE`` item that OpenCV cannot decode (answered as ``corrupt_jpeg: ...``)."""


def _parameter(config: dict[str, Any], name: str, default: str | None = None) -> str:
    """A ``parameters`` entry of the model config (string value)."""
    entry = config.get("parameters", {}).get(name)
    if entry is None or entry.get("string_value", "") == "":
        if default is None:
            raise ValueError(f"pose: config.pbtxt lacks the parameter {name!r}")
        return default
    return str(entry["string_value"])


def _log_info(message: str) -> None:
    """Log through Triton's logger when the stub provides it."""
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        logger.log_info(message)


class TritonPythonModel:
    """MoveNet Lightning on person crops (one onnxruntime session per model instance)."""

    runner: poselib.PoseRunner

    def initialize(self, args: dict[str, str]) -> None:
        """Read the parameters and ``ARGUS_MODEL_DIR``, load the ONNX model."""
        config = json.loads(args["model_config"])
        model_dir = os.environ.get("ARGUS_MODEL_DIR", DEFAULT_MODEL_DIR)
        model_path = os.path.join(model_dir, _parameter(config, "model_file"))
        if not os.path.isfile(model_path):
            raise FileNotFoundError(
                f"pose: model file {model_path} is missing (ARGUS_MODEL_DIR={model_dir}): "
                "run `argus models fetch` and point ARGUS_MODEL_DIR at its models directory"
            )
        threads = int(_parameter(config, "intra_op_threads", "0"))
        self.runner = poselib.PoseRunner(
            model_path, margin=float(_parameter(config, "margin", "0.15")),
            threads=threads or None)
        _log_info(f"pose: loaded {model_path} on {self.runner.session.get_providers()} "
                  f"(input {self.runner.size}, margin {self.runner.margin})")

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad JPEG fails only the request that carried it."""
        responses = []
        for request in requests:
            try:
                responses.append(self._infer(request))
            except CorruptJpegError as exc:
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"corrupt_jpeg: {exc}"))
                )
            except Exception as exc:  # one broken request must not fail the whole batch
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"pose_error: {type(exc).__name__}: {exc}")
                    )
                )
        return responses

    def _infer(self, request: Any) -> Any:
        """Estimate the pose of every (JPEG, box) item of one request."""
        items = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        items = items.reshape(items.shape[0], -1)[:, 0]
        box_tensor = pb_utils.get_input_tensor_by_name(request, "BOX")
        boxes = None if box_tensor is None else box_tensor.as_numpy().reshape(-1, 4)
        keypoints = np.zeros((len(items), poselib.NUM_KEYPOINTS, 3), dtype=np.float32)
        sizes = np.zeros((len(items), 2), dtype=np.int32)
        for index, item in enumerate(items):
            try:
                image = poselib.decode_jpeg(bytes(item))
            except ValueError as exc:
                where = f" (batch item {index} of {len(items)})" if len(items) > 1 else ""
                raise CorruptJpegError(f"{exc}{where}") from exc
            box = None if boxes is None else boxes[index]
            keypoints[index] = self.runner.estimate(image, box)
            sizes[index] = (image.shape[1], image.shape[0])
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("KEYPOINTS", keypoints), pb_utils.Tensor("IMAGE_SIZE", sizes)])

    def finalize(self) -> None:
        """Release the onnxruntime session."""
        self.__dict__.pop("runner", None)
