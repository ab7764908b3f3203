"""One camera of the grabber: a :class:`CameraWorker` runs its reader and publisher threads.

The reader (:mod:`services.frame_grabber.reader`) fills the camera's bounded
:class:`FrameBuffer`; the publisher (:mod:`services.frame_grabber.publisher`) empties it
into Kafka. Both count into one :class:`WorkerCounters`. The worker starts and stops the
two threads, pauses/resumes publishing and reports the counters (:meth:`CameraWorker.stats`).
"""

from __future__ import annotations

import threading
import time

from kafka import KafkaProducer

from argus.backoff import Backoff
from argus.log import get_logger
from argus.metrics import camera_label
from argus.redact import redact_url
from argus.settings import Settings
from argus.sources import parse_source
from argus.topology import Camera
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.counters import WorkerCounters
from services.frame_grabber.frame import FRAMES_TOPIC, Frame
from services.frame_grabber.liveness import LIVENESS, CameraClock
from services.frame_grabber.publisher import FramePublisher
from services.frame_grabber.reader import CameraReader

log = get_logger(__name__)

DEFAULT_BUFFER_SIZE = 30
"""Frames a camera may queue before drop-oldest starts (a few seconds at typical fps)."""
DEFAULT_MAX_IN_FLIGHT = 16
"""Unacknowledged Kafka sends per camera; bounds the producer's memory per camera."""

__all__ = ["DEFAULT_BUFFER_SIZE", "DEFAULT_MAX_IN_FLIGHT", "CameraWorker"]


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
        self.label = camera_label(camera.id, settings.metrics_per_camera)
        """The ``camera`` label of this camera's metrics."""
        self.clock = CameraClock()
        self._buffer: FrameBuffer[Frame] = FrameBuffer(buffer_size, camera=self.label)
        self._counters = WorkerCounters(camera.id, self.label)

        self._stop = threading.Event()
        self._reader_done = threading.Event()
        self._publisher_done = threading.Event()

        self._reader = CameraReader(
            camera, settings, source=self.source, shown_source=self.shown_source,
            label=self.label, clock=self.clock, buffer=self._buffer,
            counters=self._counters, stop=self._stop, backoff=backoff,
        )
        self._publisher = FramePublisher(
            camera.id, label=self.label, topic=self.topic, buffer=self._buffer,
            counters=self._counters, stop=self._stop, max_in_flight=max_in_flight,
            producer=producer,
        )
        self._read_thread = threading.Thread(target=self._read_main,
                                             name=f"grab-read:{camera.id}", daemon=True)
        self._publish_thread = threading.Thread(target=self._publish_main,
                                                name=f"grab-pub:{camera.id}", daemon=True)
        self._started = False

    # --- control ------------------------------------------------------------------
    def start(self, producer: KafkaProducer | None = None) -> None:
        """Start the reader and publisher threads (once), with ``producer`` unless one was
        given to the constructor."""
        if self._started:
            return
        if producer is not None:
            self._publisher.producer = producer
        if self._publisher.producer is None:
            raise RuntimeError(f"camera {self.camera.id}: no Kafka producer to publish with")
        self._started = True
        LIVENESS.track(self.label, self.camera.id, self.clock)
        log.info("camera starting", extra={"camera": self.camera.id, "kind": self.source.kind,
                                           "source": self.shown_source, "fps": self.camera.fps,
                                           "topic": self.topic})
        self._publish_thread.start()
        self._read_thread.start()

    def stop(self) -> None:
        """Ask both threads to finish (non-blocking). Buffered frames are still published
        unless publishing is paused or :meth:`abort` is called; see :meth:`join`."""
        self._stop.set()

    def abort(self) -> None:
        """Stop without publishing what is still buffered (it is counted as ``shutdown``)."""
        self._stop.set()
        self._publisher.abort()

    def pause_publishing(self) -> None:
        """Hold frames in the buffer (drop-oldest applies); the reader keeps reading."""
        self._publisher.pause()

    def resume_publishing(self) -> None:
        """Publish again after :meth:`pause_publishing`."""
        self._publisher.resume()

    @property
    def publishing_paused(self) -> bool:
        """True while publishing is paused."""
        return self._publisher.paused

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
        return self._publisher_done.is_set() and self._counters.in_flight == 0

    def join(self, timeout: float | None = None) -> bool:
        """Wait until :attr:`done` (publisher exited and no send is in flight); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._publisher_done.wait(timeout):
            return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._counters.wait_settled(remaining)

    def stats(self) -> dict[str, int]:
        """Counters of this run: captured, published, dropped (total and per reason),
        reconnects, queued and in_flight."""
        return self._counters.stats(self._buffer)

    # --- threads --------------------------------------------------------------------
    def _read_main(self) -> None:
        try:
            self._reader.run()
        except Exception:
            log.exception("camera reader crashed", extra={"camera": self.camera.id})
        finally:
            LIVENESS.untrack(self.label, self.camera.id)
            self._buffer.close()
            self._reader_done.set()
            if self._publisher_done.is_set():
                self._publisher.account_leftovers()

    def _publish_main(self) -> None:
        try:
            self._publisher.run()
        except Exception:
            log.exception("camera publisher crashed", extra={"camera": self.camera.id})
        finally:
            self._publisher_done.set()
            self._publisher.account_leftovers()
            self._counters.wake_waiters()
