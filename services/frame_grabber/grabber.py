"""The frame grabber: cameras → JPEG frames → ``frames.raw``.

One :class:`CameraWorker` per camera runs two threads:

* the **reader** opens the source (reconnecting with :class:`Backoff`), samples it to the
  camera's fps with :class:`FrameSampler`, optionally downscales, JPEG-encodes, stamps
  ``seq``/``capture_ts`` and puts the frame into a bounded :class:`FrameBuffer`;
* the **publisher** takes frames from the buffer and sends them with a shared kafka-python
  producer, holding at most ``max_in_flight`` unacknowledged sends.

When Kafka is slower than the camera the in-flight slots run out, the buffer fills and
drop-oldest takes over: memory stays bounded and every dropped frame is counted
(``argus_frames_dropped_total{reason=...}``). :class:`FrameGrabber` runs many workers in
one process with one producer.

Drop reasons: ``backpressure`` (buffer full, oldest dropped), ``oversize`` (JPEG larger
than ``max_frame_bytes``), ``encode_error``, ``send_error`` (Kafka gave up after its
retries) and ``shutdown`` (still buffered when the worker stopped).

Where the pieces live (all in ``services/frame_grabber/``):

* ``grabber.py`` — :class:`FrameGrabber` and the shared producer (this module);
* ``worker.py`` — :class:`CameraWorker`: one camera's threads, control and ``stats()``;
* ``reader.py`` — :class:`CameraReader`: open/reconnect, sample, encode, buffer;
* ``publisher.py`` — :class:`FramePublisher`: in-flight-bounded Kafka sends and their
  accounting;
* ``counters.py`` — :class:`WorkerCounters`: the per-camera counters and drop logging;
* ``frame.py`` — :class:`Frame`, ``FRAMES_TOPIC`` and :func:`downscale`;
* ``buffer.py``, ``source.py``, ``liveness.py`` — the drop-oldest buffer, sources and
  sampling, liveness gauges.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaProducer

from argus.kafka import make_producer
from argus.log import get_logger
from argus.settings import Settings, get_settings
from argus.topology import Camera
from services.frame_grabber.frame import FRAMES_TOPIC
from services.frame_grabber.worker import DEFAULT_BUFFER_SIZE, DEFAULT_MAX_IN_FLIGHT, CameraWorker

log = get_logger(__name__)

PRODUCER_BATCH_BYTES = 1024 * 1024
"""kafka-python batch size for frames (the default 16 KiB is smaller than one frame)."""

__all__ = ["FrameGrabber", "make_grabber_producer"]


def make_grabber_producer(settings: Settings) -> KafkaProducer:
    """The shared producer of a grabber process.

    ``batch_size`` is raised from kafka-python's 16 KiB: a JPEG frame is larger than that,
    so with the default every frame would travel as its own batch (about 10x fewer frames
    per second on one partition, measured). Memory stays bounded by the per-camera
    in-flight limit, not by the batch size.
    """
    return make_producer(settings, client_id="argus-frame-grabber", batch_size=PRODUCER_BATCH_BYTES)


class FrameGrabber:
    """Runs many :class:`CameraWorker` in one process, sharing one Kafka producer.

    >>> grabber = FrameGrabber(topology.cameras)   # doctest: +SKIP
    >>> grabber.start(); grabber.wait(); grabber.stop()   # doctest: +SKIP
    """

    def __init__(
        self,
        cameras: Iterable[Camera],
        settings: Settings | None = None,
        *,
        producer: KafkaProducer | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.settings = settings or get_settings()
        self.cameras = list(cameras)
        ids = [c.id for c in self.cameras]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate camera ids: {dupes}")
        self._own_producer = producer is None
        self._producer = producer
        self.workers: dict[str, CameraWorker] = {
            camera.id: CameraWorker(camera, self.settings, buffer_size=buffer_size,
                                    max_in_flight=max_in_flight)
            for camera in self.cameras
        }
        self._started = False
        self._stopped = False

    @property
    def producer(self) -> KafkaProducer:
        """The shared producer (created by :meth:`start` unless one was given)."""
        if self._producer is None:
            raise RuntimeError("the grabber has not been started")
        return self._producer

    def start(self) -> None:
        """Create the producer (if none was given) and start every camera."""
        if self._started:
            return
        if self._producer is None:
            self._producer = make_grabber_producer(self.settings)
        topic = self.settings.topic(FRAMES_TOPIC)
        try:  # fetch the topic metadata now, so the first frames do not wait for it
            self._producer.partitions_for(topic)
        except Exception as exc:
            log.warning("frames topic metadata not available yet",
                        extra={"topic": topic, "error": repr(exc)})
        for worker in self.workers.values():
            worker.start(self._producer)
        self._started = True
        log.info("frame grabber started", extra={"cameras": len(self.workers),
                                                 "topic": self.settings.topic(FRAMES_TOPIC)})

    def worker(self, camera_id: str) -> CameraWorker:
        """The worker of one camera (``KeyError`` if unknown)."""
        return self.workers[camera_id]

    def pause_publishing(self, camera_id: str | None = None) -> None:
        """Pause publishing for one camera, or all (readers keep reading, drop-oldest).

        May be called before :meth:`start` (frames then wait in the buffer from the first).
        """
        for worker in self._select(camera_id):
            worker.pause_publishing()

    def resume_publishing(self, camera_id: str | None = None) -> None:
        """Resume publishing for one camera, or all."""
        for worker in self._select(camera_id):
            worker.resume_publishing()

    def _select(self, camera_id: str | None) -> list[CameraWorker]:
        return list(self.workers.values()) if camera_id is None else [self.workers[camera_id]]

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` while some camera is still active."""
        return self._started and not self._stopped and not all(
            w.done for w in self.workers.values())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every camera finished (finite sources only); False on timeout.

        Live cameras and looping files never finish: use a timeout, or :meth:`stop`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self.workers.values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.join(remaining):
                return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every camera, publish what is buffered (within ``timeout``), flush the
        producer and close it if the grabber created it."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(0.0, deadline - time.monotonic())

        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            if not worker.join(remaining() * 0.8):
                worker.abort()
        try:
            self.producer.flush(timeout=max(remaining(), 0.5))
        except Exception:
            log.exception("producer flush failed at shutdown")
        for worker in self.workers.values():
            if not worker.join(min(remaining(), 1.0)):
                log.warning("camera did not stop in time", extra={"camera": worker.camera.id,
                                                                   **worker.stats()})
        if self._own_producer:
            try:
                self.producer.close(timeout=max(remaining(), 0.5))
            except Exception:
                log.exception("producer close failed")
        log.info("frame grabber stopped", extra={"stats": self.stats()})

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-camera counters: captured, published, dropped (+ per reason), reconnects, …"""
        return {camera_id: worker.stats() for camera_id, worker in self.workers.items()}

    def __enter__(self) -> FrameGrabber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
