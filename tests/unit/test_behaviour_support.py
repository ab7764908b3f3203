"""Synthetic track sequences for the behaviour table tests (helpers only, no tests).

A *script* is a list of frames, each a list of :class:`Track`; :func:`run` feeds them to a
camera's behaviours at ``FPS`` frames per second from ``T0`` and returns the events with
the frame index that produced each. Boxes are built from a foot point and a height
(normalised), velocities from a speed in box heights per second.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from argus.topology import Camera, Site, parse_topology
from pipelines.stages.behaviour import CameraBehaviours
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.tracks import Track, Tracks, TrackStateName, Velocity

W, H, FPS = 640, 360, 5.0
T0 = 1_767_225_600.0
"""2026-01-01 00:00:00 UTC, a Thursday."""

Script = list[list[Track]]


def camera(yaml_camera: str, site_extra: str = "") -> tuple[Camera, Site]:
    """A one-camera topology: ``yaml_camera`` is the camera's body (indented 4 spaces)."""
    text = (f"sites:\n  - id: s\n    lat: 0\n    lon: 0\n    zones: [{{id: z}}]\n{site_extra}"
            f"cameras:\n  - id: cam\n    site: s\n    source: x\n{yaml_camera}")
    topo = parse_topology(text, "t.yaml")
    return topo.cameras[0], topo.sites[0]


def obj(tid: int, x: float, y: float, h: float = 0.2, *, speed: float = 0.0,
        heading: tuple[float, float] = (1.0, 0.0), state: TrackStateName = "confirmed",
        cls: str = "person", score: float = 0.9, aspect: float = 0.4) -> Track:
    """A track standing at foot point (x, y) with box height ``h`` (normalised), moving at
    ``speed`` of its box heights per second along ``heading`` (pixels on screen)."""
    width = h * aspect * H / W
    box = Box(x1=max(x - width / 2, 0.0), y1=max(y - h, 0.0), x2=min(x + width / 2, 1.0),
              y2=min(y, 1.0))
    norm = math.hypot(*heading)
    px = speed * h * H
    vx, vy = px * heading[0] / norm / W, px * heading[1] / norm / H
    return Track(track_id=tid, class_id=0, class_name=cls, box=box,
                 velocity=Velocity(vx=vx, vy=vy), age=1, state=state,
                 first_seen=T0, last_seen=T0, score=score)


def moving(tid: int, start: tuple[float, float], end: tuple[float, float], frames: int,
           **kw: object) -> Script:
    """One track walking in a straight line from ``start`` to ``end`` over ``frames``."""
    out = []
    for i in range(frames):
        f = i / max(frames - 1, 1)
        x = start[0] + f * (end[0] - start[0])
        y = start[1] + f * (end[1] - start[1])
        out.append([obj(tid, x, y, **kw)])  # type: ignore[arg-type]
    return out


def still(tid: int, x: float, y: float, seconds: float, **kw: object) -> Script:
    return [[obj(tid, x, y, **kw)] for _ in range(round(seconds * FPS))]  # type: ignore[arg-type]


def empty(seconds: float) -> Script:
    return [[] for _ in range(round(seconds * FPS))]


def together(*scripts: Script) -> Script:
    """Frame-wise union of scripts (shorter ones end early)."""
    n = max(len(s) for s in scripts)
    return [[t for s in scripts if i < len(s) for t in s[i]] for i in range(n)]


def message(index: int, tracks: Iterable[Track], t0: float = T0, seq0: int = 0) -> Tracks:
    return Tracks(camera_id="cam", seq=seq0 + index, capture_ts=t0 + index / FPS, width=W,
                  height=H, tracks=list(tracks))


def run(cam: Camera, site: Site, script: Script, t0: float = T0,
        engine: CameraBehaviours | None = None,
        each: Callable[[int, CameraBehaviours], None] | None = None
        ) -> list[tuple[int, VideoEvent]]:
    """Feed ``script``; returns (frame index, event) for every event."""
    engine = engine or CameraBehaviours(cam)
    out: list[tuple[int, VideoEvent]] = []
    for i, tracks in enumerate(script):
        result = engine.process(message(i, tracks, t0), site)
        assert result is not None
        out.extend((i, e) for e in result.events)
        if each is not None:
            each(i, engine)
    return out


def crossings(cam: Camera, site: Site, script: Script, t0: float = T0) -> list[str]:
    """Every line crossing direction of the script (schedule or not)."""
    engine = CameraBehaviours(cam)
    out: list[str] = []
    for i, tracks in enumerate(script):
        result = engine.process(message(i, tracks, t0), site)
        assert result is not None
        out.extend(d for _, d in result.crossings)
    return out
