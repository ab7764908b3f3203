"""The client of Triton's ``detector`` model: JPEG frames in, ``Detections`` out.

Triton decodes the JPEG itself, so a corrupt image comes back as a ``corrupt_jpeg``
error for that frame alone (:class:`~argus.kafka.Rejected`). Used by the detect stage
(``pipelines/stages/detect``) and by the evaluations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from argus.inference.reid import attach_embeddings
from argus.inference.triton import Rejected, TritonModel, jpeg_input
from argus.modelcode import load_yolox_module
from schemas.detections import Box, Detection, Detections
from schemas.frames import FrameHeaders

MODEL = "detector"
COCO_CLASSES: tuple[str, ...] = tuple(load_yolox_module().COCO_CLASSES)


def to_detections(meta: FrameHeaders, boxes: np.ndarray, scores: np.ndarray,
                  classes: np.ndarray, inference_ms: float, model_version: str = "1",
                  ) -> Detections:
    """Build the ``detections`` message from the model's (padded) outputs."""
    found = []
    for box, score, cls in zip(boxes, scores, classes, strict=True):
        if int(cls) < 0:
            continue  # padding
        x1, y1, x2, y2 = (float(min(max(v, 0.0), 1.0)) for v in box)
        found.append(Detection(
            box=Box(x1=x1, y1=y1, x2=max(x1, x2), y2=max(y1, y2)),
            class_id=int(cls),
            class_name=COCO_CLASSES[int(cls)] if int(cls) < len(COCO_CLASSES) else str(int(cls)),
            score=float(min(max(score, 0.0), 1.0)),
        ))
    return Detections(
        camera_id=meta.camera_id, seq=meta.seq, capture_ts=meta.capture_ts,
        width=meta.width, height=meta.height, detections=found,
        model=MODEL, model_version=model_version, inference_ms=round(inference_ms, 3),
    )


BOX_OUTPUTS = ("BOXES", "SCORES", "CLASSES")


class TritonDetector(TritonModel):
    """The client of the ``detector`` model."""

    model = MODEL

    async def infer(self, jpeg: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Boxes (normalised), scores, classes and latency in ms; raises ``Rejected``
        (``corrupt_jpeg``) if the model cannot decode the image."""
        result, ms = await self.call([jpeg_input(jpeg)], BOX_OUTPUTS)
        return (*_boxes(result), ms)

    async def infer_reid(self, jpeg: bytes, near_only: bool = False
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float,
                                    np.ndarray | None, str]:
        """:meth:`infer` plus the person embeddings (``EMBEDDINGS``: int8 rows aligned with
        the boxes, zero rows = none) and the re-id model's name ("" when none were made).
        ``near_only``: embeddings only for people close to another person (request
        parameter ``reid=near``), the ones whose identities IoU alone could swap."""
        result, ms = await self.call([jpeg_input(jpeg)],
                                     (*BOX_OUTPUTS, "EMBEDDINGS", "REID_MODEL"),
                                     {"reid": "near"} if near_only else None)
        codes = result.as_numpy("EMBEDDINGS")
        names = result.as_numpy("REID_MODEL")
        name = names.reshape(-1)[0] if names is not None and names.size else b""
        reid = name.decode() if isinstance(name, bytes) else str(name)
        return (*_boxes(result), ms, None if codes is None else codes[0], reid)


def _boxes(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first image's boxes, scores and classes of a detector response."""
    boxes, scores, classes = (result.as_numpy(name) for name in BOX_OUTPUTS)
    assert boxes is not None and scores is not None and classes is not None
    return boxes[0], scores[0], classes[0]


ReidWanted = bool | str
"""Per frame: True (every person box), ``"near"`` (people close to another) or False."""


async def detect_frames(detector: TritonDetector, frames: list[tuple[FrameHeaders, bytes]],
                        reid: ReidWanted | Sequence[ReidWanted] = True
                        ) -> list[Detections | Rejected]:
    """Run a micro-batch of frames concurrently; a failed frame yields its ``Rejected``.
    With ``reid`` (for all frames, or per frame), person boxes carry the detector's
    re-identification embeddings."""
    wants = [reid] * len(frames) if isinstance(reid, bool | str) else list(reid)

    async def one(meta: FrameHeaders, jpeg: bytes, reid: ReidWanted) -> Detections | Rejected:
        codes, model = None, ""
        try:
            if reid:
                boxes, scores, classes, ms, codes, model = await detector.infer_reid(
                    jpeg, near_only=reid == "near")
            else:
                boxes, scores, classes, ms = await detector.infer(jpeg)
        except Rejected as rejected:
            return rejected
        message = to_detections(meta, boxes, scores, classes, ms)
        return attach_embeddings(message, classes, codes, model) if model else message

    return list(await asyncio.gather(*(one(m, j, r)
                                       for (m, j), r in zip(frames, wants, strict=True))))
