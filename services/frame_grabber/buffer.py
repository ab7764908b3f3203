"""The bounded drop-oldest buffer between a camera's reader and its publisher."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from argus.metrics import FRAME_QUEUE_DEPTH, FRAMES_DROPPED

T = TypeVar("T")


class FrameBuffer(Generic[T]):
    """A bounded, thread-safe FIFO that drops its **oldest** item when full.

    ``put`` never blocks: a full buffer drops its oldest item, returns it, counts it in
    :attr:`dropped` and — when a ``camera`` label is given — in
    ``argus_frames_dropped_total{camera, reason="backpressure"}`` (the depth is added to
    ``argus_frame_queue_depth{camera}``, so buffers sharing the ``"_all"`` label sum up).
    ``get`` blocks up to a timeout. After :meth:`close`, ``get`` returns ``None`` as soon
    as the buffer is empty.
    """

    def __init__(self, maxlen: int, camera: str | None = None) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self.maxlen = maxlen
        self.camera = camera
        self.dropped = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (no more items will come)."""
        return self._closed

    def put(self, item: T) -> T | None:
        """Append ``item``; returns the oldest item if it had to be dropped to make room."""
        with self._cond:
            evicted: T | None = None
            if len(self._items) >= self.maxlen:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
        if self.camera is not None:
            if evicted is not None:
                FRAMES_DROPPED.labels(self.camera, "backpressure").inc()
            else:
                FRAME_QUEUE_DEPTH.labels(self.camera).inc()
        return evicted

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout`` s; ``None`` on timeout or closed+empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: bool(self._items) or self._closed, timeout)
            if not self._items:
                return None
            item = self._items.popleft()
        if self.camera is not None:
            FRAME_QUEUE_DEPTH.labels(self.camera).dec()
        return item

    def drain(self) -> list[T]:
        """Remove and return everything buffered (oldest first)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
        if self.camera is not None and items:
            FRAME_QUEUE_DEPTH.labels(self.camera).dec(len(items))
        return items

    def close(self) -> None:
        """No more items will be put; wakes blocked getters."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
