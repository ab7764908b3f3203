"""Each camera's newest tracks in Redis, for the console's camera wall.

The track stage hands every ``Tracks`` message to :meth:`LatestTracks.write`, which keeps
at most one write per camera every ``every_s`` seconds (the wall redraws every 2 s; the
pipeline's capacity matters more)::

    argus:tracks:{camera_id}:latest   JSON of :class:`CameraTracks`, TTL ``ttl_s``

Only what the wall draws is kept: the confirmed and lost tracks' ids, classes, states and
boxes. ``written`` (the writer's clock) says how fresh the camera's pipeline is: the wall
shows a camera online while its newest tracks or cached frame are recent, whether or not
its frames are cached. Writes are best effort: a Redis failure is counted
(``argus_stage_errors_total{kind="latest_tracks"}``) and logged, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from argus.log import get_logger
from argus.metrics import STAGE_ERRORS, redis_command
from schemas.tracks import Tracks

log = get_logger(__name__)

KEY = "argus:tracks:{camera_id}:latest"
TTL_S = 10.0
EVERY_S = 0.5


class TrackBox(BaseModel):
    """One track as the wall draws it (box normalised, origin top-left)."""

    id: int
    cls: str
    state: str
    box: tuple[float, float, float, float]


class CameraTracks(BaseModel):
    """A camera's newest tracks: the frame they belong to and when they were written."""

    camera_id: str
    seq: int
    capture_ts: float
    written: float
    tracks: list[TrackBox]


def tracks_key(camera_id: str) -> str:
    """The Redis key of a camera's newest tracks.

    >>> tracks_key("cam-1")
    'argus:tracks:cam-1:latest'
    """
    return KEY.format(camera_id=camera_id)


def summarise(tracks: Tracks, written: float) -> CameraTracks:
    """What is kept of a ``Tracks`` message: no tentative tracks, boxes rounded.

    >>> from schemas.tracks import Track, Velocity
    >>> from schemas.detections import Box
    >>> t = Track(track_id=3, class_id=0, class_name="person", box=Box(x1=.1, y1=.2, x2=.3,
    ...           y2=.456789), velocity=Velocity(vx=0, vy=0), age=4, state="confirmed",
    ...           first_seen=1.0, last_seen=2.0, score=.9)
    >>> new = t.model_copy(update={"track_id": 4, "state": "tentative"})
    >>> summarise(Tracks(camera_id="c", seq=9, capture_ts=2.0, width=640, height=480,
    ...                  tracks=[t, new]), 5.0).tracks
    [TrackBox(id=3, cls='person', state='confirmed', box=(0.1, 0.2, 0.3, 0.4568))]
    """
    return CameraTracks(
        camera_id=tracks.camera_id, seq=tracks.seq, capture_ts=tracks.capture_ts,
        written=written, tracks=[
            TrackBox(id=t.track_id, cls=t.class_name, state=t.state,
                     box=(round(t.box.x1, 4), round(t.box.y1, 4), round(t.box.x2, 4),
                          round(t.box.y2, 4)))
            for t in tracks.tracks if t.state != "tentative"])


class LatestTracks:
    """Writes each camera's newest tracks, at most once per ``every_s`` per camera."""

    def __init__(self, client: Any, ttl_s: float = TTL_S, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)
        self.every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}

    async def write(self, tracks: Tracks, stage: str = "track") -> bool:
        """Store ``tracks`` as the camera's newest unless it was written less than
        ``every_s`` ago. Never raises; True if written."""
        now = self._clock()
        last = self._last.get(tracks.camera_id)
        if last is not None and now - last < self.every_s:
            return False
        self._last[tracks.camera_id] = now
        try:
            with redis_command("latest_tracks_set"):
                await self.client.set(tracks_key(tracks.camera_id),
                                      summarise(tracks, time.time()).model_dump_json(),
                                      px=self.ttl_ms)
        except Exception as exc:
            STAGE_ERRORS.labels(stage, "latest_tracks").inc()
            log.warning("latest tracks write failed", extra={"error": repr(exc),
                                                             "camera": tracks.camera_id})
            return False
        return True


async def read_latest(client: Any, camera_id: str) -> CameraTracks | None:
    """The camera's newest tracks, or None (none within the TTL, or unreadable)."""
    with redis_command("latest_tracks_get"):
        value = await client.get(tracks_key(camera_id))
    if value is None:
        return None
    try:
        return CameraTracks.model_validate_json(value)
    except ValidationError:
        log.warning("latest tracks unreadable", extra={"camera": camera_id})
        return None
