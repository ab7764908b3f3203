"""Console sessions: an API key exchanged once for an HttpOnly cookie.

``POST /v1/session`` with ``{"api_key": "..."}`` checks the key and sets the cookie
``argus_session`` (HttpOnly, SameSite=Strict, Secure over HTTPS, path ``/``); the browser
then sends it with every request, the live feed's WebSocket and ``<img>`` loads, so the
key never appears in a URL, a log or page script after sign-in. ``GET /v1/session`` says
who is signed in, ``DELETE /v1/session`` signs out.

Redis keeps ``argus:console:session:<SHA-256 of the token>`` = the SHA-256 digest of the
API key (never the key or the token), expiring after ``session_ttl_s``; each request
looks the key up again, so removing a key from the configuration ends its sessions.

A cookie is sent by the browser whatever page made the request, so requests that change
something (any method but GET/HEAD/OPTIONS) authenticated by the cookie must also carry
``X-Requested-With: argus-console`` — a header another site's page cannot add without a
CORS preflight this API never grants — and a WebSocket authenticated by the cookie must
come from the same origin.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from fastapi import HTTPException, Request, WebSocket

from services.alert_api.auth import KeyRing, Principal

COOKIE = "argus_session"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "argus-console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PREFIX = "argus:console:session:"


def session_key(token: str) -> str:
    """The Redis key of a session token (its SHA-256: Redis never holds the token).

    >>> session_key("t").startswith("argus:console:session:")
    True
    """
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


async def create(client: aioredis.Redis, digest: str, ttl_s: int) -> str:
    """A new session for the key with ``digest``; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    await client.set(session_key(token), digest, ex=ttl_s)
    return token


async def delete(client: aioredis.Redis, token: str) -> None:
    await client.delete(session_key(token))


async def principal_of(client: aioredis.Redis, keys: KeyRing, token: str | None
                       ) -> Principal | None:
    """The principal of a session token, or None (no, unknown or expired session, or a
    key no longer configured)."""
    if not token or len(token) > 200:
        return None
    digest = await client.get(session_key(token))
    text = digest.decode() if isinstance(digest, bytes) else digest
    return keys.lookup_digest(text)


async def request_principal(request: Request) -> Principal | None:
    """The principal of the request's session cookie; 403 for a state-changing request
    without the console's ``X-Requested-With`` header."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    principal = await principal_of(request.app.state.runtime.redis, request.app.state.keys,
                                   token)
    if principal is not None and request.method not in SAFE_METHODS \
            and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise HTTPException(403, f"a request signed in by cookie must send "
                                 f"X-Requested-With: {CSRF_VALUE}")
    return principal


def same_origin(websocket: WebSocket) -> bool:
    """Whether a WebSocket's ``Origin`` is the host it connected to (browsers always send
    it; a page of another site would connect with its own)."""
    origin = websocket.headers.get("origin", "")
    host = websocket.headers.get("host", "")
    return bool(host) and origin.split("://", 1)[-1] == host


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    """The principal of a WebSocket's session cookie (same origin only), or None."""
    token = websocket.cookies.get(COOKIE)
    if not token or not same_origin(websocket):
        return None
    return await principal_of(websocket.app.state.runtime.redis, websocket.app.state.keys,
                              token)


def websocket_session_check(websocket: WebSocket) -> Callable[[], Awaitable[bool]]:
    """Whether the WebSocket's session is still valid (not expired, not signed out, its
    key still configured), asked again while the live feed runs."""
    token = websocket.cookies.get(COOKIE)

    async def still_valid() -> bool:
        return await principal_of(websocket.app.state.runtime.redis,
                                  websocket.app.state.keys, token) is not None
    return still_valid
