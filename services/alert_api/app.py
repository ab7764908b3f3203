"""The alert API (FastAPI): the live picture from Redis, operator actions, a live feed.

=====================================  =========  ==========================================
``GET /v1/alerts``                      read       list/filter (site, zone, rule, severity,
                                                   state, bbox, since/until, limit, order)
``GET /v1/alerts/{id}``                 read       one alert with evidence and history
``POST /v1/alerts/{id}/ack``            operator   open → acknowledged, with a comment
``POST /v1/alerts/{id}/resolve``        operator   open/acknowledged → resolved
``POST /v1/alerts/{id}/assign|note|``   operator   assign to an operator, add a note,
``escalate``                                       raise the severity (state unchanged)
``GET /v1/alerts/{id}/export``          operator   case zip with SHA256SUMS, audited
                                                   (``export.py``)
``/v1/alerts/{id}/procedure``           read/op.   the rule's procedure as a checklist
                                                   (``procedure.py``)
``GET /v1/audit``                       read       the audit log (newest first)
``GET /v1/alerts/stream``               read       live feed: WebSocket, or SSE over HTTP
``/v1/watchlists/...``                  operator   enroll, list, update, remove watchlist
                                                   entries (``watchlists.py``)
``/v1/plates/...``                      operator   plate hotlists / allow lists, sightings
                                                   search, their audit (``plates.py``)
``GET /v1/snapshots/{ref}``             read       a kept frame, every face but the matched
                                                   one blurred (``?blur=none``: operator)
``/console``, ``/v1/session``,           see        the operations console and its sign-in
``/v1/sites``                           console/   (``console/``, ``sessions.py``)
``/healthz`` ``/readyz`` ``/metrics``   none       liveness, Redis reachable, Prometheus
=====================================  =========  ==========================================

Keys go in the ``X-API-Key`` header (``?api_key=`` on the stream), or are exchanged once
for the console's HttpOnly session cookie (``sessions.py``). Actions take an optional
``expected_version`` (409 if the alert changed meanwhile). OpenAPI docs at
``/docs``. Actions go through ``argus.stores.alerts`` (one Redis transaction each, with
the audit entry) and are then sent to the ``alerts`` topic keyed by alert id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from argus import __version__
from argus.log import get_logger
from argus.procedures import Procedures
from argus.redact import redact_url
from argus.settings import Settings, get_settings
from argus.stores import alerts as alert_sink
from schemas.alerts import ACTIVE_STATES, Action, Alert, AlertState, InvalidTransition, Severity
from services.alert_api import (
    cameras,
    console,
    export,
    plates,
    procedure,
    sessions,
    snapshots,
    watchlists,
)
from services.alert_api.auth import AuthConfigError, KeyRing, Principal, Role
from services.alert_api.config import ApiConfig
from services.alert_api.deps import ERRORS, KEY_HEADER, KEY_QUERY, Operator, authorize, require
from services.alert_api.feed import Feed
from services.alert_api.metrics import ACTIONS, REQUEST_LATENCY, REQUESTS
from services.alert_api.models import ActionRequest, AlertList, AlertSummary, Problem
from services.alert_api.publisher import ChangePublisher
from services.alert_api.queries import AlertQuery, BBox, list_alerts, parse_time
from services.alert_api.stream import serve_websocket, sse_events

log = get_logger(__name__)

DESCRIPTION = """\
The live picture of Argus alerts, operator actions and a live feed.

* **read** keys list, get and stream alerts and read the audit log;
  **operator** keys also acknowledge and resolve (recorded in the audit log).
* **operator** keys manage face watchlists (`/v1/watchlists`, every change audited) and may
  see a snapshot unblurred (`/v1/snapshots/{ref}?blur=none`, audited); read keys get
  snapshots with every face except the matched one pixelated.
* **operator** keys manage plate hotlists and allow lists and search plate sightings
  (`/v1/plates`: plates are personal data; every change and search audited).
* Send the key as `X-API-Key` (the live feed also takes `?api_key=`).
* The operations console is at `/console` (sign in with a key: it becomes an HttpOnly
  session cookie, `POST /v1/session`).
* `GET /v1/alerts/stream` is Server-Sent Events; a WebSocket on the same path gives the
  same messages: a snapshot, then every change as the whole alert.
"""


@dataclass
class Runtime:
    """What the running app holds (created in the lifespan, on the server's loop)."""

    redis: aioredis.Redis
    feed: Feed
    publisher: ChangePublisher
    evidence_key: bytes | None = None
    """Opens sealed snapshots (``ARGUS_EVIDENCE_KEY``)."""


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _stream_principal(request: Request,
                            header: Annotated[str | None, Depends(KEY_HEADER)],
                            query: Annotated[str | None, Depends(KEY_QUERY)]) -> Principal:
    return authorize(request.app.state.keys, header or query, Role.READ)


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def alert_query(site: str | None = None, zone: str | None = None, rule: str | None = None,
                severity: Annotated[list[str] | None, Query(
                    description="info, low, medium, high, critical (repeat or comma list)")
                ] = None,
                state: Annotated[list[str] | None, Query(
                    description="open, acknowledged, resolved, active (default), all")] = None,
                bbox: Annotated[str | None, Query(
                    description="minLon,minLat,maxLon,maxLat")] = None,
                since: Annotated[str | None, Query(
                    description="last seen at or after (Unix s or ISO 8601)")] = None,
                until: Annotated[str | None, Query(description="last seen at or before")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                order: Literal["time", "severity"] = "time") -> AlertQuery:
    """The filters of a list or stream request (422 with the reason if one is invalid)."""
    try:
        states: set[AlertState] = set()
        for name in _split(state or []) or ["active"]:
            states |= (set(ACTIVE_STATES) if name == "active" else set(AlertState)
                       if name == "all" else {AlertState(name)})
        return AlertQuery(
            site=site, zone=zone, rule=rule,
            severities=frozenset(Severity(s) for s in _split(severity or [])),
            states=frozenset(states), bbox=BBox.parse(bbox) if bbox else None,
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None, limit=limit, order=order)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


class _Metrics:
    """ASGI middleware: requests by route template, method and status; latency."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def record_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(route, scope["method"], str(status[0])).inc()
            if not route.endswith("/stream"):
                REQUEST_LATENCY.labels(route).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None, config: ApiConfig | None = None) -> FastAPI:
    """The app; raises ``AuthConfigError`` if no usable API key is configured."""
    settings = settings or get_settings()
    config = config or ApiConfig()
    keys = KeyRing.load(config.api_keys, config.api_keys_file)
    if not len(keys):
        raise AuthConfigError("no API keys configured: set ARGUS_API_KEYS (KEY:ROLE,...) "
                              "or ARGUS_API_KEYS_FILE")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(settings.redis_url)
        runtime = Runtime(client, Feed(client, config.feed_queue_size),
                          ChangePublisher(settings, client, config.publish_retry_s),
                          settings.evidence_key_bytes)
        await runtime.feed.start()
        await runtime.publisher.start()
        app.state.runtime = runtime
        log.info("alert_api.started", extra={"redis": redact_url(settings.redis_url),
                                             "keys": len(keys),
                                             "kafka": runtime.publisher.connected})
        try:
            yield
        finally:
            await runtime.publisher.stop()
            await runtime.feed.stop()
            await app.state.faces.close()
            await client.aclose()

    app = FastAPI(title="Argus alert API", version=__version__, lifespan=lifespan,
                  description=DESCRIPTION)
    app.state.keys = keys
    app.state.faces = watchlists.FaceBackend(settings, config)
    app.add_middleware(_Metrics)
    app.include_router(watchlists.router)
    app.include_router(snapshots.router)
    app.include_router(export.router)
    app.include_router(procedure.router)
    app.include_router(cameras.router)
    app.include_router(plates.routes(settings))
    app.state.procedures = Procedures(settings.rules)
    console.mount(app, settings, config)
    reader = Depends(require(Role.READ))

    @app.get("/v1/alerts", response_model=AlertList, tags=["alerts"], responses=ERRORS,
             dependencies=[reader])
    async def list_route(request: Request, query: Annotated[AlertQuery, Depends(alert_query)]
                         ) -> AlertList:
        alerts = await list_alerts(_runtime(request).redis, query)
        return AlertList(count=len(alerts), alerts=[AlertSummary.of(a) for a in alerts])

    @app.get("/v1/alerts/stream", tags=["live"], responses=ERRORS,
             response_class=StreamingResponse,
             summary="Live feed as Server-Sent Events (WebSocket on the same path)")
    async def sse_route(request: Request,
                        _: Annotated[Principal, Depends(_stream_principal)],
                        query: Annotated[AlertQuery, Depends(alert_query)]
                        ) -> StreamingResponse:
        runtime = _runtime(request)
        return StreamingResponse(sse_events(runtime.feed, runtime.redis, query),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.websocket("/v1/alerts/stream")
    async def websocket_route(websocket: WebSocket) -> None:
        params = websocket.query_params
        key = websocket.headers.get("x-api-key") or params.get("api_key")
        try:
            query = alert_query(site=params.get("site"), zone=params.get("zone"),
                                rule=params.get("rule"), severity=params.getlist("severity"),
                                bbox=params.get("bbox"))
        except HTTPException as exc:
            await websocket.close(code=1008, reason=str(exc.detail)[:120])
            return
        runtime: Runtime = websocket.app.state.runtime
        if key:
            principal, still_valid = keys.lookup(key), None
        else:  # the console's session cookie: checked again while the feed runs
            principal = await sessions.websocket_principal(websocket)
            still_valid = sessions.websocket_session_check(websocket)
        await serve_websocket(websocket, principal, runtime.feed, runtime.redis, query,
                              still_valid, config.session_check_s)

    @app.get("/v1/alerts/{alert_id}", response_model=Alert, tags=["alerts"],
             responses={**ERRORS, 404: {"model": Problem}}, dependencies=[reader])
    async def get_route(request: Request, alert_id: str) -> Alert:
        alert = await alert_sink.get_alert(_runtime(request).redis, alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r} (never raised, or expired)")
        return alert

    async def act(request: Request, response: Response, action: Action, alert_id: str,
                  body: ActionRequest | None, principal: Principal) -> Alert:
        runtime = _runtime(request)
        body = body or ActionRequest()
        try:
            change = await alert_sink.act(
                runtime.redis, alert_id, action, principal.name, body.comment,
                assignee=body.assignee, resolved_ttl_s=config.alert_resolved_ttl_s,
                audit_retention_s=config.audit_retention_s,
                expected_version=body.expected_version)
        except alert_sink.VersionConflict as exc:
            ACTIONS.labels(action.value, "conflict").inc()
            raise HTTPException(409, str(exc)) from None
        except alert_sink.AlertNotFound:
            ACTIONS.labels(action.value, "not_found").inc()
            raise HTTPException(404, f"no alert {alert_id!r} (never raised, or expired)"
                                ) from None
        except InvalidTransition as exc:
            ACTIONS.labels(action.value, "refused").inc()
            raise HTTPException(409, str(exc)) from None
        except ValueError as exc:  # an assign without assignee, an empty note
            ACTIONS.labels(action.value, "invalid").inc()
            raise HTTPException(422, str(exc)) from None
        ACTIONS.labels(action.value, "ok").inc()
        log.info("alert_api.action", extra={"action": action.value, "alert_id": alert_id,
                                            "actor": principal.name,
                                            "version": change.alert.version})
        published = await runtime.publisher.publish(change.alert)
        response.headers["X-Argus-Kafka"] = "published" if published else "pending"
        return change.alert

    action_errors: dict[int | str, dict[str, Any]] = {
        **ERRORS, 404: {"model": Problem}, 409: {"model": Problem,
                                               "description": "Not allowed in this state"}}

    @app.post("/v1/alerts/{alert_id}/ack", response_model=Alert, tags=["actions"],
              responses=action_errors)
    async def ack_route(request: Request, response: Response, alert_id: str,
                        principal: Operator,
                        body: ActionRequest | None = None) -> Alert:
        return await act(request, response, Action.ACKNOWLEDGE, alert_id, body, principal)

    @app.post("/v1/alerts/{alert_id}/resolve", response_model=Alert, tags=["actions"],
              responses=action_errors)
    async def resolve_route(request: Request, response: Response, alert_id: str,
                            principal: Operator,
                            body: ActionRequest | None = None) -> Alert:
        return await act(request, response, Action.RESOLVE, alert_id, body, principal)

    @app.post("/v1/alerts/{alert_id}/assign", response_model=Alert, tags=["actions"],
              responses=action_errors)
    async def assign_route(request: Request, response: Response, alert_id: str,
                           principal: Operator, body: ActionRequest) -> Alert:
        """Assign an active alert to the operator named in ``assignee``."""
        return await act(request, response, Action.ASSIGN, alert_id, body, principal)

    @app.post("/v1/alerts/{alert_id}/note", response_model=Alert, tags=["actions"],
              responses=action_errors)
    async def note_route(request: Request, response: Response, alert_id: str,
                         principal: Operator, body: ActionRequest) -> Alert:
        """Add a note (``comment``) to an active alert."""
        return await act(request, response, Action.NOTE, alert_id, body, principal)

    @app.post("/v1/alerts/{alert_id}/escalate", response_model=Alert, tags=["actions"],
              responses=action_errors)
    async def escalate_route(request: Request, response: Response, alert_id: str,
                             principal: Operator, body: ActionRequest | None = None) -> Alert:
        """Raise an active alert's severity one step (critical stays critical)."""
        return await act(request, response, Action.ESCALATE, alert_id, body, principal)

    @app.get("/v1/audit", response_model=list[alert_sink.AuditEntry], tags=["audit"],
             responses=ERRORS, dependencies=[reader])
    async def audit_route(request: Request, alert_id: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100
                          ) -> list[alert_sink.AuditEntry]:
        """The audit log, newest first, or one alert's: operator actions, and the rule
        engine's ``evidence`` entries with the ``event_ids`` each of its writes added to
        the alert's evidence (together, every event that made or updated it)."""
        return await alert_sink.audit_entries(_runtime(request).redis, limit, alert_id)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "Redis unreachable"}})
    async def readyz(request: Request) -> JSONResponse:
        runtime = _runtime(request)
        try:
            redis_ok = bool(await asyncio.wait_for(runtime.redis.ping(), 2.0))
        except (RedisError, OSError, TimeoutError):
            redis_ok = False
        body = {"redis": "ok" if redis_ok else "unreachable",
                "kafka": "connected" if runtime.publisher.connected else "unavailable",
                "feed": "subscribed" if runtime.feed.subscribed.is_set() else "connecting"}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
