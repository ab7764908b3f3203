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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np
from kafka import KafkaProducer

from argus.backoff import Backoff
from argus.kafka import make_producer
from argus.log import get_logger
from argus.metrics import (
    FRAME_SENDS_IN_FLIGHT,
    FRAMES_CAPTURED,
    FRAMES_DROPPED,
    FRAMES_PUBLISHED,
    KAFKA_PRODUCE_ERRORS,
    SOURCE_RECONNECTS,
    camera_label,
)
from argus.redact import redact_url
from argus.settings import Settings, get_settings
from argus.sources import parse_source
from argus.topology import Camera
from schemas.frames import FrameHeaders
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.liveness import LIVENESS, CameraClock
from services.frame_grabber.source import FrameSampler, MediaClock, open_source, source_fps

log = get_logger(__name__)

FRAMES_TOPIC = "frames.raw"
DEFAULT_BUFFER_SIZE = 30
"""Frames a camera may queue before drop-oldest starts (a few seconds at typical fps)."""
DEFAULT_MAX_IN_FLIGHT = 16
"""Unacknowledged Kafka sends per camera; bounds the producer's memory per camera."""
PRODUCER_BATCH_BYTES = 1024 * 1024
"""kafka-python batch size for frames (the default 16 KiB is smaller than one frame)."""
_POLL_S = 0.1
_REBASE_BEHIND_S = 1.0
"""A real-time file reader this far behind its frame clock restarts the clock (no burst)."""

__all__ = ["CameraWorker", "Frame", "FrameBuffer", "FrameGrabber", "downscale"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled, encoded frame on its way to Kafka."""

    camera_id: str
    seq: int
    capture_ts: float
    width: int
    height: int
    jpeg: bytes

    def headers(self) -> FrameHeaders:
        """The validated ``frames.raw`` headers of this frame."""
        return FrameHeaders(camera_id=self.camera_id, seq=self.seq, capture_ts=self.capture_ts,
                            width=self.width, height=self.height)


class _PassEnd(Enum):
    """How one pass over an opened source ended."""

    STOPPED = "stopped"
    ENDED = "ended"
    """End of file, or a live stream that stopped returning frames."""
    EMPTY = "empty"
    """Opened, but not a single frame could be read."""
    FAILED = "failed"
    """An unexpected error while reading (logged); the source is reopened with backoff."""


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def downscale(image: np.ndarray, max_width: int | None) -> np.ndarray:
    """Shrink ``image`` to ``max_width`` pixels wide (keeping the aspect) if it is wider."""
    height, width = image.shape[:2]
    if max_width is None or width <= max_width:
        return image
    new_height = max(1, round(height * max_width / width))
    return cv2.resize(image, (max_width, new_height), interpolation=cv2.INTER_AREA)


class CameraWorker:
    """Reads one camera and publishes its frames (a reader and a publisher thread).

    ``seq`` counts the *sampled* frames of this run (0, 1, 2, …), whether they end up
    published or dropped, so a replay of the same file yields the same seqs; it keeps
    increasing across loops and reconnects. ``capture_ts`` is the wall clock at read time.

    Metrics carry ``camera=<id>``, or ``"_all"`` when ``metrics_per_camera`` is off; the
    camera's liveness gauges are exported while its reader runs.
    """

    def __init__(
        self,
        camera: Camera,
        settings: Settings,
        producer: KafkaProducer | None = None,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        backoff: Backoff | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.camera = camera
        self.settings = settings
        self.source = parse_source(camera.source)
        self.shown_source = redact_url(self.source.target)
        """The source as logs show it: a URL's password and tokens masked (argus.redact)."""
        self.topic = settings.topic(FRAMES_TOPIC)
        self._producer = producer
        self._key = camera.id.encode()
        self.label = camera_label(camera.id, settings.metrics_per_camera)
        """The ``camera`` label of this camera's metrics."""
        self.clock = CameraClock()
        self._media_clock = MediaClock() if camera.clock == "media" else None
        """Stamps frames on the file's timeline (``clock: media``); else the wall clock."""
        self._buffer: FrameBuffer[Frame] = FrameBuffer(buffer_size, camera=self.label)
        self._backoff = backoff or Backoff()
        self._slots = threading.BoundedSemaphore(max_in_flight)

        self._stop = threading.Event()
        self._abort = threading.Event()
        self._publishing = threading.Event()
        self._publishing.set()
        self._reader_done = threading.Event()
        self._publisher_done = threading.Event()

        self._lock = threading.Condition()
        self._seq = 0
        self._in_flight = 0
        self._counts = {"captured": 0, "published": 0, "reconnects": 0, "oversize": 0,
                        "encode_error": 0, "send_error": 0, "shutdown": 0}
        self._reader = threading.Thread(target=self._read_main, name=f"grab-read:{camera.id}",
                                        daemon=True)
        self._publisher = threading.Thread(target=self._publish_main,
                                           name=f"grab-pub:{camera.id}", daemon=True)
        self._started = False

    # --- control ------------------------------------------------------------------
    def start(self, producer: KafkaProducer | None = None) -> None:
        """Start the reader and publisher threads (once), with ``producer`` unless one was
        given to the constructor."""
        if self._started:
            return
        if producer is not None:
            self._producer = producer
        if self._producer is None:
            raise RuntimeError(f"camera {self.camera.id}: no Kafka producer to publish with")
        self._started = True
        LIVENESS.track(self.label, self.camera.id, self.clock)
        log.info("camera starting", extra={"camera": self.camera.id, "kind": self.source.kind,
                                           "source": self.shown_source, "fps": self.camera.fps,
                                           "topic": self.topic})
        self._publisher.start()
        self._reader.start()

    def stop(self) -> None:
        """Ask both threads to finish (non-blocking). Buffered frames are still published
        unless publishing is paused or :meth:`abort` is called; see :meth:`join`."""
        self._stop.set()

    def abort(self) -> None:
        """Stop without publishing what is still buffered (it is counted as ``shutdown``)."""
        self._stop.set()
        self._abort.set()

    def pause_publishing(self) -> None:
        """Hold frames in the buffer (drop-oldest applies); the reader keeps reading."""
        self._publishing.clear()

    def resume_publishing(self) -> None:
        """Publish again after :meth:`pause_publishing`."""
        self._publishing.set()

    @property
    def publishing_paused(self) -> bool:
        """True while publishing is paused."""
        return not self._publishing.is_set()

    @property
    def reader_done(self) -> bool:
        """True once the reader finished (end of a non-looping file, or stopped)."""
        return self._reader_done.is_set()

    def wait_reader(self, timeout: float | None = None) -> bool:
        """Wait until the reader finished; False on timeout."""
        return self._reader_done.wait(timeout)

    @property
    def done(self) -> bool:
        """True when the worker finished: reader ended, buffer handled, every send settled."""
        with self._lock:
            return self._publisher_done.is_set() and self._in_flight == 0

    def join(self, timeout: float | None = None) -> bool:
        """Wait until :attr:`done` (publisher exited and no send is in flight); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._publisher_done.wait(timeout):
            return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, remaining)

    def stats(self) -> dict[str, int]:
        """Counters of this run: captured, published, dropped (total and per reason),
        reconnects, queued and in_flight."""
        with self._lock:
            counts = dict(self._counts)
            in_flight = self._in_flight
        backpressure = self._buffer.dropped
        dropped = {
            "dropped_backpressure": backpressure,
            "dropped_oversize": counts["oversize"],
            "dropped_encode_error": counts["encode_error"],
            "dropped_send_error": counts["send_error"],
            "dropped_shutdown": counts["shutdown"],
        }
        return {
            "captured": counts["captured"],
            "published": counts["published"],
            "dropped": sum(dropped.values()),
            **dropped,
            "reconnects": counts["reconnects"],
            "queued": len(self._buffer),
            "in_flight": in_flight,
        }

    # --- reader ---------------------------------------------------------------------
    def _read_main(self) -> None:
        try:
            self._read_loop()
        except Exception:
            log.exception("camera reader crashed", extra={"camera": self.camera.id})
        finally:
            LIVENESS.untrack(self.label, self.camera.id)
            self._buffer.close()
            self._reader_done.set()
            if self._publisher_done.is_set():
                self._account_leftovers()

    def _read_loop(self) -> None:
        retry = False
        while not self._stop.is_set():
            cap = self._open(retry)
            if cap is None:
                return
            try:
                end = self._read_pass(cap)
            except Exception:
                log.exception("camera read failed; reopening the source",
                              extra={"camera": self.camera.id, "source": self.shown_source})
                end = _PassEnd.FAILED
            finally:
                cap.release()
            if end is _PassEnd.STOPPED:
                return
            if end is _PassEnd.FAILED:
                retry = True
                continue
            if self.source.kind.finite:
                if end is _PassEnd.EMPTY:
                    if not self.camera.loop:
                        log.warning("camera file has no readable frames; camera finished",
                                    extra={"camera": self.camera.id, "path": self.shown_source})
                        return
                    retry = True  # a looping file that yields nothing: back off, don't spin
                    continue
                if self.camera.loop:
                    log.info("camera file ended; looping",
                             extra={"camera": self.camera.id, "next_seq": self._seq})
                    retry = False
                    continue
                log.info("camera file ended", extra={"camera": self.camera.id,
                                                     "frames": self._seq})
                return
            log.warning("camera stopped returning frames; reconnecting",
                        extra={"camera": self.camera.id, "source": self.shown_source})
            retry = True

    def _open(self, retry: bool) -> cv2.VideoCapture | None:
        """Open the source, retrying with backoff; ``None`` when stopped meanwhile.

        ``retry`` means the previous attempt failed (or a live stream died): wait the next
        backoff delay first. Every attempt after a failure is counted in
        ``argus_source_reconnects_total``; restarting a looping file is not.
        """
        delay = self._backoff.next_delay() if retry else 0.0
        while True:
            if self._stop.wait(delay) if delay > 0 else self._stop.is_set():
                return None
            if retry:
                with self._lock:
                    self._counts["reconnects"] += 1
                SOURCE_RECONNECTS.labels(self.label).inc()
            cap = open_source(self.source)
            if cap is not None:
                if retry:
                    log.info("camera source reopened", extra={"camera": self.camera.id,
                                                              "source": self.shown_source})
                return cap
            delay = self._backoff.next_delay()
            extra = {"camera": self.camera.id, "source": self.shown_source,
                     "retry_in_s": delay, "attempt": self._backoff.attempts}
            path = self.source.path
            if path is not None and not path.is_file():
                log.warning("camera source file does not exist (yet); retrying", extra=extra)
            else:
                log.warning("camera source could not be opened; retrying", extra=extra)
            retry = True

    def _read_pass(self, cap: cv2.VideoCapture) -> _PassEnd:
        """Read an opened source until it ends, stalls or the worker stops."""
        is_file = self.source.kind.finite
        fps = source_fps(cap)
        if is_file:
            # Files sample by frame index (deterministic replays); unknown rate: keep all.
            clock_fps = fps or self.camera.fps
            sampler = FrameSampler(clock_fps, self.camera.fps)
        else:
            # Live sources sample by wall clock: their reported fps is often wrong.
            clock_fps = None
            sampler = FrameSampler(None, self.camera.fps)
        pace = is_file and self.camera.realtime and clock_fps is not None
        period = 1.0 / clock_fps if clock_fps else 0.0
        start = time.monotonic()
        paced_from = 0
        index = 0
        while not self._stop.is_set():
            if pace:
                due = start + (index - paced_from) * period
                wait = due - time.monotonic()
                if wait > 0:
                    if self._stop.wait(wait):
                        return _PassEnd.STOPPED
                elif wait < -_REBASE_BEHIND_S:
                    start, paced_from = time.monotonic(), index
            if not cap.grab():
                break
            capture_ts = (self._media_clock.stamp(clock_fps)
                          if self._media_clock is not None and clock_fps else time.time())
            i, index = index, index + 1
            if not sampler.keep(i, time.monotonic()):
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                continue
            self._backoff.reset()
            self._emit(image, capture_ts)
        if self._stop.is_set():
            return _PassEnd.STOPPED
        return _PassEnd.ENDED if index > 0 else _PassEnd.EMPTY

    def _emit(self, image: np.ndarray, capture_ts: float) -> None:
        """Encode one sampled frame, give it its seq and buffer it (or count its drop)."""
        seq = self._seq
        self._seq += 1
        with self._lock:
            self._counts["captured"] += 1
        FRAMES_CAPTURED.labels(self.label).inc()
        self.clock.tick()
        image = downscale(image, self.camera.max_width)
        height, width = image.shape[:2]
        ok, encoded = cv2.imencode(".jpg", image,
                                   [cv2.IMWRITE_JPEG_QUALITY, self.camera.jpeg_quality])
        if not ok:
            self._drop("encode_error", seq)
            return
        jpeg = encoded.tobytes()
        if len(jpeg) > self.settings.max_frame_bytes:
            self._drop("oversize", seq, size=len(jpeg), limit=self.settings.max_frame_bytes)
            return
        frame = Frame(self.camera.id, seq, capture_ts, width, height, jpeg)
        if self._buffer.put(frame) is not None and _is_power_of_two(self._buffer.dropped):
            log.warning("frame buffer full; dropping oldest frames",
                        extra={"camera": self.camera.id, "reason": "backpressure",
                               "dropped": self._buffer.dropped})

    def _drop(self, reason: str, seq: int, **extra: Any) -> None:
        with self._lock:
            self._counts[reason] += 1
            count = self._counts[reason]
        FRAMES_DROPPED.labels(self.label, reason).inc()
        if _is_power_of_two(count):
            log.warning("frame dropped", extra={"camera": self.camera.id, "reason": reason,
                                                "seq": seq, "dropped": count, **extra})

    # --- publisher ------------------------------------------------------------------
    def _publish_main(self) -> None:
        try:
            self._publish_loop()
        except Exception:
            log.exception("camera publisher crashed", extra={"camera": self.camera.id})
        finally:
            self._publisher_done.set()
            self._account_leftovers()
            with self._lock:
                self._lock.notify_all()

    def _publish_loop(self) -> None:
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
        assert self._producer is not None  # start() guarantees it
        with self._lock:
            self._in_flight += 1
        FRAME_SENDS_IN_FLIGHT.labels(self.label).inc()
        try:
            future = self._producer.send(
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
        with self._lock:
            self._counts["published"] += 1
            self._in_flight -= 1
            self._lock.notify_all()
        self._slots.release()

    def _on_failed(self, seq: int, exc: BaseException) -> None:
        FRAME_SENDS_IN_FLIGHT.labels(self.label).dec()
        KAFKA_PRODUCE_ERRORS.labels("frame_grabber", FRAMES_TOPIC).inc()
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()
        self._slots.release()
        self._drop("send_error", seq, error=repr(exc))

    def _account_leftovers(self) -> None:
        """Count frames still buffered when the publisher is gone as dropped (``shutdown``)."""
        leftovers = self._buffer.drain()
        if not leftovers:
            return
        with self._lock:
            self._counts["shutdown"] += len(leftovers)
        FRAMES_DROPPED.labels(self.label, "shutdown").inc(len(leftovers))
        log.warning("frames left unpublished at shutdown",
                    extra={"camera": self.camera.id, "reason": "shutdown",
                           "dropped": len(leftovers), "first_seq": leftovers[0].seq})


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
