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

import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Put this directory first on sys.path so our facelib.py is the one imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path[:1] != [_HERE]:
    sys.path.insert(0, _HERE)

import facelib  # noqa: E402  (found through the sys.path entry above)

DEFAULT_MODEL_DIR = "/models"


class CorruptJpegError(Exception):
    """An ``IMAGE`` item that OpenCV cannot decode (answered as ``corrupt_jpeg: ...``)."""


def _parameter(config: dict[str, Any], name: str, default: str | None = None) -> str:
    """A ``parameters`` entry of the model config (string value)."""
    entry = config.get("parameters", {}).get(name)
    if entry is None or entry.get("string_value", "") == "":
        if default is None:
            raise ValueError(f"faces: config.pbtxt lacks the parameter {name!r}")
        return default
    return str(entry["string_value"])


def _model_path(config: dict[str, Any], key: str) -> str:
    """``$ARGUS_MODEL_DIR/<parameter key>``, checked to exist."""
    model_dir = os.environ.get("ARGUS_MODEL_DIR", DEFAULT_MODEL_DIR)
    path = os.path.join(model_dir, _parameter(config, key))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"faces: model file {path} is missing (ARGUS_MODEL_DIR={model_dir}): "
            "run `argus models fetch` and point ARGUS_MODEL_DIR at its models directory"
        )
    return path


def _log_info(message: str) -> None:
    """Log through Triton's logger when the stub provides it."""
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        logger.log_info(message)


class TritonPythonModel:
    """YuNet + FaceNet over a batch of JPEGs (one analyzer per model instance)."""

    analyzer: facelib.FaceAnalyzer

    def initialize(self, args: dict[str, str]) -> None:
        """Read the parameters and ``ARGUS_MODEL_DIR``, load both ONNX models."""
        config = json.loads(args["model_config"])
        yunet = _model_path(config, "yunet_file")
        facenet = _model_path(config, "facenet_file")
        threads = int(_parameter(config, "intra_op_threads", "0"))
        self.analyzer = facelib.FaceAnalyzer(
            yunet, facenet,
            score_threshold=float(_parameter(config, "score_threshold", "0.7")),
            nms_threshold=float(_parameter(config, "nms_threshold", "0.3")),
            max_side=int(_parameter(config, "max_side", "640")),
            min_side=int(_parameter(config, "min_side", "320")),
            max_faces=int(_parameter(config, "max_faces", "16")),
            align_scale=float(_parameter(config, "align_scale", "0.9")),
            threads=threads or None,
        )
        _log_info(f"faces: loaded {yunet} and {facenet} on "
                  f"{self.analyzer.session.get_providers()}")

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
                        error=pb_utils.TritonError(f"faces_error: {type(exc).__name__}: {exc}")
                    )
                )
        return responses

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
                where = f" (batch item {index} of {len(items)})" if len(items) > 1 else ""
                raise CorruptJpegError(f"{exc}{where}") from exc
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
