"""Camera source strings: what a camera's ``source`` points at.

A ``source`` is one of:

* a video file path (optionally ``file://``-prefixed),
* a stream URL (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``, ``https://``),
* a webcam index: a string of digits such as ``"0"``,
* an image folder, ``dir:<glob>`` (e.g. ``dir:/data/anpr/*.jpg``): the matching images in
  name order, one per frame tick (ANPR cameras that send stills).

Pure (no OpenCV): the topology validates with it, the frame grabber opens by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
"""Source prefixes (lower-cased) that denote a network stream."""


class SourceKind(StrEnum):
    """What a camera source string points at."""

    FILE = "file"
    URL = "url"
    WEBCAM = "webcam"
    DIR = "dir"

    @property
    def live(self) -> bool:
        """Live sources are reconnected when they stop; files and image folders end."""
        return not self.finite

    @property
    def finite(self) -> bool:
        """A video file or an image folder: read to its end (then looped or finished)."""
        return self in (SourceKind.FILE, SourceKind.DIR)


@dataclass(frozen=True, slots=True)
class ParsedSource:
    """A parsed source string: its kind and the normalised target to open."""

    kind: SourceKind
    target: str
    """The file path, the URL, or the webcam index (as a string of digits)."""

    @property
    def path(self) -> Path | None:
        """The file path for a file source, else ``None``."""
        return Path(self.target) if self.kind is SourceKind.FILE else None

    @property
    def index(self) -> int | None:
        """The device index for a webcam source, else ``None``."""
        return int(self.target) if self.kind is SourceKind.WEBCAM else None


def parse_source(source: str) -> ParsedSource:
    """Classify a camera source string.

    >>> parse_source("0").kind
    <SourceKind.WEBCAM: 'webcam'>
    >>> parse_source("rtsp://cam/stream").kind
    <SourceKind.URL: 'url'>
    >>> parse_source("file:///videos/a.mp4")
    ParsedSource(kind=<SourceKind.FILE: 'file'>, target='/videos/a.mp4')
    >>> parse_source("dir:/data/anpr/*.jpg")
    ParsedSource(kind=<SourceKind.DIR: 'dir'>, target='/data/anpr/*.jpg')
    """
    text = source.strip()
    if not text:
        raise ValueError("empty camera source")
    if text.lower().startswith("dir:"):
        pattern = text[len("dir:"):].strip()
        if not pattern:
            raise ValueError("dir: source without a folder or glob")
        return ParsedSource(SourceKind.DIR, str(Path(pattern).expanduser()))
    if text.isdigit():
        return ParsedSource(SourceKind.WEBCAM, str(int(text)))
    if text.lower().startswith(URL_SCHEMES):
        return ParsedSource(SourceKind.URL, text)
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    return ParsedSource(SourceKind.FILE, str(Path(text).expanduser()))


def source_kind(source: str) -> SourceKind:
    """The :class:`SourceKind` of a camera source string."""
    return parse_source(source).kind
