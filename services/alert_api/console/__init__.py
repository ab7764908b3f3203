"""The operations console: a web page served by the alert API at ``/console``.

Plain ES modules and CSS under ``static/`` (no build step, nothing fetched from another
origin but the map tiles when ``ARGUS_CONSOLE_TILE_URL`` names one; Leaflet is vendored
under ``static/vendor/leaflet``, loaded only when tiles are configured), the same origin
and the same keys as the API. Routes added here:

=====================================  =========  ==========================================
``GET /console``                        none       the page (it asks for a key to sign in)
``GET /console/static/...``             none       its scripts and styles
``POST /v1/session``                    key        exchange an API key for a session cookie
``GET /v1/session``                     read       who is signed in, with which role
``DELETE /v1/session``                  none       sign out (the session is deleted)
``GET /v1/sites``                       read       the topology's sites (map pins, timezones)
``GET /v1/console/map``                 read       the map's tile URL and attribution (may be
                                                   empty: the plain map)
``/v1/cameras``                         read       the camera wall (``../cameras.py``)
=====================================  =========  ==========================================
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from argus.log import get_logger
from argus.settings import Settings
from argus.topology import Topology, TopologyError, load_topology
from services.alert_api import sessions
from services.alert_api.auth import Principal, key_digest
from services.alert_api.config import ApiConfig
from services.alert_api.deps import ERRORS, Reader
from services.alert_api.metrics import SESSIONS

log = get_logger(__name__)

STATIC = Path(__file__).parent / "static"


class SignIn(BaseModel):
    """Body of ``POST /v1/session``."""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=500, repr=False)


class SiteOut(BaseModel):
    """A site of the topology as the console draws it."""

    id: str
    name: str
    lat: float
    lon: float
    timezone: str


class MapSettings(BaseModel):
    """The console map's tiles: a Leaflet URL template, or empty for the plain map."""

    tile_url: str
    attribution: str


def tile_source(tile_url: str) -> str:
    """The Content-Security-Policy source that lets the page load the tiles: their origin,
    a ``{s}`` subdomain label as ``*``; empty for same-origin (or no) tiles.

    >>> tile_source("https://{s}.tile.example.org/{z}/{x}/{y}.png")
    'https://*.tile.example.org'
    >>> tile_source("http://127.0.0.1:8080/{z}/{x}/{y}.png"), tile_source("/tiles/{z}/{x}/{y}.png")
    ('http://127.0.0.1:8080', '')
    """
    parts = urlsplit(tile_url)
    if not parts.netloc:
        return ""
    host = re.sub(r"\{[a-z]+\}", "*", parts.netloc)
    return f"{parts.scheme}://{host}"


def page_policy(tile_url: str) -> str:
    """The page's Content-Security-Policy: everything from the API's origin, images also
    from the tile server."""
    tiles = tile_source(tile_url)
    return ("default-src 'self'; img-src 'self' data:" + (f" {tiles}" if tiles else "") +
            "; style-src 'self'; script-src 'self'; connect-src 'self'; "
            "frame-ancestors 'none'")


def load(settings: Settings) -> Topology | None:
    """The topology; None (logged) if it cannot be read, so the API still serves alerts
    (the console then places pins at the alerts' positions and shows no cameras)."""
    try:
        return load_topology(settings.topology, settings.shared)
    except (TopologyError, OSError, ValueError) as exc:
        log.warning("console.no_topology", extra={"error": str(exc)[:300]})
        return None


def sites_of(topology: Topology | None) -> list[SiteOut]:
    return [SiteOut(id=s.id, name=s.name or s.id, lat=s.lat, lon=s.lon, timezone=s.timezone)
            for s in (topology.sites if topology else [])]


router = APIRouter()


@router.post("/v1/session", response_model=Principal, tags=["console"],
             responses={401: ERRORS[401]})
async def sign_in(request: Request, response: Response, body: SignIn) -> Principal:
    """Check an API key and set the HttpOnly session cookie (``argus_session``)."""
    principal = request.app.state.keys.lookup(body.api_key)
    if principal is None:
        SESSIONS.labels("refused").inc()
        raise HTTPException(401, "unknown API key")
    ttl_s: int = request.app.state.session_ttl_s
    token = await sessions.create(request.app.state.runtime.redis, key_digest(body.api_key),
                                  ttl_s)
    response.set_cookie(sessions.COOKIE, token, max_age=ttl_s, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    SESSIONS.labels("created").inc()
    log.info("console.sign_in", extra={"actor": principal.name, "role": principal.role.value})
    return principal


@router.get("/v1/session", response_model=Principal, tags=["console"], responses=ERRORS)
async def who_am_i(principal: Reader) -> Principal:
    """The signed-in key's name (the audit actor) and role."""
    return principal


@router.delete("/v1/session", status_code=204, tags=["console"])
async def sign_out(request: Request, response: Response) -> None:
    """Delete the session and its cookie."""
    token = request.cookies.get(sessions.COOKIE)
    if token:
        await sessions.delete(request.app.state.runtime.redis, token)
        SESSIONS.labels("deleted").inc()
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")


@router.get("/v1/sites", response_model=list[SiteOut], tags=["console"], responses=ERRORS)
async def sites_route(request: Request, _: Reader) -> list[SiteOut]:
    """The sites of the topology: id, name, position and IANA timezone."""
    sites: list[SiteOut] = request.app.state.sites
    return sites


@router.get("/v1/console/map", response_model=MapSettings, tags=["console"], responses=ERRORS)
async def map_route(request: Request, _: Reader) -> MapSettings:
    """The map's tile URL template and attribution (``ARGUS_CONSOLE_TILE_URL``)."""
    settings: MapSettings = request.app.state.map
    return settings


@router.get("/console", include_in_schema=False)
async def page(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={
        "Cache-Control": "no-cache",
        "Content-Security-Policy": page_policy(request.app.state.map.tile_url),
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def mount(app: FastAPI, settings: Settings, config: ApiConfig) -> None:
    """Add the console's routes and static files to ``app``."""
    app.state.topology = load(settings)
    app.state.sites = sites_of(app.state.topology)
    app.state.session_ttl_s = config.session_ttl_s
    app.state.map = MapSettings(tile_url=config.console_tile_url,
                                attribution=config.console_tile_attribution)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
