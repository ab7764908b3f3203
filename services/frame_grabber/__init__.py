"""The frame grabber service: cameras (files, RTSP/HTTP streams, webcams) → ``frames.raw``.

Each camera is read by a :class:`CameraWorker` (sample to fps, downscale, JPEG-encode,
bounded drop-oldest buffer, bounded in-flight Kafka sends); :class:`FrameGrabber` runs
many of them in one process with one producer. Run it with
``python -m services.frame_grabber`` (see ``__main__``).
"""

from argus.sources import SourceKind, parse_source
from services.frame_grabber.buffer import FrameBuffer
from services.frame_grabber.frame import Frame
from services.frame_grabber.grabber import FrameGrabber
from services.frame_grabber.source import FrameSampler
from services.frame_grabber.worker import CameraWorker

__all__ = [
    "CameraWorker",
    "Frame",
    "FrameBuffer",
    "FrameGrabber",
    "FrameSampler",
    "SourceKind",
    "parse_source",
]
