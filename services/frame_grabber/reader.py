"""The reader of one camera: cameras → sampled, encoded frames in the camera's buffer.

:class:`CameraReader` opens the source (reconnecting with :class:`Backoff`), samples it to
the camera's fps with :class:`FrameSampler`, optionally downscales, JPEG-encodes, stamps
``seq``/``capture_ts`` and puts the frame into the bounded :class:`FrameBuffer` that the
camera's publisher empties. Each pass over an opened source ends in a :class:`_PassEnd`,
which decides whether the file loops, the source is reopened (with backoff) or the reader
finishes. :class:`~services.frame_grabber.worker.CameraWorker` runs it on its own thread.
"""

from __future__ import annotations

import threading
import time
from enum import Enum

import cv2
import numpy as np

from argus.backoff import Backoff
from argus.log import get_logger
from argus.metrics import FRAMES_CAPTURED, SOURCE_RECONNECTS
from argus.settings import Settings
from argus.sources import ParsedSource
from argus.topology import Camera
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.counters import WorkerCounters, is_power_of_two
from services.frame_grabber.frame import Frame, downscale
from services.frame_grabber.liveness import CameraClock
from services.frame_grabber.source import FrameSampler, MediaClock, open_source, source_fps

log = get_logger(__name__)

_REBASE_BEHIND_S = 1.0
"""A real-time file reader this far behind its frame clock restarts the clock (no burst)."""

__all__ = ["CameraReader"]


class _PassEnd(Enum):
    """How one pass over an opened source ended."""

    STOPPED = "stopped"
    ENDED = "ended"
    """End of file, or a live stream that stopped returning frames."""
    EMPTY = "empty"
    """Opened, but not a single frame could be read."""
    FAILED = "failed"
    """An unexpected error while reading (logged); the source is reopened with backoff."""


class CameraReader:
    """Reads one camera into its buffer until the source ends or ``stop`` is set.

    ``seq`` counts the *sampled* frames of this run (0, 1, 2, …), whether they end up
    published or dropped; it keeps increasing across loops and reconnects. Counts go to
    ``counters``; ``label`` is the ``camera`` label of the metrics, ``shown_source`` the
    source as logs show it.
    """

    def __init__(
        self,
        camera: Camera,
        settings: Settings,
        *,
        source: ParsedSource,
        shown_source: str,
        label: str,
        clock: CameraClock,
        buffer: FrameBuffer[Frame],
        counters: WorkerCounters,
        stop: threading.Event,
        backoff: Backoff | None = None,
    ) -> None:
        self.camera = camera
        self.settings = settings
        self.source = source
        self.shown_source = shown_source
        self.label = label
        self.clock = clock
        self._media_clock = MediaClock() if camera.clock == "media" else None
        """Stamps frames on the file's timeline (``clock: media``); else the wall clock."""
        self._buffer = buffer
        self._counters = counters
        self._stop = stop
        self._backoff = backoff or Backoff()
        self._seq = 0

    def run(self) -> None:
        """Open, read and reopen the source until it is finished or the worker stops."""
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
                self._counters.add("reconnects")
                SOURCE_RECONNECTS.labels(self.label).inc()
            cap = open_source(self.source, self.camera.decode_threads)
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
        self._counters.add("captured")
        FRAMES_CAPTURED.labels(self.label).inc()
        self.clock.tick()
        image = downscale(image, self.camera.max_width)
        height, width = image.shape[:2]
        ok, encoded = cv2.imencode(".jpg", image,
                                   [cv2.IMWRITE_JPEG_QUALITY, self.camera.jpeg_quality])
        if not ok:
            self._counters.drop("encode_error", seq)
            return
        jpeg = encoded.tobytes()
        if len(jpeg) > self.settings.max_frame_bytes:
            self._counters.drop("oversize", seq, size=len(jpeg),
                                limit=self.settings.max_frame_bytes)
            return
        frame = Frame(self.camera.id, seq, capture_ts, width, height, jpeg)
        if self._buffer.put(frame) is not None and is_power_of_two(self._buffer.dropped):
            log.warning("frame buffer full; dropping oldest frames",
                        extra={"camera": self.camera.id, "reason": "backpressure",
                               "dropped": self._buffer.dropped})
