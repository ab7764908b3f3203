"""Face watchlists over HTTP (operator role): enroll, list, update, remove, audit.

==============================================================  ==============================
``GET /v1/watchlists``                                           lists with their entry counts
``PUT /v1/watchlists/{list}``                                    create/change a list
``GET /v1/watchlists/{list}/entries``                            entries (``?names=true``)
``POST /v1/watchlists/{list}/entries``                           enroll from photos (201)
``GET|PATCH|DELETE /v1/watchlists/{list}/entries/{reference}``   one entry; change; remove
``GET /v1/watchlists/audit``                                     the watchlist audit log
==============================================================  ==============================

Photos come as multipart files (``photos``; ``add_photos``/``replace_photos`` on PATCH) or
as base64 strings in a JSON body. They are embedded by Triton's ``faces`` model with the
same code as ``argus watchlist`` (:mod:`argus.watchlist.photos`); a photo with no face or
several faces is refused with a 422 that names it, and nothing changes unless every photo is
accepted (``allow_partial``). Changes go through :class:`argus.watchlist.store.WatchlistStore`:
sealed in Redis, audited with the API key's name as the actor, and published so every
worker's index follows within a second. Responses never carry an embedding; names only on
request. Needs ``ARGUS_FACE_KEY`` (same key as the workers) for anything that seals.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any, TypeVar

import numpy as np
import redis
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from tritonclient.grpc import InferenceServerException

from argus.inference.faces import TritonFaces
from argus.log import get_logger
from argus.settings import Settings
from argus.watchlist.photos import Embedding, embed_photos
from argus.watchlist.store import (
    Person,
    WatchList,
    WatchlistConflict,
    WatchlistError,
    WatchlistKeyError,
    WatchlistStore,
    load_key,
)
from services.alert_api.config import ApiConfig
from services.alert_api.deps import ERRORS, Operator
from services.alert_api.models import Problem

log = get_logger(__name__)

MAX_PHOTOS = 10
ListId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="list id")]
Photos = list[tuple[str, bytes]]
M = TypeVar("M", bound=BaseModel)


class FaceBackend:
    """What the face routes share: the watchlist store, the key, the ``faces`` client."""

    def __init__(self, settings: Settings, config: ApiConfig) -> None:
        self.settings = settings
        self.audit_retention_s = config.audit_retention_s
        try:
            self.key: bytes | None = load_key()
            self.key_problem = ""
        except WatchlistKeyError as exc:
            self.key, self.key_problem = None, str(exc)
        self.store = WatchlistStore(redis.Redis.from_url(settings.redis_url), self.key)
        self._faces: TritonFaces | None = None

    def faces(self) -> TritonFaces:
        """The ``faces`` model client (created on the server's loop at first use)."""
        if self._faces is None:
            self._faces = TritonFaces(self.settings.triton_grpc_url, timeout_s=60.0)
        return self._faces

    def need_key(self) -> None:
        if self.key is None:
            raise HTTPException(503, f"watchlists are not available: {self.key_problem}")

    async def close(self) -> None:
        if self._faces is not None:
            await self._faces.close()
        self.store.redis.close()


def backend(request: Request) -> FaceBackend:
    faces: FaceBackend = request.app.state.faces
    return faces


class EntryMeta(BaseModel):
    """The fields of an enrollment besides its photos."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=128,
                           description="The operator's reference (case number); unique per list")
    name: str = Field(min_length=1, max_length=200, description="Stored encrypted")
    category: str | None = Field(default=None, max_length=64,
                                 description="e.g. wanted, missing, banned (default: the list's)")
    expires_days: float | None = Field(default=None, gt=0, description="Retention")
    allow_partial: bool = Field(
        default=False, description="Enroll with the accepted photos even if some are refused")


class UpdateMeta(BaseModel):
    """The fields of a change besides its photos (absent: unchanged)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=64)
    expires_days: float | None = Field(default=None, gt=0)
    allow_partial: bool = False


class ListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(default=None, ge=-1.0, le=1.0,
                                    description="Cosine similarity to match (calibrated)")
    category: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=500)


class ListOut(WatchList):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entries: int


class EntryOut(Person):
    """An entry: metadata only (never an embedding); the name only when asked for."""

    name: str | None = None


def _decode_photo(label: str, text: str) -> bytes:
    """A base64 photo (a ``data:`` URL is accepted); 422 naming it when it is not base64."""
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{label}: not valid base64") from None


async def read_request(request: Request, model: type[M], photo_fields: tuple[str, ...]
                       ) -> tuple[M, dict[str, Photos]]:
    """The body as ``model`` plus its photos, from JSON (base64) or multipart (files)."""
    photos: dict[str, Photos] = {f: [] for f in photo_fields}
    fields: dict[str, Any]
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=2 * MAX_PHOTOS, max_fields=50)
        fields = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields[key] = value
            elif key in photos:
                photos[key].append((value.filename or f"{key}[{len(photos[key])}]",
                                    await value.read()))
            else:
                raise HTTPException(422, f"unexpected file field {key!r}")
    else:
        try:
            fields = dict(await request.json())
        except (ValueError, TypeError):
            raise HTTPException(422, "the body must be JSON or multipart/form-data") from None
        for key in photo_fields:
            items = fields.pop(key, None) or []
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise HTTPException(422, f"{key}: a list of base64 strings")
            photos[key] = [(f"{key}[{i}]", _decode_photo(f"{key}[{i}]", t))
                           for i, t in enumerate(items)]
    if any(len(p) > MAX_PHOTOS for p in photos.values()):
        raise HTTPException(422, f"at most {MAX_PHOTOS} photos per request")
    try:
        return model.model_validate(fields), photos
    except ValidationError as exc:
        raise HTTPException(422, "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


async def embed(faces: FaceBackend, photos: Photos, allow_partial: bool) -> list[Embedding]:
    """The accepted photos' embeddings; 422 listing every refused photo, 503 without Triton."""
    try:
        accepted, refused = await embed_photos(photos, faces.faces())
    except InferenceServerException as exc:
        log.error("watchlist.triton", extra={"error": str(exc)})
        raise HTTPException(503, "the face model is not reachable; try again") from None
    if refused and not (allow_partial and accepted):
        raise HTTPException(422, f"{len(refused)} of {len(photos)} photo(s) refused, nothing "
                                 "changed: " + "; ".join(refused))
    return accepted


async def _entry(faces: FaceBackend, list_id: str, reference: str) -> Person:
    person = await run_in_threadpool(faces.store.find, list_id, reference)
    if person is None:
        raise HTTPException(404, f"no entry {reference!r} on list {list_id!r}")
    return person


async def _out(faces: FaceBackend, person: Person, names: bool) -> EntryOut:
    name = await run_in_threadpool(faces.store.name, person.person_id) if names else None
    return EntryOut(**person.model_dump(), name=name)


def _expires(days: float | None) -> float | None:
    return None if days is None else time.time() + days * 86400


router = APIRouter(prefix="/v1/watchlists", tags=["watchlists"],
                   responses={**ERRORS, 503: {"model": Problem,
                                              "description": "No watchlist key, or no Triton"}})
PHOTO_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": (
        "the fields below plus photos as base64 strings")}},
    "multipart/form-data": {"schema": {"type": "object", "description": (
        "the fields below as form fields plus photo files")}}}}}


@router.get("", response_model=list[ListOut])
async def lists_route(request: Request, principal: Operator) -> list[ListOut]:
    store = backend(request).store

    def read() -> list[ListOut]:
        counts: dict[str, int] = {}
        for person in store.persons():
            counts[person.list_id] = counts.get(person.list_id, 0) + 1
        return [ListOut(**wl.model_dump(), entries=counts.get(wl.list_id, 0))
                for wl in store.lists()]

    return await run_in_threadpool(read)


@router.get("/audit", response_model=list[dict[str, str]])
async def audit_route(request: Request, principal: Operator,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100
                      ) -> list[dict[str, str]]:
    """Watchlist changes, newest first: ts, actor (the API key's name), action, list, entry."""
    return await run_in_threadpool(backend(request).store.audit, limit)


@router.put("/{list_id}", response_model=WatchList)
async def set_list_route(request: Request, list_id: ListId, body: ListBody,
                         principal: Operator) -> WatchList:
    store = backend(request).store
    old = await run_in_threadpool(store.get_list, list_id)
    base = old or WatchList(list_id=list_id)
    changed = base.model_copy(update=body.model_dump(exclude_none=True))
    return await run_in_threadpool(store.set_list, WatchList.model_validate(
        changed.model_dump()), principal.name)


@router.get("/{list_id}/entries", response_model=list[EntryOut])
async def entries_route(request: Request, list_id: ListId, principal: Operator,
                        names: bool = False) -> list[EntryOut]:
    faces = backend(request)
    if names:
        faces.need_key()
    persons = await run_in_threadpool(faces.store.persons, list_id)
    return [await _out(faces, p, names) for p in persons]


@router.post("/{list_id}/entries", response_model=EntryOut, status_code=201,
             openapi_extra=PHOTO_BODY, responses={409: {"model": Problem},
                                                  422: {"model": Problem}})
async def enroll_route(request: Request, list_id: ListId, principal: Operator) -> EntryOut:
    """Enroll a person from one or more photos (fields: reference, name, category,
    expires_days, allow_partial; photos: ``photos``)."""
    faces = backend(request)
    faces.need_key()
    meta, photos = await read_request(request, EntryMeta, ("photos",))
    if not photos["photos"]:
        raise HTTPException(422, "photos: at least one photo of the person")
    if await run_in_threadpool(faces.store.find, list_id, meta.reference) is not None:
        raise HTTPException(409, f"reference {meta.reference!r} is already on list "
                                 f"{list_id!r}: change or remove that entry")
    accepted = await embed(faces, photos["photos"], meta.allow_partial)
    try:
        person = await run_in_threadpool(
            lambda: faces.store.enroll(list_id, meta.reference, meta.name, np.stack(accepted),
                                       principal.name, category=meta.category,
                                       expires_at=_expires(meta.expires_days)))
    except WatchlistConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except WatchlistError as exc:
        raise HTTPException(422, str(exc)) from None
    log.info("watchlist.api.enroll", extra={"actor": principal.name, "list_id": list_id,
                                            "person_id": person.person_id})
    return EntryOut(**person.model_dump())


@router.get("/{list_id}/entries/{reference}", response_model=EntryOut,
            responses={404: {"model": Problem}})
async def entry_route(request: Request, list_id: ListId, reference: str, principal: Operator,
                      names: bool = False) -> EntryOut:
    faces = backend(request)
    if names:
        faces.need_key()
    return await _out(faces, await _entry(faces, list_id, reference), names)


@router.patch("/{list_id}/entries/{reference}", response_model=EntryOut,
              openapi_extra=PHOTO_BODY, responses={404: {"model": Problem},
                                                   422: {"model": Problem}})
async def update_route(request: Request, list_id: ListId, reference: str,
                       principal: Operator) -> EntryOut:
    """Change an entry (fields: name, category, expires_days, allow_partial; photos:
    ``add_photos``, ``replace_photos``)."""
    faces = backend(request)
    faces.need_key()
    person = await _entry(faces, list_id, reference)
    meta, photos = await read_request(request, UpdateMeta, ("add_photos", "replace_photos"))
    add = await embed(faces, photos["add_photos"], meta.allow_partial) \
        if photos["add_photos"] else None
    replace = await embed(faces, photos["replace_photos"], meta.allow_partial) \
        if photos["replace_photos"] else None
    try:
        updated = await run_in_threadpool(lambda: faces.store.update(
            person.person_id, principal.name, name=meta.name, category=meta.category,
            embeddings=None if replace is None else np.stack(replace),
            add_embeddings=None if add is None else np.stack(add),
            expires_at=_expires(meta.expires_days)))
    except WatchlistError as exc:
        raise HTTPException(422, str(exc)) from None
    return EntryOut(**updated.model_dump())


@router.delete("/{list_id}/entries/{reference}", status_code=204,
               responses={404: {"model": Problem}})
async def remove_route(request: Request, list_id: ListId, reference: str,
                       principal: Operator) -> Response:
    """Remove an entry everywhere: Redis, and every worker's index within a second."""
    faces = backend(request)
    person = await _entry(faces, list_id, reference)
    await run_in_threadpool(faces.store.remove, person.person_id, principal.name)
    log.info("watchlist.api.remove", extra={"actor": principal.name, "list_id": list_id,
                                            "person_id": person.person_id})
    return Response(status_code=204)
