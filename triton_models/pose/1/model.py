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

import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Triton's stub appends this directory to sys.path, but at the END: put it first so our
# poselib.py wins over any installed module of that name, and the model repository's root
# (argus_backend.py, shared by every model) right after it.
_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(os.path.dirname(_HERE)), _HERE):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)
# No bytecode: a __pycache__ folder next to argus_backend.py would be a folder at the
# repository root, which Triton takes for a model, and it would refuse to start.
sys.dont_write_bytecode = True

import poselib  # noqa: E402
from argus_backend import Parameters, corrupt_jpeg, log_info, respond  # noqa: E402


class TritonPythonModel:
    """MoveNet Lightning on person crops (one onnxruntime session per model instance)."""

    runner: poselib.PoseRunner

    def initialize(self, args: dict[str, str]) -> None:
        """Read the parameters and ``ARGUS_MODEL_DIR``, load the ONNX model."""
        params = Parameters("pose", args)
        model_path = params.model_file("model_file")
        threads = int(params.get("intra_op_threads", "0"))
        self.runner = poselib.PoseRunner(
            model_path, margin=float(params.get("margin", "0.15")), threads=threads or None)
        log_info(f"pose: loaded {model_path} on {self.runner.session.get_providers()} "
                 f"(input {self.runner.size}, margin {self.runner.margin})")

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad JPEG fails only the request that carried it."""
        return respond("pose", requests, self._infer)

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
                raise corrupt_jpeg(exc, index, len(items)) from exc
            box = None if boxes is None else boxes[index]
            keypoints[index] = self.runner.estimate(image, box)
            sizes[index] = (image.shape[1], image.shape[0])
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("KEYPOINTS", keypoints), pb_utils.Tensor("IMAGE_SIZE", sizes)])

    def finalize(self) -> None:
        """Release the onnxruntime session."""
        self.__dict__.pop("runner", None)
