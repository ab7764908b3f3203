"""The asyncio gRPC client the stages use to call Triton models on JPEG frames.

One request per frame, so Triton's dynamic batcher can group frames from many cameras.
A model that cannot decode an image answers that request alone with a ``corrupt_jpeg``
error, which becomes :class:`Rejected` (a dead letter); any other error is raised for
the stage to retry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from tritonclient.grpc import InferenceServerException, InferResult
from tritonclient.grpc.aio import InferenceServerClient, InferInput, InferRequestedOutput

from argus.kafka import Rejected
from argus.metrics import TRITON_LATENCY

__all__ = ["Rejected", "TritonModel", "jpeg_input"]




def jpeg_input(jpeg: bytes) -> InferInput:
    """The ``IMAGE`` input: a batch of one JPEG (``TYPE_STRING``)."""
    image = InferInput("IMAGE", [1, 1], "BYTES")
    image.set_data_from_numpy(np.array([[jpeg]], dtype=np.object_))
    return image


@dataclass
class TritonModel:
    """A lazily connected client of one model; subclasses set ``model`` and parse outputs."""

    model: ClassVar[str] = ""
    url: str
    timeout_s: float = 30.0
    _client: InferenceServerClient | None = None

    @property
    def client(self) -> InferenceServerClient:
        if self._client is None:
            self._client = InferenceServerClient(self.url)
        return self._client

    async def ready(self) -> bool:
        try:
            return bool(await self.client.is_model_ready(self.model))
        except InferenceServerException:
            return False

    async def call(self, inputs: list[InferInput], outputs: Sequence[str],
                   parameters: dict[str, str] | None = None) -> tuple[InferResult, float]:
        """Run one request; returns the result and the latency in ms (also observed in
        ``argus_triton_request_seconds``). Raises ``Rejected`` for ``corrupt_jpeg``."""
        started = time.perf_counter()
        try:
            result = await self.client.infer(
                self.model, inputs, outputs=[InferRequestedOutput(n) for n in outputs],
                client_timeout=self.timeout_s, parameters=parameters)
        except InferenceServerException as exc:
            if "corrupt_jpeg" in str(exc):
                raise Rejected("corrupt_jpeg", str(exc.message())) from None
            raise
        elapsed = time.perf_counter() - started
        TRITON_LATENCY.labels(self.model).observe(elapsed)
        return result, elapsed * 1000.0

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
