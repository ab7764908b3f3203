"""The operations console: a web page served by the alert API at ``/console``.

Plain ES modules and CSS under ``static/`` (no build step, nothing fetched from another
origin), the same origin and the same keys as the API. Routes added here:

=====================================  =========  ==========================================
``GET /console``                        none       the page (it asks for a key to sign in)
``GET /console/static/...``             none       its scripts and styles
``POST /v1/session``                    key        exchange an API key for a session cookie
``GET /v1/session``                     read       who is signed in, with which role
``DELETE /v1/session``                  none       sign out (the session is deleted)
``GET /v1/sites``                       read       the topology's sites (map pins, timezones)
``/v1/cameras``                         read       the camera wall (``../cameras.py``)
=====================================  =========  ==========================================
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from argus.log import get_logger
from argus.settings import Settings
from argus.topology import Topology, TopologyError, load_topology
from services.alert_api import sessions
from services.alert_api.auth import Principal, key_digest
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


@router.get("/console", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={
        "Cache-Control": "no-cache",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                   "style-src 'self'; script-src 'self'; "
                                   "connect-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def mount(app: FastAPI, settings: Settings, session_ttl_s: int) -> None:
    """Add the console's routes and static files to ``app``."""
    app.state.topology = load(settings)
    app.state.sites = sites_of(app.state.topology)
    app.state.session_ttl_s = session_ttl_s
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
