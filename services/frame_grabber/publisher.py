"""The publisher of one camera: frames from the camera's buffer → Kafka (``frames.raw``).

:class:`FramePublisher` takes frames from the buffer and sends them with the shared
kafka-python producer, holding at most ``max_in_flight`` unacknowledged sends. When Kafka
is slower than the camera the in-flight slots run out and frames wait in the buffer, where
drop-oldest applies. Every send settles as published or as a ``send_error`` drop; frames
still buffered when the publisher is gone are counted as ``shutdown`` drops
(:meth:`FramePublisher.account_leftovers`).
:class:`~services.frame_grabber.worker.CameraWorker` runs it on its own thread.
"""

from __future__ import annotations

import threading

from kafka import KafkaProducer

from argus.log import get_logger
from argus.metrics import (
    FRAME_SENDS_IN_FLIGHT,
    FRAMES_DROPPED,
    FRAMES_PUBLISHED,
    KAFKA_PRODUCE_ERRORS,
)
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.counters import WorkerCounters
from services.frame_grabber.frame import FRAMES_TOPIC, Frame

log = get_logger(__name__)

_POLL_S = 0.1

__all__ = ["FramePublisher"]


class FramePublisher:
    """Publishes one camera's buffered frames to ``topic``, keyed by the camera id.

    ``producer`` may be set later (before :meth:`run`). Publishing can be paused (frames
    stay buffered, drop-oldest applies) and resumed; :meth:`abort` makes :meth:`run`
    return without publishing what is still buffered. ``stop`` is the worker's stop event.
    """

    def __init__(
        self,
        camera_id: str,
        *,
        label: str,
        topic: str,
        buffer: FrameBuffer[Frame],
        counters: WorkerCounters,
        stop: threading.Event,
        max_in_flight: int,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.label = label
        self.topic = topic
        self.producer = producer
        self._key = camera_id.encode()
        self._buffer = buffer
        self._counters = counters
        self._stop = stop
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._abort = threading.Event()
        self._publishing = threading.Event()
        self._publishing.set()

    # --- control ------------------------------------------------------------------
    def abort(self) -> None:
        """Stop publishing now; what is still buffered is left for :meth:`account_leftovers`."""
        self._abort.set()

    def pause(self) -> None:
        """Hold frames in the buffer (drop-oldest applies)."""
        self._publishing.clear()

    def resume(self) -> None:
        """Publish again after :meth:`pause`."""
        self._publishing.set()

    @property
    def paused(self) -> bool:
        """True while publishing is paused."""
        return not self._publishing.is_set()

    # --- publishing -----------------------------------------------------------------
    def run(self) -> None:
        """Publish buffered frames until the buffer is closed and empty, or stopped/aborted."""
        while not self._abort.is_set():
            if not self._publishing.is_set():
                if self._stop.is_set():
                    return  # paused at shutdown: what is buffered is counted as dropped
                self._publishing.wait(_POLL_S)
                continue
            # Take a send slot *before* taking a frame, so frames wait in the buffer
            # (where drop-oldest applies), never in this thread's hands.
            if not self._slots.acquire(timeout=_POLL_S):
                continue
            frame = self._buffer.get(timeout=_POLL_S)
            if frame is None:
                self._slots.release()
                finishing = self._buffer.closed or self._stop.is_set()
                if finishing and len(self._buffer) == 0:
                    return
                continue
            self._send(frame)

    def _send(self, frame: Frame) -> None:
        assert self.producer is not None  # CameraWorker.start() guarantees it
        self._counters.send_started()
        FRAME_SENDS_IN_FLIGHT.labels(self.label).inc()
        try:
            future = self.producer.send(
                self.topic, value=frame.jpeg, key=self._key,
                headers=frame.headers().to_headers(),
                timestamp_ms=int(frame.capture_ts * 1000),
            )
        except Exception as exc:
            self._on_failed(frame.seq, exc)
            return
        future.add_callback(self._on_sent, frame.seq)
        future.add_errback(self._on_failed, frame.seq)

    def _on_sent(self, seq: int, _metadata: object) -> None:
        FRAMES_PUBLISHED.labels(self.label).inc()
        FRAME_SENDS_IN_FLIGHT.labels(self.label).dec()
        self._counters.send_published()
        self._slots.release()

    def _on_failed(self, seq: int, exc: BaseException) -> None:
        FRAME_SENDS_IN_FLIGHT.labels(self.label).dec()
        KAFKA_PRODUCE_ERRORS.labels("frame_grabber", FRAMES_TOPIC).inc()
        self._counters.send_failed()
        self._slots.release()
        self._counters.drop("send_error", seq, error=repr(exc))

    def account_leftovers(self) -> None:
        """Count frames still buffered when the publisher is gone as dropped (``shutdown``)."""
        leftovers = self._buffer.drain()
        if not leftovers:
            return
        self._counters.add("shutdown", len(leftovers))
        FRAMES_DROPPED.labels(self.label, "shutdown").inc(len(leftovers))
        log.warning("frames left unpublished at shutdown",
                    extra={"camera": self.camera_id, "reason": "shutdown",
                           "dropped": len(leftovers), "first_seq": leftovers[0].seq})
