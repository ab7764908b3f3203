"""The live feed endpoints on ``/v1/alerts/stream``: WebSocket and Server-Sent Events.

Both first send a snapshot of the matching active alerts, then every matching change
(created, updated, acknowledged, resolved) as the whole alert. The subscription starts
before the snapshot is read, so a change made meanwhile may arrive twice: clients keep
the highest ``version`` per ``alert_id``. Browsers cannot set headers on WebSockets or
EventSource, so both also take the key as ``?api_key=``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi import WebSocket, status

from schemas.alerts import Alert, AlertState
from services.alert_api.auth import Principal, Role
from services.alert_api.feed import Feed
from services.alert_api.metrics import FEED_CLIENTS
from services.alert_api.queries import AlertQuery, list_alerts

SNAPSHOT_LIMIT = 500
HEARTBEAT_S = 15.0
SESSION_EXPIRED = "session expired; sign in again"


def feed_filter(query: AlertQuery) -> AlertQuery:
    """The filter for changes: the same filters, every state (a resolution is news)."""
    return AlertQuery(site=query.site, zone=query.zone, rule=query.rule,
                      severities=query.severities, states=frozenset(AlertState),
                      bbox=query.bbox)


def snapshot_message(alerts: list[Alert]) -> dict[str, Any]:
    return {"type": "snapshot", "alerts": [a.model_dump(mode="json") for a in alerts]}


def change_message(alert: Alert) -> dict[str, Any]:
    return {"type": "change", "alert": alert.model_dump(mode="json")}


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One Server-Sent Events frame.

    >>> sse("change", {"a": 1}, "x:2")
    'event: change\\nid: x:2\\ndata: {"a": 1}\\n\\n'
    """
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return f"{head}data: {json.dumps(data)}\n\n"


async def _until_disconnect(ws: WebSocket) -> None:
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass


async def serve_websocket(ws: WebSocket, principal: Principal | None, feed: Feed,
                          client: Any, query: AlertQuery,
                          still_valid: Callable[[], Awaitable[bool]] | None = None,
                          check_s: float = 5.0) -> None:
    """Run one WebSocket client: refuse it (policy violation, 1008) without a read key.
    A client signed in by a session passes ``still_valid``, asked every ``check_s``: once
    the session has expired (or was signed out, or its key removed) the socket is closed
    with 1008 too, and the page asks for a sign-in."""
    if principal is None or not principal.role.allows(Role.READ):
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason="missing or unknown API key")
        return
    await ws.accept()
    FEED_CLIENTS.labels("websocket").inc()
    receiver = asyncio.create_task(_until_disconnect(ws))
    wanted = feed_filter(query)
    loop = asyncio.get_running_loop()
    next_check = loop.time() + check_s
    try:
        with feed.subscribe() as queue:
            snapshot = await list_alerts(client, replace(query, limit=SNAPSHOT_LIMIT))
            await ws.send_json(snapshot_message(snapshot))
            while True:
                if still_valid is not None and loop.time() >= next_check:
                    if not await still_valid():
                        await ws.close(code=status.WS_1008_POLICY_VIOLATION,
                                       reason=SESSION_EXPIRED)
                        return
                    next_check = loop.time() + check_s
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait(
                    {getter, receiver}, return_when=asyncio.FIRST_COMPLETED,
                    timeout=None if still_valid is None else max(0.0, next_check - loop.time()))
                if getter not in done:
                    getter.cancel()  # a queue.get() cancelled takes nothing off the queue
                    if receiver in done:
                        return
                    continue  # time to check the session
                alert = getter.result()
                if alert is None:
                    await ws.close(code=status.WS_1013_TRY_AGAIN_LATER,
                                   reason="fell behind; reconnect")
                    return
                if wanted.matches(alert):
                    await ws.send_json(change_message(alert))
    finally:
        receiver.cancel()
        FEED_CLIENTS.labels("websocket").dec()


async def sse_events(feed: Feed, client: Any, query: AlertQuery) -> AsyncIterator[str]:
    """The Server-Sent Events of one client (ends when the client goes away)."""
    FEED_CLIENTS.labels("sse").inc()
    wanted = feed_filter(query)
    try:
        with feed.subscribe() as queue:
            snapshot = await list_alerts(client, replace(query, limit=SNAPSHOT_LIMIT))
            yield sse("snapshot", snapshot_message(snapshot))
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    yield sse("dropped", {"type": "dropped", "detail": "fell behind; reconnect"})
                    return
                if wanted.matches(item):
                    yield sse("change", change_message(item), f"{item.alert_id}:{item.version}")
    finally:
        FEED_CLIENTS.labels("sse").dec()
