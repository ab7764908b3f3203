"""Triton python-backend model ``plates``: JPEG bytes (+ a vehicle box) in, plate reads out.

Inputs/outputs per batch item (see ``../config.pbtxt``):

* ``IMAGE`` TYPE_STRING [1]: one JPEG (a vehicle crop, or a frame). ``BOX`` FP32 [4]
  (optional): the vehicle box, x1, y1, x2, y2 normalised; missing or degenerate: the whole
  image is the vehicle.
* ``TEXT`` TYPE_STRING [1], ``SCORE`` FP32 [1], ``PLATE_BOX`` FP32 [4]: the most plate-like
  read ("" / 0 / zeros when none); ``READS`` TYPE_STRING [1]: every read as JSON, best first.

The site's plate format is applied by the caller (``argus.plates``), so one model serves
every country. A request with an undecodable JPEG gets an error response whose message
starts with ``corrupt_jpeg:``; the other requests of the same dynamic batch are answered
normally. The reading itself lives in ``platelib.py`` next to this file.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# Triton's stub appends this directory to sys.path, but at the END: put it first so our
# platelib.py wins over any installed module of that name, and the model repository's root
# (argus_backend.py, shared by every model) right after it.
_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(os.path.dirname(_HERE)), _HERE):
    if _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)
# No bytecode: a __pycache__ folder next to argus_backend.py would be a folder at the
# repository root, which Triton takes for a model, and it would refuse to start.
sys.dont_write_bytecode = True

import platelib  # noqa: E402
from argus_backend import Parameters, corrupt_jpeg, log_info, respond  # noqa: E402


class TritonPythonModel:
    """PP-OCR det + rec on vehicle crops (one pair of onnxruntime sessions per instance)."""

    reader: platelib.PlateReader

    def initialize(self, args: dict[str, str]) -> None:
        """Read the parameters and ``ARGUS_MODEL_DIR``, load the ONNX models."""
        params = Parameters("plates", args)
        det = params.model_file("det_model_file")
        rec = params.model_file("rec_model_file")
        threads = int(params.get("intra_op_threads", "0"))
        self.reader = platelib.PlateReader.configured(det, rec, params, threads=threads or None)
        log_info(f"plates: loaded {det}, {rec} on {self.reader.det.get_providers()} "
                 f"(det width {self.reader.det_width}, search from {self.reader.search_top}, "
                 f"top {self.reader.top_k})")

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request; a bad JPEG fails only the request that carried it."""
        return respond("plates", requests, self._infer)

    def _infer(self, request: Any) -> Any:
        """Read the plate of every (JPEG, box) item of one request."""
        items = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        items = items.reshape(items.shape[0], -1)[:, 0]
        box_tensor = pb_utils.get_input_tensor_by_name(request, "BOX")
        boxes = None if box_tensor is None else box_tensor.as_numpy().reshape(-1, 4)
        count = len(items)
        texts = np.empty((count, 1), dtype=object)
        reads_json = np.empty((count, 1), dtype=object)
        scores = np.zeros((count, 1), dtype=np.float32)
        plate_boxes = np.zeros((count, 4), dtype=np.float32)
        for index, item in enumerate(items):
            try:
                image = platelib.decode_jpeg(bytes(item))
            except ValueError as exc:
                raise corrupt_jpeg(exc, index, count) from exc
            box = None if boxes is None else boxes[index]
            reads = self.reader.read_image(image, box)
            best = reads[0] if reads else None
            texts[index, 0] = (best.text if best else "").encode()
            scores[index, 0] = best.score if best else 0.0
            if best is not None:
                plate_boxes[index] = best.box
            reads_json[index, 0] = json.dumps([r.as_dict() for r in reads]).encode()
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("TEXT", texts), pb_utils.Tensor("SCORE", scores),
            pb_utils.Tensor("PLATE_BOX", plate_boxes), pb_utils.Tensor("READS", reads_json)])

    def finalize(self) -> None:
        """Release the onnxruntime sessions."""
        self.__dict__.pop("reader", None)
