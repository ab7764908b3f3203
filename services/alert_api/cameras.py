"""The camera wall's data: the topology's cameras with their zones and tripwires, whether
a recent frame is cached, and that frame with every face pixelated.

``GET /v1/cameras``                  read  cameras, zones (normalised polygons), lines,
                                           the newest frame's and tracks' ages, online or not
``GET /v1/cameras/{id}/latest.jpg``  read  the newest cached frame, faces pixelated
``GET /v1/cameras/{id}/tracks``      read  the newest tracks (ids, classes, boxes)

Frames come from the frame cache (``argus.stores.frame_cache``: the detect stage caches
the frames of the cameras later stages read, for ``ARGUS_FRAME_CACHE_S``), so only those
cameras have pictures; tracks come from the track stage (``argus.stores.latest_tracks``,
every camera). A camera is *online* while its newest cached frame or its newest tracks
are younger than ``ONLINE_S``: the pipeline is receiving its frames. (The frame grabber's
own liveness is a Prometheus gauge, ``argus_camera_seconds_since_last_frame``, not in
Redis; a camera whose grabber runs but whose frames reach no worker is offline here,
which is what the operator needs to know.) Every face in a live frame is pixelated (no
match to keep visible); if the face model cannot be reached, no frame is served (503).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel

from argus.stores.frame_cache import FrameCache
from argus.stores.latest_tracks import CameraTracks, read_latest
from argus.topology import Topology
from services.alert_api.deps import ERRORS, Reader
from services.alert_api.models import Problem
from services.alert_api.snapshots import pixelate

ONLINE_S = 10.0
"""A camera whose newest cached frame is older than this is shown offline."""


class ZoneOut(BaseModel):
    id: str
    site_zone: str | None
    polygon: list[tuple[float, float]]


class LineOut(BaseModel):
    id: str
    points: tuple[tuple[float, float], tuple[float, float]]


class CameraOut(BaseModel):
    id: str
    site_id: str
    zones: list[ZoneOut]
    lines: list[LineOut]
    latest_seq: int | None
    frame_age_s: float | None
    """Seconds since the newest cached frame (None: no frame cached)."""
    tracks_age_s: float | None
    """Seconds since the newest tracks were written (None: none within their TTL)."""
    age_s: float | None
    """The younger of the two: how long the pipeline has seen nothing of the camera."""
    online: bool


router = APIRouter(tags=["cameras"])


def _cache(request: Request) -> FrameCache:
    client: aioredis.Redis = request.app.state.runtime.redis
    return FrameCache(client, ttl_s=1.0, snapshot_ttl_s=1)  # reads only


@router.get("/v1/cameras", response_model=list[CameraOut], responses=ERRORS)
async def cameras_route(request: Request, _: Reader) -> list[CameraOut]:
    """Every camera of the topology with its newest cached frame's and tracks' ages."""
    topology: Topology | None = request.app.state.topology
    cache = _cache(request)
    now = time.time()
    out = []
    for camera in topology.cameras if topology else []:
        latest = await cache.latest(camera.id)
        tracks = await read_latest(request.app.state.runtime.redis, camera.id)
        frame_age = max(0.0, now - latest[1]) if latest else None
        tracks_age = max(0.0, now - tracks.written) if tracks else None
        ages = [a for a in (frame_age, tracks_age) if a is not None]
        age = min(ages) if ages else None
        out.append(CameraOut(
            id=camera.id, site_id=camera.site,
            zones=[ZoneOut(id=z.id, site_zone=z.site_zone, polygon=list(z.polygon))
                   for z in camera.zones],
            lines=[LineOut(id=line.id, points=line.points) for line in camera.lines],
            latest_seq=latest[0] if latest else None, frame_age_s=frame_age,
            tracks_age_s=tracks_age, age_s=age,
            online=age is not None and age < ONLINE_S))
    return out


@router.get("/v1/cameras/{camera_id}/latest.jpg", response_class=Response, responses={
    **ERRORS, 200: {"content": {"image/jpeg": {}}}, 404: {"model": Problem},
    503: {"model": Problem, "description": "No face model"}})
async def latest_route(request: Request, camera_id: str, _: Reader) -> Response:
    """The camera's newest cached frame with every face pixelated."""
    cache = _cache(request)
    latest = await cache.latest(camera_id)
    jpeg = await cache.get(camera_id, latest[0]) if latest else None
    if latest is None or jpeg is None:
        raise HTTPException(404, f"no recent frame of camera {camera_id!r} is cached")
    body, blurred = await pixelate(request, jpeg, [])
    return Response(body, media_type="image/jpeg", headers={
        "Cache-Control": "no-store", "X-Argus-Faces-Blurred": str(blurred),
        "X-Argus-Frame-Seq": str(latest[0])})


@router.get("/v1/cameras/{camera_id}/tracks", response_model=CameraTracks, responses={
    **ERRORS, 404: {"model": Problem}})
async def tracks_route(request: Request, camera_id: str, _: Reader) -> CameraTracks:
    """The camera's newest tracks as the track stage wrote them (confirmed and lost)."""
    tracks = await read_latest(request.app.state.runtime.redis, camera_id)
    if tracks is None:
        raise HTTPException(404, f"no recent tracks of camera {camera_id!r}")
    return tracks
