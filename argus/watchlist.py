"""Face watchlists: encrypted enrollment in Redis, audit log, in-memory matching index.

Privacy properties (tests in ``tests/*/test_watchlist*.py``):

* embeddings (and names) are sealed with AES-256-GCM before they reach Redis, with the
  record's id as associated data (a ciphertext cannot be moved to another record); the key
  comes from ``ARGUS_FACE_KEY`` (base64 of 16/24/32 bytes) and is never logged;
* removal deletes every key of the entry and publishes an invalidation on
  ``<prefix>wl:changes`` that every :class:`WatchlistFollower` applies within a second;
* every change is appended to the audit stream ``<prefix>audit`` (who, when, what; never
  a name or an embedding);
* an entry may expire (``expires_at``): Redis deletes it and the index stops matching it.

Redis layout (``prefix`` = ``argus:``): ``wl:list:<list>`` hash (threshold, category,
description) and set ``wl:lists``; ``wl:person:<id>`` hash (metadata, ``name`` and ``emb``
sealed) and set ``wl:persons``; ``wl:ref:<list>`` hash reference → id; counter ``wl:version``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field
from redis.typing import EncodableT, FieldT

from argus.log import get_logger

log = get_logger(__name__)

KEY_ENV = "ARGUS_FACE_KEY"
DEFAULT_THRESHOLD = 0.79
"""Cosine threshold of a new list: the FAR = 0.1 % point of FaceNet on the deepface pairs
(docs/faces.md). A watchlist compares every face with every entry, so its false alarms grow
with the number of entries: it needs a stricter point than 1:1 verification (FAR 1 %: 0.62)."""
SEAL_VERSION = b"\x01"
EMBEDDING_DIM = 512


class WatchlistError(Exception):
    """A watchlist operation that cannot be done (the message says why)."""


class WatchlistKeyError(WatchlistError):
    """The encryption key is missing, malformed or not the one the data was sealed with."""


# --- encryption ------------------------------------------------------------------------------

def load_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The AES key from ``ARGUS_FACE_KEY`` (base64 of 16, 24 or 32 bytes)."""
    text = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    if not text:
        raise WatchlistKeyError(
            f"{KEY_ENV} is not set: generate one with `python -c \"import base64, os; "
            f"print(base64.b64encode(os.urandom(32)).decode())\"` and keep it secret")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WatchlistKeyError(f"{KEY_ENV} is not valid base64") from None
    if len(key) not in (16, 24, 32):
        raise WatchlistKeyError(f"{KEY_ENV} must decode to 16, 24 or 32 bytes, got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key (to tell which key sealed a record)."""
    return hashlib.sha256(b"argus-face-key:" + key).hexdigest()[:12]


def seal(key: bytes, aad: str, plaintext: bytes) -> bytes:
    """AES-GCM: version byte + 12-byte random nonce + ciphertext and tag."""
    nonce = os.urandom(12)
    return SEAL_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def unseal(key: bytes, aad: str, blob: bytes) -> bytes:
    """Inverse of :func:`seal`; :class:`WatchlistKeyError` for a wrong key or tampered data."""
    if len(blob) < 29 or blob[:1] != SEAL_VERSION:
        raise WatchlistKeyError("not a sealed watchlist record")
    try:
        return AESGCM(key).decrypt(blob[1:13], blob[13:], aad.encode())
    except InvalidTag:
        raise WatchlistKeyError(
            "cannot decrypt the record: wrong ARGUS_FACE_KEY or tampered data") from None


def seal_embeddings(key: bytes, person_id: str, embeddings: npt.ArrayLike) -> bytes:
    """Seal an (N, 512) float32 matrix bound to ``person_id``."""
    matrix = np.ascontiguousarray(np.asarray(embeddings, dtype="<f4").reshape(-1, EMBEDDING_DIM))
    return seal(key, f"emb:{person_id}", matrix.tobytes())


def unseal_embeddings(key: bytes, person_id: str, blob: bytes) -> npt.NDArray[np.float32]:
    raw = unseal(key, f"emb:{person_id}", blob)
    return np.frombuffer(raw, dtype="<f4").reshape(-1, EMBEDDING_DIM).astype(np.float32)


# --- records ---------------------------------------------------------------------------------

class WatchList(BaseModel):
    """A list with its own calibrated threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    list_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    threshold: float = Field(default=DEFAULT_THRESHOLD, ge=-1.0, le=1.0)
    category: str = "watch"
    description: str = ""


class Person(BaseModel):
    """An enrolled entry (metadata only; the name and embeddings stay sealed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person_id: str
    list_id: str
    reference: str = Field(min_length=1, max_length=128)
    category: str
    photos: int = Field(ge=1)
    created_at: float
    updated_at: float
    created_by: str
    expires_at: float | None = None
    key_id: str


@dataclass(frozen=True)
class Match:
    """The best watchlist entry for one face."""

    person: Person
    similarity: float
    threshold: float


# --- the in-memory index ---------------------------------------------------------------------

@dataclass
class WatchlistIndex:
    """Every enrolled embedding as one matrix; thread-safe (the follower updates it)."""

    persons: dict[str, Person] = field(default_factory=dict)
    embeddings: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    version: int = 0
    _matrix: npt.NDArray[np.float32] | None = None
    _owners: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return len(self.persons)

    def put(self, person: Person, embeddings: npt.ArrayLike) -> None:
        with self._lock:
            self.persons[person.person_id] = person
            self.embeddings[person.person_id] = np.asarray(embeddings, np.float32).reshape(
                -1, EMBEDDING_DIM)
            self._matrix = None

    def drop(self, person_id: str) -> bool:
        with self._lock:
            self.embeddings.pop(person_id, None)
            self._matrix = None
            return self.persons.pop(person_id, None) is not None

    def replace(self, other: WatchlistIndex) -> None:
        """Take every entry, threshold and the version of ``other`` (a full reload)."""
        with self._lock:
            self.persons, self.embeddings = dict(other.persons), dict(other.embeddings)
            self.thresholds, self.version = dict(other.thresholds), other.version
            self._matrix = None

    def _rows(self) -> tuple[npt.NDArray[np.float32], list[str]]:
        if self._matrix is None:
            owners = [pid for pid, e in self.embeddings.items() for _ in range(len(e))]
            self._matrix = (np.concatenate(list(self.embeddings.values()))
                            if owners else np.zeros((0, EMBEDDING_DIM), np.float32))
            self._owners = owners
        return self._matrix, self._owners

    def match(self, probes: npt.ArrayLike, now: float | None = None) -> list[Match | None]:
        """For each unit probe, the entry with the highest similarity (max over its photos)
        at or above its list's threshold, else None. Expired entries never match."""
        queries = np.asarray(probes, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        now = time.time() if now is None else now
        with self._lock:
            matrix, owners = self._rows()
            if not owners:
                return [None] * len(queries)
            sims = queries @ matrix.T
            floor = min([DEFAULT_THRESHOLD, *self.thresholds.values()])
            out: list[Match | None] = []
            for row in sims:
                best: Match | None = None
                candidates = np.flatnonzero(row >= floor)
                for col in candidates[np.argsort(-row[candidates], kind="stable")]:
                    person = self.persons[owners[col]]
                    threshold = self.thresholds.get(person.list_id, DEFAULT_THRESHOLD)
                    if row[col] >= threshold and (person.expires_at is None
                                                  or person.expires_at > now):
                        best = Match(person, float(row[col]), threshold)
                        break
                out.append(best)
            return out


# --- Redis store -----------------------------------------------------------------------------

def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


class WatchlistStore:
    """Watchlists in Redis (sync client). ``key`` is needed to enroll, read names and load the
    index; listing metadata and removal work without it."""

    def __init__(self, client: redis.Redis, key: bytes | None = None,
                 prefix: str = "argus:") -> None:
        self.redis, self.key, self.prefix = client, key, prefix
        self.channel = f"{prefix}wl:changes"
        self.audit_stream = f"{prefix}audit:watchlist"  # apart from the alert audit log

    def _k(self, *parts: str) -> str:
        return self.prefix + "wl:" + ":".join(parts)

    def _key(self) -> bytes:
        if self.key is None:
            raise WatchlistKeyError(f"this operation needs the encryption key ({KEY_ENV})")
        return self.key

    def _commit(self, pipe: Any, op: str, ident: str, actor: str, action: str,
                **detail: str) -> None:
        """Bump the version, append the audit entry, run the transaction, announce it."""
        pipe.incr(self._k("version"))
        pipe.xadd(self.audit_stream, {"ts": f"{time.time():.3f}", "actor": actor,
                                      "action": action, **detail})
        version = int(pipe.execute()[-2])
        self.redis.publish(self.channel, json.dumps({"op": op, "id": ident, "version": version}))
        log.info("watchlist.changed", extra={"action": action, "actor": actor, **detail})

    # lists
    def set_list(self, watchlist: WatchList, actor: str) -> WatchList:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._k("list", watchlist.list_id), mapping={
            "threshold": repr(watchlist.threshold), "category": watchlist.category,
            "description": watchlist.description})
        pipe.sadd(self._k("lists"), watchlist.list_id)
        self._commit(pipe, "list", watchlist.list_id, actor, "list.set",
                     list_id=watchlist.list_id, threshold=f"{watchlist.threshold:.4f}")
        return watchlist

    def get_list(self, list_id: str) -> WatchList | None:
        raw = self.redis.hgetall(self._k("list", list_id))
        if not raw:
            return None
        d = {_text(k): _text(v) for k, v in raw.items()}
        return WatchList(list_id=list_id, threshold=float(d["threshold"]),
                         category=d.get("category", "watch"), description=d.get("description", ""))

    def lists(self) -> list[WatchList]:
        ids = sorted(_text(m) for m in self.redis.smembers(self._k("lists")))
        return [wl for wl in (self.get_list(i) for i in ids) if wl is not None]

    # persons
    def enroll(self, list_id: str, reference: str, name: str, embeddings: npt.ArrayLike,
               actor: str, category: str | None = None,
               expires_at: float | None = None) -> Person:
        """Enroll a person from unit embeddings (one per accepted photo)."""
        key = self._key()
        matrix = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        if len(matrix) == 0:
            raise WatchlistError("no usable photo: nothing to enroll")
        watchlist = self.get_list(list_id) or self.set_list(WatchList(list_id=list_id), actor)
        person_id = uuid.uuid4().hex[:16]
        if not self.redis.hsetnx(self._k("ref", list_id), reference, person_id):
            raise WatchlistError(f"reference {reference!r} is already on list {list_id!r}: "
                                 "update or remove that entry")
        now = time.time()
        person = Person(person_id=person_id, list_id=list_id, reference=reference,
                        category=category or watchlist.category, photos=len(matrix),
                        created_at=now, updated_at=now, created_by=actor,
                        expires_at=expires_at, key_id=key_id(key))
        try:
            self._write(person, name, matrix, "person.enroll", actor)
        except BaseException:
            self.redis.hdel(self._k("ref", list_id), reference)
            raise
        return person

    def _write(self, person: Person, name: str | None, matrix: npt.NDArray[np.float32] | None,
               action: str, actor: str) -> None:
        key = self._key()
        pkey = self._k("person", person.person_id)
        fields: dict[FieldT, EncodableT] = {"meta": person.model_dump_json()}
        if name is not None:
            fields["name"] = seal(key, f"name:{person.person_id}", name.encode())
        if matrix is not None:
            fields["emb"] = seal_embeddings(key, person.person_id, matrix)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(pkey, mapping=fields)
        pipe.sadd(self._k("persons"), person.person_id)
        if person.expires_at is not None:
            pipe.expireat(pkey, int(person.expires_at) + 1)
        else:
            pipe.persist(pkey)
        self._commit(pipe, "put", person.person_id, actor, action, list_id=person.list_id,
                     person_id=person.person_id, reference=person.reference,
                     photos=str(person.photos))

    def update(self, person_id: str, actor: str, *, name: str | None = None,
               category: str | None = None, embeddings: npt.ArrayLike | None = None,
               add_embeddings: npt.ArrayLike | None = None,
               expires_at: float | None = None) -> Person:
        """Change an entry: new name/category/expiry, replace or add embeddings."""
        person = self.get(person_id)
        if person is None:
            raise WatchlistError(f"no watchlist entry {person_id!r}")
        matrix = None
        if embeddings is not None:
            matrix = np.asarray(embeddings, np.float32).reshape(-1, EMBEDDING_DIM)
        if add_embeddings is not None:
            base = self.embeddings(person_id) if matrix is None else matrix
            matrix = np.concatenate([base, np.asarray(add_embeddings, np.float32).reshape(
                -1, EMBEDDING_DIM)])
        if matrix is not None and len(matrix) == 0:
            raise WatchlistError("an entry needs at least one embedding: remove it instead")
        changes: dict[str, Any] = {"updated_at": time.time()}
        if category is not None:
            changes["category"] = category
        if expires_at is not None:
            changes["expires_at"] = expires_at
        if matrix is not None:
            changes["photos"] = len(matrix)
            changes["key_id"] = key_id(self._key())
        updated = person.model_copy(update=changes)
        self._write(updated, name, matrix, "person.update", actor)
        return updated

    def remove(self, person_id: str, actor: str) -> bool:
        """Delete the entry everywhere (hash, sets, reference) and invalidate the indexes."""
        person = self.get(person_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._k("person", person_id))
        pipe.srem(self._k("persons"), person_id)
        if person is not None:
            pipe.hdel(self._k("ref", person.list_id), person.reference)
        self._commit(pipe, "drop", person_id, actor, "person.remove", person_id=person_id,
                     list_id=person.list_id if person else "", found=str(person is not None))
        return person is not None

    def get(self, person_id: str) -> Person | None:
        meta = self.redis.hget(self._k("person", person_id), "meta")
        if meta is None:  # removed or expired: tidy the set
            self.redis.srem(self._k("persons"), person_id)
            return None
        return Person.model_validate_json(meta)

    def find(self, list_id: str, reference: str) -> Person | None:
        pid = self.redis.hget(self._k("ref", list_id), reference)
        return None if pid is None else self.get(_text(pid))

    def name(self, person_id: str) -> str:
        blob = self.redis.hget(self._k("person", person_id), "name")
        if blob is None:
            raise WatchlistError(f"no watchlist entry {person_id!r}")
        return unseal(self._key(), f"name:{person_id}", _raw(blob)).decode()

    def embeddings(self, person_id: str) -> npt.NDArray[np.float32]:
        blob = self.redis.hget(self._k("person", person_id), "emb")
        if blob is None:
            raise WatchlistError(f"no watchlist entry {person_id!r}")
        return unseal_embeddings(self._key(), person_id, _raw(blob))

    def persons(self, list_id: str | None = None) -> list[Person]:
        ids = sorted(_text(m) for m in self.redis.smembers(self._k("persons")))
        found = [p for p in (self.get(i) for i in ids) if p is not None]
        return [p for p in found if list_id is None or p.list_id == list_id]

    def version(self) -> int:
        return int(self.redis.get(self._k("version")) or 0)

    def load_index(self) -> WatchlistIndex:
        """Every live entry decrypted into a fresh index (thresholds of every list)."""
        self._key()
        index = WatchlistIndex(version=self.version())
        index.thresholds = {wl.list_id: wl.threshold for wl in self.lists()}
        for person in self.persons():
            try:
                index.put(person, self.embeddings(person.person_id))
            except WatchlistKeyError:  # sealed with another key: say so, keep the others
                log.error("watchlist.undecryptable", extra={
                    "person_id": person.person_id, "sealed_with": person.key_id,
                    "key_id": key_id(self._key())})
            except WatchlistError:  # removed or expired meanwhile
                continue
        return index
