"""The counters of one camera worker, shared by its reader and publisher threads.

:class:`WorkerCounters` counts captured, published and dropped frames (per reason) and
reconnects, and tracks the Kafka sends still in flight; :meth:`WorkerCounters.stats`
turns them into the worker's ``stats()`` dict. Drops are also counted in
``argus_frames_dropped_total{camera, reason}`` and logged on the 1st, 2nd, 4th, 8th, …
occurrence (:func:`is_power_of_two`), so a long outage does not flood the log.
"""

from __future__ import annotations

import threading
from typing import Any

from argus.log import get_logger
from argus.metrics import FRAMES_DROPPED
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.frame import Frame

log = get_logger(__name__)

__all__ = ["WorkerCounters", "is_power_of_two"]


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, …: the counts at which a repeated drop is logged."""
    return n > 0 and n & (n - 1) == 0


class WorkerCounters:
    """Thread-safe counters of one camera and its in-flight Kafka sends.

    One condition variable guards every count; it is notified whenever a send settles, so
    :meth:`wait_settled` can wait for the last one. ``camera_id`` is what logs show,
    ``label`` the ``camera`` label of the metrics.
    """

    def __init__(self, camera_id: str, label: str) -> None:
        self.camera_id = camera_id
        self.label = label
        self._lock = threading.Condition()
        self._in_flight = 0
        self._counts = {"captured": 0, "published": 0, "reconnects": 0, "oversize": 0,
                        "encode_error": 0, "send_error": 0, "shutdown": 0}

    def add(self, name: str, n: int = 1) -> int:
        """Add ``n`` to the counter ``name`` (``captured``, ``reconnects``, …); its new value."""
        with self._lock:
            self._counts[name] += n
            return self._counts[name]

    def drop(self, reason: str, seq: int, **extra: Any) -> None:
        """Count one dropped frame (counter, metric) and log it on power-of-two counts."""
        with self._lock:
            self._counts[reason] += 1
            count = self._counts[reason]
        FRAMES_DROPPED.labels(self.label, reason).inc()
        if is_power_of_two(count):
            log.warning("frame dropped", extra={"camera": self.camera_id, "reason": reason,
                                                "seq": seq, "dropped": count, **extra})

    # --- in-flight sends -------------------------------------------------------------
    def send_started(self) -> None:
        """One more send is in flight."""
        with self._lock:
            self._in_flight += 1

    def send_published(self) -> None:
        """A send was acknowledged: one more published frame, one less in flight."""
        with self._lock:
            self._counts["published"] += 1
            self._in_flight -= 1
            self._lock.notify_all()

    def send_failed(self) -> None:
        """A send failed: one less in flight (the drop is counted with :meth:`drop`)."""
        with self._lock:
            self._in_flight -= 1
            self._lock.notify_all()

    def wake_waiters(self) -> None:
        """Wake :meth:`wait_settled` callers (when the publisher exits)."""
        with self._lock:
            self._lock.notify_all()

    @property
    def in_flight(self) -> int:
        """Sends not yet acknowledged or failed."""
        with self._lock:
            return self._in_flight

    def wait_settled(self, timeout: float | None) -> bool:
        """Wait until no send is in flight; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    def stats(self, buffer: FrameBuffer[Frame]) -> dict[str, int]:
        """Counters of this run: captured, published, dropped (total and per reason),
        reconnects, queued and in_flight (``buffer`` gives the backpressure drops and the
        queue length)."""
        with self._lock:
            counts = dict(self._counts)
            in_flight = self._in_flight
        backpressure = buffer.dropped
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
            "queued": len(buffer),
            "in_flight": in_flight,
        }
