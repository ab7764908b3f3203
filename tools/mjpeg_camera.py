"""A live camera for tests and fault runs: a real clip served as an HTTP MJPEG stream
(``multipart/x-mixed-replace``, what many IP cameras offer besides RTSP), in a loop at a
fixed frame rate, that can be taken off the network and brought back on the same port.

    camera = MjpegCamera(Path("clip.mp4"), fps=5).start()
    camera.url        # http://127.0.0.1:<port>/stream.mjpg, a topology camera's source
    camera.stop()     # connections cut, the port closed: the camera is gone
    camera.start()    # back on the same port
    camera.close()
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2


def clip_jpegs(clip: Path, max_frames: int = 150, quality: int = 85) -> list[bytes]:
    """The first ``max_frames`` frames of ``clip`` as JPEGs."""
    capture = cv2.VideoCapture(str(clip))
    jpegs: list[bytes] = []
    try:
        while len(jpegs) < max_frames:
            ok, image = capture.read()
            if not ok:
                break
            jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                         .tobytes())
    finally:
        capture.release()
    if not jpegs:
        raise ValueError(f"no frame could be read from {clip}")
    return jpegs


class MjpegCamera:
    """An MJPEG stream of a clip's frames, looped at ``fps`` (see the module doc)."""

    def __init__(self, clip: Path, fps: float = 5.0, port: int = 0,
                 max_frames: int = 150) -> None:
        self.jpegs = clip_jpegs(clip, max_frames)
        self.period = 1.0 / fps
        self.port = port
        self.connections = 0
        self._up = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegCamera:
        """Serve (again) on the camera's port (a free one the first time)."""
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index, due = 0, time.monotonic()
                try:
                    while camera._up.is_set():
                        jpeg = camera.jpegs[index % len(camera.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))
                        index += 1
                        due += camera.period
                        time.sleep(max(0.0, due - time.monotonic()))
                except OSError:
                    pass  # the grabber hung up

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self._up.set()
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="mjpeg-camera").start()
        return self

    def stop(self) -> None:
        """Cut the streams and close the port (a camera that lost power or network)."""
        self._up.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.stop()
