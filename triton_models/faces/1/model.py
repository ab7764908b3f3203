"""Triton python-backend model ``faces``: JPEG bytes in, faces with embeddings out.

Inputs/outputs per batch item (see ``../config.pbtxt``):

* ``IMAGE`` TYPE_STRING [1]: one JPEG. ``BOX`` FP32 [4] (optional): a normalised region of
  interest (a person box); faces are searched inside it only.
* ``COUNT`` INT32 [1]: faces found (rows of the outputs below that are faces, largest first).
* ``BOXES`` FP32 [-1, 4], ``LANDMARKS`` FP32 [-1, 10]: normalised to the whole image.
* ``SCORES``, ``QUALITY`` FP32 [-1]; ``QUALITY_PARTS`` FP32 [-1, 3] (size, frontal, sharpness).
* ``EMBEDDINGS`` FP32 [-1, 512]: FaceNet, unit length. ``IMAGE_SIZE`` INT32 [2]: width, height.

Rows are padded (zeros) to the largest face count of the request, at least one row.
A request with an undecodable JPEG gets an error response whose message starts with
``corrupt_jpeg:``; the other requests of the same dynamic batch are answered normally.
All the face logic lives in ``facelib.py`` next to this file.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Triton's stub appends this directory to sys.path, but at the END: put it first so our
# facelib.py wins over any installed module of that name, and the model repository's root
# (argus_backend.py, shared by every model) right after it.
_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(os.path.dirname(_HERE)), _HERE):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)
# No bytecode: a __pycache__ folder next to argus_backend.py would be a folder at the
# repository root, which Triton takes for a model, and it would refuse to start.
sys.dont_write_bytecode = True

import facelib  # noqa: E402
from argus_backend import Parameters, corrupt_jpeg, log_info, respond  # noqa: E402


class TritonPythonModel:
    """YuNet + FaceNet over a batch of JPEGs (one analyzer per model instance)."""

    analyzer: facelib.FaceAnalyzer

    def initialize(self, args: dict[str, str]) -> None:
        """Read the parameters and ``ARGUS_MODEL_DIR``, load both ONNX models."""
        params = Parameters("faces", args)
        yunet = params.model_file("yunet_file")
        facenet = params.model_file("facenet_file")
        threads = int(params.get("intra_op_threads", "0"))
        self.analyzer = facelib.FaceAnalyzer(
            yunet, facenet,
            score_threshold=float(params.get("score_threshold", "0.7")),
            nms_threshold=float(params.get("nms_threshold", "0.3")),
            max_side=int(params.get("max_side", "640")),
            min_side=int(params.get("min_side", "320")),
            max_faces=int(params.get("max_faces", "16")),
            align_scale=float(params.get("align_scale", "0.9")),
            threads=threads or None,
        )
        log_info(f"faces: loaded {yunet} and {facenet} on "
                 f"{self.analyzer.session.get_providers()}")

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad JPEG fails only the request that carried it."""
        return respond("faces", requests, self._infer)

    def _infer(self, request: Any) -> Any:
        """Analyze every JPEG of one request and build its padded output tensors."""
        items = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        items = items.reshape(items.shape[0], -1)[:, 0]
        box_tensor = pb_utils.get_input_tensor_by_name(request, "BOX")
        boxes_in = None if box_tensor is None else box_tensor.as_numpy().reshape(-1, 4)
        results = []
        for index, item in enumerate(items):
            try:
                image = facelib.decode_jpeg(bytes(item))
            except ValueError as exc:
                raise corrupt_jpeg(exc, index, len(items)) from exc
            roi = None if boxes_in is None else boxes_in[index]
            results.append((image.shape[1], image.shape[0], self.analyzer.analyze(image, roi)))
        return pb_utils.InferenceResponse(output_tensors=self._tensors(results))

    @staticmethod
    def _tensors(results: list[tuple[int, int, list[facelib.Face]]]) -> list[Any]:
        """Padded output tensors for the per-item face lists."""
        n = len(results)
        rows = max([1, *(len(faces) for _, _, faces in results)])
        count = np.zeros((n, 1), dtype=np.int32)
        boxes = np.zeros((n, rows, 4), dtype=np.float32)
        landmarks = np.zeros((n, rows, 10), dtype=np.float32)
        scores = np.zeros((n, rows), dtype=np.float32)
        quality = np.zeros((n, rows), dtype=np.float32)
        parts = np.zeros((n, rows, 3), dtype=np.float32)
        embeddings = np.zeros((n, rows, facelib.EMBEDDING_DIM), dtype=np.float32)
        sizes = np.zeros((n, 2), dtype=np.int32)
        for i, (width, height, faces) in enumerate(results):
            count[i, 0] = len(faces)
            sizes[i] = (width, height)
            for j, face in enumerate(faces):
                boxes[i, j] = face.box
                landmarks[i, j] = face.landmarks.reshape(10)
                scores[i, j] = face.score
                quality[i, j] = face.quality
                parts[i, j] = face.parts
                embeddings[i, j] = face.embedding
        return [
            pb_utils.Tensor("COUNT", count), pb_utils.Tensor("BOXES", boxes),
            pb_utils.Tensor("LANDMARKS", landmarks), pb_utils.Tensor("SCORES", scores),
            pb_utils.Tensor("QUALITY", quality), pb_utils.Tensor("QUALITY_PARTS", parts),
            pb_utils.Tensor("EMBEDDINGS", embeddings), pb_utils.Tensor("IMAGE_SIZE", sizes),
        ]

    def finalize(self) -> None:
        """Release the onnxruntime session and the detector."""
        self.__dict__.pop("analyzer", None)
