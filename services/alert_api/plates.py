"""Licence plates over HTTP (operator role): hotlists and allow lists, sightings search, audit.

==============================================  ============================================
``GET /v1/plates/lists``                        every list: its kind and live entries
``GET /v1/plates/lists/{list}``                 its entries: plate, reason, expiry, who/when
``POST /v1/plates/lists/{list}``                list a plate (201; re-listing replaces)
``DELETE /v1/plates/lists/{list}/{plate}``      delist a plate (204, 404 if not listed)
``GET /v1/plates/sightings?plate=AB12*&...``    where a plate was seen (wildcards, fuzzy)
``GET /v1/plates/audit``                        list changes and searches, newest first
==============================================  ============================================

Plates are personal data (they identify a vehicle's keeper), so every route needs an
operator key, and the stores keep plates under keyed hashes with the clear text sealed
(:mod:`argus.plates.hotlist`, :mod:`argus.plates.sightings`). Every change and every search
is appended to the plates audit stream with the API key's name as the actor; a search is
recorded by the pattern's keyed hash and shape (``AA99*``), and application logs never
carry a plate. Needs ``ARGUS_PLATE_KEY`` (the workers' key): without it every route
answers 503 saying so.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import redis
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from argus.log import get_logger
from argus.plates.hotlist import ListKind, PlateEntry, PlateKeys, PlateListStore, load_plate_key
from argus.plates.patterns import PatternError, PlatePattern
from argus.plates.sightings import Sighting, SightingStore
from argus.plates.text import clean
from argus.settings import Settings
from argus.watchlist.crypto import WatchlistError, WatchlistKeyError
from services.alert_api.deps import ERRORS, Operator
from services.alert_api.models import Problem
from services.alert_api.queries import parse_time

log = get_logger(__name__)

ListId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
                             description="list id (lower case, digits, _ . -)")]


class PlateBackend:
    """The plate stores (one sync Redis client), or why there are none."""

    def __init__(self, settings: Settings) -> None:
        self.client = redis.Redis.from_url(settings.redis_url)
        self.lists: PlateListStore | None = None
        self.sightings: SightingStore | None = None
        try:
            keys = PlateKeys.from_master(load_plate_key())
            self.key_problem = ""
        except WatchlistKeyError as exc:
            self.key_problem = str(exc)
            return
        self.lists = PlateListStore(self.client, keys)
        self.sightings = SightingStore(self.client, keys,
                                       retention_s=settings.plate_sightings_retention_s)

    def stores(self) -> tuple[PlateListStore, SightingStore]:
        """Both stores; 503 naming the missing key when there is none."""
        if self.lists is None or self.sightings is None:
            raise HTTPException(503, f"plate lists and sightings are not available: "
                                     f"{self.key_problem}")
        return self.lists, self.sightings


def _backend(request: Request) -> PlateBackend:
    plates: PlateBackend = request.app.state.plates
    return plates


class PlateList(BaseModel):
    list_id: str
    kind: Literal["hotlist", "allow", "mixed", "empty"]
    entries: int
    by_kind: dict[str, int]


class PlateEntryOut(BaseModel):
    """A listed plate, in clear (operators only)."""

    entry_id: str = Field(description="The plate's keyed hash")
    list_id: str
    kind: ListKind
    plate: str
    reason: str
    created_at: float
    created_by: str
    expires_at: float | None


class PlateEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plate: str = Field(min_length=1, max_length=32,
                       description="Normalised: upper case, only A-Z0-9 kept")
    kind: ListKind = "hotlist"
    reason: str = Field(min_length=1, max_length=500, description="Stored encrypted")
    expires_at: float | None = Field(default=None, gt=0, description="Unix s")
    ttl_s: float | None = Field(default=None, gt=0, description="Or: expires this long from now")

    @model_validator(mode="after")
    def _one_expiry(self) -> PlateEntryIn:
        if self.expires_at is not None and self.ttl_s is not None:
            raise ValueError("give expires_at or ttl_s, not both")
        return self


class SightingList(BaseModel):
    count: int
    truncated: bool = Field(description="The search's decryption cap stopped it before the "
                                        "window's end: narrow since/until or give a site")
    scanned: int = Field(description="Records decrypted")
    sightings: list[Sighting]


router = APIRouter(prefix="/v1/plates", tags=["plates"],
                   responses={**ERRORS, 503: {"model": Problem,
                                              "description": "No plate key (ARGUS_PLATE_KEY)"}})


def routes(settings: Settings) -> APIRouter:
    """The plate routes with their backend (created now, closed with the app)."""
    backend = PlateBackend(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.plates = backend
        try:
            yield
        finally:
            backend.client.close()

    wrapper = APIRouter(lifespan=lifespan)
    wrapper.include_router(router)
    return wrapper


def _entry_out(entry: PlateEntry, plate: str, reason: str) -> PlateEntryOut:
    fields = entry.model_dump(exclude={"key_id"})
    return PlateEntryOut.model_validate({**fields, "plate": plate, "reason": reason})


@router.get("/lists", response_model=list[PlateList])
async def lists_route(request: Request, principal: Operator) -> list[PlateList]:
    """Every list with its live entries (a list holds one kind; ``mixed`` if not)."""
    lists, _ = _backend(request).stores()
    counts = await run_in_threadpool(lists.lists)
    return [PlateList.model_validate({
        "list_id": list_id, "entries": sum(by_kind.values()), "by_kind": by_kind,
        "kind": "empty" if not by_kind else next(iter(by_kind)) if len(by_kind) == 1
        else "mixed"}) for list_id, by_kind in counts.items()]


@router.get("/lists/{list_id}", response_model=list[PlateEntryOut])
async def entries_route(request: Request, list_id: ListId,
                        principal: Operator) -> list[PlateEntryOut]:
    """The live entries of a list, sorted by plate (an unknown list has none)."""
    lists, _ = _backend(request).stores()
    entries = await run_in_threadpool(lists.show, list_id)
    return [_entry_out(entry, plate, reason) for entry, plate, reason in entries]


@router.post("/lists/{list_id}", response_model=PlateEntryOut, status_code=201,
             responses={409: {"model": Problem}, 422: {"model": Problem}})
async def add_route(request: Request, list_id: ListId, body: PlateEntryIn,
                    principal: Operator) -> PlateEntryOut:
    """List a plate with a reason and an optional expiry; listing a plate again replaces
    its entry. A list holds one kind: adding an allow entry to a hotlist is refused (409)."""
    lists, _ = _backend(request).stores()
    kinds = await run_in_threadpool(lists.counts, list_id)
    if kinds and body.kind not in kinds:
        raise HTTPException(409, f"list {list_id!r} is a {'/'.join(sorted(kinds))} list, "
                                 f"not {body.kind}: use another list")
    expires = time.time() + body.ttl_s if body.ttl_s is not None else body.expires_at
    try:
        entry = await run_in_threadpool(lists.add, list_id, body.kind, body.plate, body.reason,
                                        principal.name, expires)
    except WatchlistError as exc:
        raise HTTPException(422, str(exc)) from None
    log.info("plates.api.add", extra={"actor": principal.name, "list_id": list_id,
                                      "entry_id": entry.entry_id})
    return _entry_out(entry, clean(body.plate), body.reason)


@router.delete("/lists/{list_id}/{plate}", status_code=204,
               responses={404: {"model": Problem}, 422: {"model": Problem}})
async def remove_route(request: Request, list_id: ListId, plate: str,
                       principal: Operator) -> Response:
    """Delist a plate (given as listed or as read: it is normalised first)."""
    lists, _ = _backend(request).stores()
    text = clean(plate)
    if not 2 <= len(text) <= 12:
        raise HTTPException(422, f"a plate has 2-12 characters A-Z0-9, got {len(text)}")
    if not await run_in_threadpool(lists.remove, list_id, text, principal.name):
        raise HTTPException(404, f"that plate is not on list {list_id!r}")
    log.info("plates.api.remove", extra={"actor": principal.name, "list_id": list_id,
                                         "entry_id": lists.keys.tag(text)})
    return Response(status_code=204)


def _time(name: str, text: str | None) -> float | None:
    try:
        return None if text is None else parse_time(text)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


@router.get("/sightings", response_model=SightingList, responses={422: {"model": Problem}})
async def sightings_route(
        request: Request, principal: Operator,
        plate: Annotated[str, Query(max_length=32, description=(
            "A plate, or a pattern: * any run, ? one character (at least 2 plate "
            "characters)"))],
        since: Annotated[str | None, Query(description="Unix s or ISO 8601")] = None,
        until: Annotated[str | None, Query(description="Unix s or ISO 8601")] = None,
        site: str | None = None,
        fuzzy: Annotated[bool, Query(description=(
            "Also one edit away, or differing only by OCR confusions (0/O, 1/I, 8/B, 5/S)"
        ))] = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> SightingList:
    """Where and when a plate was seen, newest first: time, camera, site, position, the
    read, the vehicle, the snapshot ref and the lists it was on. Plates are personal data:
    operator keys only, and every search is audited (the pattern's keyed hash, never the
    plate). A wildcard search decrypts the window's records (at most a cap: ``truncated``)."""
    _, sightings = _backend(request).stores()
    try:
        pattern = PlatePattern.parse(plate)
    except PatternError as exc:
        raise HTTPException(422, f"plate: {exc}") from None
    begin, end = _time("since", since), _time("until", until)
    result = await run_in_threadpool(lambda: sightings.query(
        pattern.text, begin, end, site, fuzzy, limit, principal.name))
    log.info("plates.api.search", extra={"actor": principal.name, "shape": pattern.shape,
                                         "fuzzy": fuzzy, "site": site,
                                         "results": len(result.sightings),
                                         "scanned": result.scanned})
    return SightingList(count=len(result.sightings), truncated=result.truncated,
                        scanned=result.scanned, sightings=result.sightings)


@router.get("/audit", response_model=list[dict[str, str]])
async def audit_route(request: Request, principal: Operator,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100
                      ) -> list[dict[str, str]]:
    """List changes (``plate.add``, ``plate.remove``) and searches (``sightings.search``),
    newest first: ts, actor (the API key's name), and keyed hashes, never a plate."""
    _, sightings = _backend(request).stores()
    return await run_in_threadpool(sightings.audit, limit)
