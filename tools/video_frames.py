"""A video's frames as a camera would publish them: sampled to the camera's ``fps`` by the
frame grabber's own :class:`~services.frame_grabber.source.FrameSampler` (counted from the
file's first frame, so the same frames a replay of the file keeps), optionally downscaled
and JPEG-encoded at the camera's quality, within a time range of the file.

Used by ``argus train anomaly --method objects --video PATH --start-s A --end-s B`` to train
a camera's object model on part of a recording, and by the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.frame_grabber.frame import downscale
from services.frame_grabber.source import FrameSampler, source_fps


@dataclass(frozen=True)
class SampledFrame:
    """One published frame: its index in the file, its time in the file, its JPEG."""

    index: int
    time_s: float
    jpeg: bytes


def kept_indices(source_fps: float, fps: float, count: int, start_s: float = 0.0,
                 end_s: float | None = None) -> list[int]:
    """The indices of the file's frames a camera at ``fps`` publishes, within
    ``[start_s, end_s)`` of the file's timeline (frame ``i`` is at ``i / source_fps``).

    >>> kept_indices(12.0, 5.0, 12)
    [0, 3, 5, 8, 10]
    >>> kept_indices(12.0, 5.0, 459, start_s=24.0, end_s=25.0)
    [288, 291, 293, 296, 298]
    """
    sampler = FrameSampler(source_fps, fps)
    return [i for i in range(count)
            if sampler.keep(i) and start_s <= i / source_fps
            and (end_s is None or i / source_fps < end_s)]


def sample_video(path: Path, fps: float, start_s: float = 0.0, end_s: float | None = None,
                 jpeg_quality: int = 85, max_width: int | None = None
                 ) -> Iterator[SampledFrame]:
    """The frames of ``path`` a camera at ``fps`` publishes between ``start_s`` and
    ``end_s`` (seconds of the file; None: to its end). Raises ``ValueError`` for a file
    OpenCV cannot open or one that reports no frame rate."""
    if end_s is not None and end_s <= start_s:
        raise ValueError(f"empty time range {start_s}-{end_s} s")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path}")
        rate = source_fps(cap)
        if rate is None:
            raise ValueError(f"{path} reports no frame rate")
        sampler = FrameSampler(rate, fps)
        for i, image in _read_range(cap, rate, start_s, end_s, sampler.keep):
            ok, encoded = cv2.imencode(".jpg", downscale(image, max_width),
                                       [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if ok:
                yield SampledFrame(i, i / rate, encoded.tobytes())
    finally:
        cap.release()


def _read_range(cap: cv2.VideoCapture, rate: float, start_s: float, end_s: float | None,
                keep: Callable[[int], bool] = lambda index: True
                ) -> Iterator[tuple[int, np.ndarray]]:
    """The decoded frames of ``cap`` (index, image) in ``[start_s, end_s)`` of the file that
    ``keep`` keeps (asked about every frame, in order, as the grabber's sampler is); frames
    left out are grabbed, not decoded."""
    index = 0
    while cap.grab():
        i, index = index, index + 1
        if end_s is not None and i / rate >= end_s:
            return
        if not keep(i) or i / rate < start_s:
            continue
        ok, image = cap.retrieve()
        if ok and image is not None:
            yield i, image


def parse_range(text: str) -> tuple[float, float]:
    """``"8.5-14"`` -> ``(8.5, 14.0)``: seconds of a file, start before end.

    >>> parse_range("8.5-14")
    (8.5, 14.0)
    """
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError
        low, high = float(start), float(end)
    except ValueError:
        raise ValueError(f"not a time range START-END in seconds: {text!r}") from None
    if high <= low:
        raise ValueError(f"empty time range {text!r}")
    return low, high


def outside(times: Sequence[float], ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """0 for each time outside every ``[start, end)`` range, 1 inside one (a label array:
    1 = abnormal, as ``--labels`` gives).

    >>> outside([0.0, 1.0, 2.0, 3.0], [(1.0, 2.5)]).tolist()
    [0, 1, 1, 0]
    """
    t = np.asarray(times, dtype=np.float64)
    inside = np.zeros(len(t), dtype=bool)
    for start, end in ranges:
        inside |= (t >= start) & (t < end)
    return inside.astype(np.int8)


def cut_clip(source: Path, dest: Path, start_s: float, end_s: float) -> Path:
    """Copy ``[start_s, end_s)`` of ``source`` to ``dest`` (MJPEG AVI at the source's frame
    rate, written to a temporary name and renamed), so that a camera replaying ``dest``
    samples it as it would the original."""
    cap = cv2.VideoCapture(str(source))
    partial = dest.with_name(dest.stem + ".partial" + dest.suffix)
    writer: cv2.VideoWriter | None = None
    try:
        rate = source_fps(cap) if cap.isOpened() else None
        if rate is None:
            raise ValueError(f"cannot read the frame rate of {source}")
        for _, image in _read_range(cap, rate, start_s, end_s):
            if writer is None:
                dest.parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*"MJPG"), rate,
                                         (image.shape[1], image.shape[0]))
            writer.write(image)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError(f"no frames of {source} in {start_s}-{end_s} s")
    partial.replace(dest)
    return dest


def write_frames(frames: Iterator[SampledFrame], folder: Path) -> tuple[list[Path],
                                                                       list[float]]:
    """Write sampled frames as ``<index>.jpg`` files; their paths and times in the file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, times = [], []
    for frame in frames:
        path = folder / f"{frame.index:06d}.jpg"
        path.write_bytes(frame.jpeg)
        paths.append(path)
        times.append(frame.time_s)
    return paths, times
