"""Is each camera flowing? Seconds since its last frame and its capture rate, as gauges.

A :class:`CameraClock` records when a camera's frames were captured; :class:`Liveness`
binds the ``argus_camera_seconds_since_last_frame`` and ``argus_camera_capture_fps``
gauges to the clocks, computed when Prometheus scrapes (so a silent camera's gauge keeps
growing even though nothing happens in the grabber). Cameras sharing one label (all of
them, ``camera="_all"``, when per-camera metrics are off) are aggregated: the most silent
camera's seconds, the summed rate.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

from argus.metrics import CAMERA_CAPTURE_FPS, CAMERA_SECONDS_SINCE_FRAME

FPS_WINDOW_S = 10.0
"""The capture rate is averaged over this trailing window."""


class CameraClock:
    """Capture times of one camera (thread-safe; the clock is injectable for tests).

    >>> t = [100.0]
    >>> clock = CameraClock(window_s=10.0, now=lambda: t[0])
    >>> t[0] = 104.0; clock.seconds_since_last()
    4.0
    >>> for i in range(20):
    ...     clock.tick(104.5 + i * 0.5)
    >>> t[0] = 114.25; clock.seconds_since_last(), clock.fps()
    (0.25, 2.0)
    """

    def __init__(self, window_s: float = FPS_WINDOW_S,
                 now: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window must be > 0 s, got {window_s}")
        self.window_s = window_s
        self._now = now
        self._started = now()
        self._last: float | None = None
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, at: float | None = None) -> None:
        """Record one captured frame (now, or at monotonic time ``at``)."""
        at = self._now() if at is None else at
        with self._lock:
            self._last = at
            self._times.append(at)
            self._expire(at)

    def seconds_since_last(self) -> float:
        """Seconds since the last frame, or since the clock started if none came yet."""
        with self._lock:
            reference = self._started if self._last is None else self._last
        return max(0.0, self._now() - reference)

    def fps(self) -> float:
        """Frames per second over the trailing window (a younger clock: over its age,
        at least 1 s, so the first frames do not read as a burst)."""
        now = self._now()
        with self._lock:
            self._expire(now)
            count = len(self._times)
        span = min(self.window_s, max(now - self._started, 1.0))
        return count / span

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()


class Liveness:
    """Binds the liveness gauges of every tracked camera, grouped by label."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, CameraClock]] = {}
        self._lock = threading.Lock()

    def track(self, label: str, camera_id: str, clock: CameraClock) -> None:
        """Export ``clock`` under ``camera=label`` (from now until :meth:`untrack`)."""
        with self._lock:
            group = self._groups.setdefault(label, {})
            first = not group
            group[camera_id] = clock
            if first:
                CAMERA_SECONDS_SINCE_FRAME.labels(label).set_function(
                    lambda: self.seconds_since_last(label))
                CAMERA_CAPTURE_FPS.labels(label).set_function(lambda: self.fps(label))

    def untrack(self, label: str, camera_id: str) -> None:
        """Stop exporting one camera (its label's series go when its last camera goes)."""
        with self._lock:
            group = self._groups.get(label)
            if group is None or group.pop(camera_id, None) is None:
                return
            if not group:
                del self._groups[label]
                for gauge in (CAMERA_SECONDS_SINCE_FRAME, CAMERA_CAPTURE_FPS):
                    with contextlib.suppress(KeyError):
                        gauge.remove(label)

    def _clocks(self, label: str) -> list[CameraClock]:
        with self._lock:
            return list(self._groups.get(label, {}).values())

    def seconds_since_last(self, label: str) -> float:
        """The most silent camera's seconds since its last frame (0 if none tracked)."""
        return max((c.seconds_since_last() for c in self._clocks(label)), default=0.0)

    def fps(self, label: str) -> float:
        """The summed capture rate of the label's cameras."""
        return sum(c.fps() for c in self._clocks(label))


LIVENESS = Liveness()
"""The process-wide liveness exporter (one Prometheus registry per process)."""
