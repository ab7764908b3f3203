"""The chaos suite's live camera (``tools/mjpeg_camera.py``): OpenCV reads its stream like an
IP camera's, it goes away when stopped (the port closed), and comes back on the same port."""

from __future__ import annotations

import cv2
import pytest

from argus.settings import Settings
from tools.mjpeg_camera import MjpegCamera

pytestmark = pytest.mark.integration

CLIP = "data/videos/one-by-one-person-detection.mp4"


def read_one(url: str) -> tuple[int, int] | None:
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000,
                                                     cv2.CAP_PROP_READ_TIMEOUT_MSEC, 3000])
    try:
        ok, image = capture.read() if capture.isOpened() else (False, None)
        return (image.shape[1], image.shape[0]) if ok and image is not None else None
    finally:
        capture.release()


def test_camera_goes_away_and_comes_back_on_its_port(stack: Settings) -> None:
    source = cv2.VideoCapture(str(stack.shared / CLIP))
    size = (int(source.get(cv2.CAP_PROP_FRAME_WIDTH)), int(source.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    source.release()
    camera = MjpegCamera(stack.shared / CLIP, fps=10, max_frames=20).start()
    try:
        url, port = camera.url, camera.port
        assert read_one(url) == size
        camera.stop()
        assert read_one(url) is None
        camera.start()
        assert camera.port == port and read_one(url) == size
        assert camera.connections == 2
    finally:
        camera.close()
