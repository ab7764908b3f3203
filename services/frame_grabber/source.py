"""Reading camera sources (files, streams, webcams: see :mod:`argus.sources`) and the
pure decisions around it.

Everything is read through OpenCV's ``cv2.VideoCapture`` (an image folder through
:class:`ImageFolderCapture`, which reads like one). Classifying a source string
(:func:`argus.sources.parse_source`) lives in ``argus`` because the topology validates
with it too. The pure parts here — :class:`FrameSampler` and :class:`MediaClock` (reconnect delays:
:class:`argus.backoff.Backoff`) — hold no I/O and are unit-tested on their own.
"""

from __future__ import annotations

import glob
import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2

from argus.log import get_logger
from argus.sources import ParsedSource, SourceKind

log = get_logger(__name__)

OPEN_TIMEOUT_MS = 10_000
"""How long OpenCV's FFmpeg backend may spend opening a network stream."""
READ_TIMEOUT_MS = 10_000
"""How long one read of a network stream may block before it counts as stalled."""

MAX_PLAUSIBLE_FPS = 240.0
"""A reported source fps above this (some MJPEG servers say 1000) is treated as unknown."""


def open_source(source: ParsedSource, decode_threads: int = 1) -> cv2.VideoCapture | None:
    """Open a source with OpenCV; ``None`` when it cannot be opened (the caller retries).

    A file that does not exist is reported as ``None`` without asking OpenCV (which
    would only print a warning of its own). Network streams are opened with the FFmpeg
    backend and bounded open/read timeouts, so a dead camera cannot block a reader
    thread forever. Files and streams decode with ``decode_threads`` FFmpeg threads (0:
    FFmpeg's choice, one per core): one per camera keeps many cameras from oversubscribing
    the cores, and frame threading's frames of delay are gone.
    """
    threads = [cv2.CAP_PROP_N_THREADS, decode_threads] if decode_threads > 0 else []
    if source.kind is SourceKind.DIR:
        folder = ImageFolderCapture(source.target)
        return folder if folder.isOpened() else None  # type: ignore[return-value]
    if source.kind is SourceKind.FILE:
        path = source.path
        if path is None or not path.is_file():
            return None
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, threads)
        if not cap.isOpened():  # a file FFmpeg does not read: OpenCV's other backends
            cap.release()
            cap = cv2.VideoCapture(str(path))
    elif source.kind is SourceKind.URL:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS, *threads]
        cap = cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(int(source.target))
    if not cap.isOpened():
        cap.release()
        return None
    return cap


class ImageFolderCapture:
    """The images matching a glob (a folder: every ``*.jpg``, ``*.jpeg``, ``*.png``), in
    name order, read like a video without a frame rate (``cv2.VideoCapture``'s ``grab``,
    ``retrieve``, ``read``, ``get``, ``isOpened``, ``release``): the grabber ticks at the
    camera's ``fps``. An image OpenCV cannot decode is skipped."""

    IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

    def __init__(self, pattern: str) -> None:
        path = Path(pattern)
        if path.is_dir():
            files = [p for p in path.iterdir() if p.suffix.lower() in self.IMAGE_SUFFIXES]
        else:
            files = [Path(p) for p in glob.glob(pattern)]
        self.files = sorted(p for p in files if p.is_file())
        self.position = 0
        self.current: str | None = None

    def isOpened(self) -> bool:
        return bool(self.files)

    def grab(self) -> bool:
        if self.position >= len(self.files):
            return False
        self.current = str(self.files[self.position])
        self.position += 1
        return True

    def retrieve(self) -> tuple[bool, Any]:
        if self.current is None:
            return False, None
        image = cv2.imread(self.current, cv2.IMREAD_COLOR)
        return image is not None, image

    def read(self) -> tuple[bool, Any]:
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self.files))
        return 0.0  # no frame rate: the camera's fps paces it

    def release(self) -> None:
        self.position = len(self.files)


def source_fps(cap: cv2.VideoCapture) -> float | None:
    """The frame rate the source reports, or ``None`` when it is missing or implausible."""
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not math.isfinite(fps) or fps <= 0.0 or fps > MAX_PLAUSIBLE_FPS:
        return None
    return fps


class FrameSampler:
    """Decides which source frames to keep so that ``target_fps`` frames a second remain.

    With a known source frame rate the decision is a pure function of the frame index
    (so a replay of the same file keeps the same frames): frame ``i`` is kept when the
    ideal output clock ``i * target / source`` crosses an integer between frame ``i - 1``
    and frame ``i``. Frame 0 is always kept; a 10 fps source at 5 fps keeps 0, 2, 4, …;
    12 fps at 5 fps keeps 0, 3, 5, 8, 10, …; a target at or above the source keeps all.
    Exact rational arithmetic avoids float drift over long runs.

    Without a known source rate (``source_fps=None``) it samples by time instead:
    a frame is kept when at least ``1 / target_fps`` seconds passed since the previous
    kept slot (``now`` is then required).
    """

    def __init__(self, source_fps: float | None, target_fps: float) -> None:
        if target_fps <= 0:
            raise ValueError(f"target fps must be > 0, got {target_fps}")
        if source_fps is not None and source_fps <= 0:
            raise ValueError(f"source fps must be > 0, got {source_fps}")
        self.source_fps = source_fps
        self.target_fps = target_fps
        self._ratio: Fraction | None = None
        if source_fps is not None:
            ratio = (Fraction(target_fps).limit_denominator(10_000)
                     / Fraction(source_fps).limit_denominator(10_000))
            self._ratio = min(ratio, Fraction(1))
        self._period = 1.0 / target_fps
        self._next_due: float | None = None

    @property
    def keeps_all(self) -> bool:
        """True when every source frame is kept (target at or above the source rate)."""
        return self._ratio == 1

    def keep(self, index: int, now: float | None = None) -> bool:
        """Whether source frame ``index`` (0-based, per pass over the source) is kept.

        ``now`` (monotonic seconds) is used only when the source rate is unknown.
        """
        if self._ratio is not None:
            if index <= 0:
                return True
            return math.floor(index * self._ratio) > math.floor((index - 1) * self._ratio)
        if now is None:
            raise ValueError("a time-based sampler (unknown source fps) needs `now`")
        if self._next_due is not None and now < self._next_due:
            return False
        if self._next_due is None or now - self._next_due >= self._period:
            # First frame, or more than a period behind (a stall): restart the clock here.
            self._next_due = now + self._period
        else:
            # Stay on the grid so the long-run rate is exactly the target.
            self._next_due += self._period
        return True

    def reset(self) -> None:
        """Forget the time-based clock (after a reconnect)."""
        self._next_due = None


class MediaClock:
    """Capture times on a file's own timeline (a camera's ``clock: media``).

    The first frame is stamped with the wall time it was read; each source frame after it
    (sampled or not, across loops of the file) is one frame period later, however fast the
    file is read. A fast replay (``realtime: false``) then gives the behaviours the same
    durations and speeds as a paced one.

    >>> clock = MediaClock(anchor=1000.0)
    >>> [round(clock.stamp(4.0), 3) for _ in range(3)]
    [1000.0, 1000.25, 1000.5]
    >>> round(clock.stamp(2.0), 3)  # the next loop reports another rate: its own period
    1000.75
    >>> round(clock.stamp(2.0), 3)
    1001.25
    """

    def __init__(self, anchor: float | None = None) -> None:
        self._anchor = anchor
        self._elapsed = 0.0

    def stamp(self, fps: float) -> float:
        """The capture time of the next source frame of a file read at ``fps``."""
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if self._anchor is None:
            self._anchor = time.time()
        stamp = self._anchor + self._elapsed
        self._elapsed += 1.0 / fps
        return stamp
