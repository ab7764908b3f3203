"""Triton python-backend model ``detector``: JPEG bytes in, COCO detections out.

The network is YOLOX-nano by default; ``parameters`` in ``../config.pbtxt`` choose another
ONNX file (``model_file``), its output format (``decoder``: ``yolox`` or ``yolov8`` for
YOLOv8/YOLO11 exports), the input size (``input_size``, or ``auto`` to take it from the
model), the padding (``letterbox``: ``fit`` pads to a multiple of 32, ``square`` to the
full square) and optional tiling (``tiles``, e.g. ``2x2``). ``reid`` (``osnet`` | ``none``) adds a
person re-identification embedding (``appearance.py``) for person boxes scoring at least
``reid_score_threshold``, computed only when a request asks for ``EMBEDDINGS``.

Inputs/outputs per batch item (see ``../config.pbtxt``):

* ``IMAGE`` TYPE_STRING [1]: one JPEG.
* ``BOXES`` FP32 [-1, 4]: x1, y1, x2, y2 normalised to the decoded image (0..1).
* ``SCORES`` FP32 [-1], ``CLASSES`` INT32 [-1]: COCO class ids (``yolox.COCO_CLASSES``).
  Rows are padded to the largest detection count of the request (at least one row);
  padding rows have class -1 and score 0.
* ``IMAGE_SIZE`` INT32 [2]: width, height of the decoded JPEG.
* ``EMBEDDINGS`` INT8 [-1, D]: one row per ``BOXES`` row, the L2-normalised embedding
  scaled so that its largest component is +-127 (``appearance.quantize``); all-zero rows
  have none (other classes, low scores, padding). D is 0 when ``reid`` is ``none``.
* ``REID_MODEL`` BYTES [1]: the re-id model's file stem (e.g. ``osnet_x0_25_msmt17``), empty
  when no embeddings were computed: embeddings of different models must not be compared.

A request with an undecodable JPEG gets an error response whose message starts with
``corrupt_jpeg:``; the other requests of the same dynamic batch are answered normally.

The weights come from ``$ARGUS_MODEL_DIR/<model_file>`` (default ``/models``), put there by
``argus models fetch``. All pre/post-processing lives in ``yolox.py`` next to this file (its
decoders in ``decoders.py``, which ``yolox.py`` loads).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Triton's stub appends this directory to sys.path, but at the END: put it first so our
# yolox.py wins over any installed module of that name, and the model repository's root
# (argus_backend.py, shared by every model) right after it.
_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(os.path.dirname(_HERE)), _HERE):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)
# No bytecode: a __pycache__ folder next to argus_backend.py would be a folder at the
# repository root, which Triton takes for a model, and it would refuse to start.
sys.dont_write_bytecode = True

import appearance  # noqa: E402
import yolox  # noqa: E402
from argus_backend import Parameters, corrupt_jpeg, error_response, log_info  # noqa: E402


class TritonPythonModel:
    """YOLOX detector over a batch of JPEGs (one onnxruntime session per model instance)."""

    runner: yolox.DetectorRunner
    reid: appearance.ReidRunner | None

    def initialize(self, args: dict[str, str]) -> None:
        """Read the parameters and ``ARGUS_MODEL_DIR``, load the ONNX model."""
        params = Parameters("detector", args)
        model_path = params.model_file("model_file")
        threads = params.get("intra_op_threads", "0")
        self.runner = yolox.DetectorRunner.configured(model_path, params,
                                                      threads=int(threads) or None)
        self.reid = None
        self.reid_name = ""
        self.reid_score = float(params.get("reid_score_threshold", "0.5"))
        self.reid_max = int(params.get("reid_max_crops", "32"))
        self.reid_near = float(params.get("reid_near_margin", "0.5"))
        reid = params.get("reid", "none")
        if reid == "osnet":
            reid_path = params.model_file("reid_model_file")
            self.reid = appearance.ReidRunner(reid_path, threads=int(threads) or None)
            self.reid_name = os.path.splitext(os.path.basename(reid_path))[0]
        elif reid != "none":
            raise ValueError(f"detector: unknown reid {reid!r} (osnet | none)")
        log_info(
            f"detector: loaded {model_path} on {self.runner.session.get_providers()} "
            f"(decoder={self.runner.decoder}, score>={self.runner.score_threshold}, "
            f"nms={self.runner.nms_threshold}, size={self.runner.size}, fit={self.runner.fit}, "
            f"tiles={self.runner.tiles}, reid={reid}, reid_score>={self.reid_score})"
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad JPEG fails only the request that carried it.

        Detection runs request by request; then the person crops of every request that
        asked for ``EMBEDDINGS`` go through the re-id model together (fuller batches)."""
        staged: list[Any] = []
        for request in requests:
            try:
                staged.append(self._detect(request))
            except Exception as exc:  # one broken request must not fail the whole batch
                staged.append(error_response("detector", exc))
        self._embed_all([item for item in staged if isinstance(item, _Staged)])
        responses = []
        for item in staged:
            try:
                responses.append(item.response(self.reid_name) if isinstance(item, _Staged)
                                 else item)
            except Exception as exc:
                responses.append(error_response("detector", exc))
        return responses

    def _detect(self, request: Any) -> _Staged:
        """Decode and detect every JPEG of one request into its padded output tensors
        (embeddings still zero)."""
        items = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        items = items.reshape(items.shape[0], -1)[:, 0]
        decoded = []
        for index, item in enumerate(items):
            try:
                decoded.append(yolox.decode_jpeg(bytes(item)))
            except ValueError as exc:
                raise corrupt_jpeg(exc, index, len(items)) from exc
        results = [self.runner.detect_image(image) for image in decoded]
        wanted = "EMBEDDINGS" in set(request.requested_output_names() or ())
        near_only = _parameters(request).get("reid") == "near"
        rows = max([1, *(len(scores) for _, scores, _ in results)])
        staged = _Staged(len(results), rows, self.reid.dim if self.reid is not None and wanted
                         else 0)
        for i, (image, (item_boxes, item_scores, item_classes)) in enumerate(
            zip(decoded, results, strict=True)
        ):
            count = len(item_scores)
            staged.boxes[i, :count] = item_boxes
            staged.scores[i, :count] = item_scores
            staged.classes[i, :count] = item_classes
            staged.sizes[i] = (image.shape[1], image.shape[0])
            if staged.dim:
                chosen = appearance.select(item_scores, item_classes, [0], self.reid_score,
                                           self.reid_max)
                if near_only and len(chosen):
                    people = np.nonzero(np.asarray(item_classes) == 0)[0]
                    chosen = chosen[appearance.near_others(item_boxes, chosen, people,
                                                           self.reid_near)]
                if len(chosen):
                    staged.crops.append((i, chosen, image, item_boxes[chosen]))
        return staged

    def _embed_all(self, staged: list[_Staged]) -> None:
        """Fill the int8 embeddings of every staged request's chosen person boxes, the crops
        of all of them in one re-id pass (should that fail, request by request, so that
        only the failing request gets an error)."""
        jobs = [(item, job) for item in staged for job in item.crops]
        if not jobs or self.reid is None:
            return
        try:
            vectors = self.reid.embed_many([(image, boxes) for _, (_, _, image, boxes) in jobs])
        except Exception:
            for item in staged:
                try:
                    self._embed_all_of(item)
                except Exception as exc:
                    item.error = error_response("detector", exc)
            return
        for (item, (i, chosen, _, _)), vector in zip(jobs, vectors, strict=True):
            item.codes[i, chosen] = appearance.quantize(vector)

    def _embed_all_of(self, item: _Staged) -> None:
        assert self.reid is not None
        if item.crops:
            vectors = self.reid.embed_many([(image, boxes) for _, _, image, boxes in item.crops])
            for (i, chosen, _, _), vector in zip(item.crops, vectors, strict=True):
                item.codes[i, chosen] = appearance.quantize(vector)

    def finalize(self) -> None:
        """Release the onnxruntime session."""
        self.__dict__.pop("runner", None)
        self.__dict__.pop("reid", None)


def _parameters(request: Any) -> dict[str, Any]:
    """The request's parameters (``{"reid": "near"}``: embeddings only for people near
    another person); {} when none or when the server's backend has no such API."""
    try:
        text = request.parameters()
    except AttributeError:
        return {}
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class _Staged:
    """One request's padded outputs between detection and re-id, and its chosen crops
    ``(batch item, rows, image, boxes)``."""

    def __init__(self, items: int, rows: int, dim: int) -> None:
        self.boxes = np.zeros((items, rows, 4), dtype=np.float32)
        self.scores = np.zeros((items, rows), dtype=np.float32)
        self.classes = np.full((items, rows), -1, dtype=np.int32)
        self.sizes = np.zeros((items, 2), dtype=np.int32)
        self.dim = dim
        self.codes = np.zeros((items, rows, dim), dtype=np.int8)
        self.crops: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        self.error: Any = None

    def response(self, reid_name: str) -> Any:
        """The request's response (its error response if re-id failed for it)."""
        if self.error is not None:
            return self.error
        name = reid_name.encode() if self.dim else b""
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("BOXES", self.boxes),
                pb_utils.Tensor("SCORES", self.scores),
                pb_utils.Tensor("CLASSES", self.classes),
                pb_utils.Tensor("IMAGE_SIZE", self.sizes),
                pb_utils.Tensor("EMBEDDINGS", self.codes),
                pb_utils.Tensor("REID_MODEL",
                                np.array([[name]] * len(self.sizes), dtype=np.object_)),
            ]
        )
