"""The client of Triton's ``plates`` model: a JPEG and a vehicle box in, plate reads out.

The model returns every read of the vehicle (``READS``, JSON, best first) with no country
format applied; :func:`argus.plates.reader.plate_of` applies the site's
:class:`~argus.plates.text.PlateFormat`. A corrupt JPEG is a ``corrupt_jpeg`` error for that
request alone (:class:`~argus.kafka.Rejected`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from tritonclient.grpc.aio import InferInput

from argus.inference.pose import box_values
from argus.inference.triton import TritonModel, jpeg_input
from schemas.detections import Box

MODEL = "plates"
OUTPUTS = ("TEXT", "SCORE", "PLATE_BOX", "READS")


class TritonPlates(TritonModel):
    """The client of the ``plates`` model: one JPEG and one vehicle box per request."""

    model = MODEL

    async def infer(self, jpeg: bytes, box: Box | Sequence[float] | None,
                    ) -> tuple[list[dict[str, Any]], float]:
        """The reads of the vehicle in ``box`` (normalised; None: the whole image is the
        vehicle), best first, as JSON-safe dicts (``text``, ``confidence``, ``confidences``,
        ``alternatives``, ``box`` normalised to the image, ``det_score``, ``score``), and
        the latency in ms."""
        box_input = InferInput("BOX", [1, 4], "FP32")
        box_input.set_data_from_numpy(np.asarray([box_values(box)], dtype=np.float32))
        result, ms = await self.call([jpeg_input(jpeg), box_input], OUTPUTS)
        raw = result.as_numpy("READS")
        assert raw is not None
        value = raw.reshape(-1)[0]
        reads = json.loads(value.decode() if isinstance(value, bytes) else str(value))
        return list(reads), ms
