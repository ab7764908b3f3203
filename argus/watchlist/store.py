"""Face watchlists: encrypted enrollment in Redis, audit log (the store).

Privacy properties (tests in ``tests/*/test_watchlist*.py``):

* embeddings (and names) are sealed with AES-256-GCM before they reach Redis, with the
  record's id as associated data (a ciphertext cannot be moved to another record); the key
  comes from ``ARGUS_FACE_KEY`` (base64 of 16/24/32 bytes) and is never logged
  (:mod:`argus.watchlist.crypto`);
* removal deletes every key of the entry and publishes an invalidation on
  ``<prefix>wl:changes`` that every :class:`~argus.watchlist.index.WatchlistFollower`
  applies within a second;
* every change is appended to the audit stream ``<prefix>audit:watchlist`` (who, when,
  what; never a name or an embedding);
* an entry may expire (``expires_at``): Redis deletes it and the index stops matching it.

Redis layout (``prefix`` = ``argus:``): ``wl:list:<list>`` hash (threshold, category,
description) and set ``wl:lists``; ``wl:person:<id>`` hash (metadata, ``name`` and ``emb``
sealed) and set ``wl:persons``; ``wl:ref:<list>`` hash reference → id; counter ``wl:version``.

The records and the match index live in :mod:`argus.watchlist.index`, the sealing in
:mod:`argus.watchlist.crypto`; their public names are re-exported here.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np
import numpy.typing as npt
import redis
from redis.typing import EncodableT, FieldT

from argus.log import get_logger
from argus.watchlist.crypto import (
    EMBEDDING_DIM,
    KEY_ENV,
    SEAL_VERSION,
    WatchlistConflict,
    WatchlistError,
    WatchlistKeyError,
    key_id,
    load_key,
    seal,
    seal_embeddings,
    unseal,
    unseal_embeddings,
)
from argus.watchlist.index import (
    DEFAULT_THRESHOLD,
    Match,
    Person,
    WatchList,
    WatchlistFollower,
    WatchlistIndex,
)

__all__ = [
    "DEFAULT_THRESHOLD", "EMBEDDING_DIM", "KEY_ENV", "SEAL_VERSION", "Match", "Person",
    "WatchList", "WatchlistConflict", "WatchlistError", "WatchlistFollower", "WatchlistIndex",
    "WatchlistKeyError", "WatchlistStore", "key_id", "load_key", "seal", "seal_embeddings",
    "unseal", "unseal_embeddings",
]

log = get_logger(__name__)


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
            raise WatchlistConflict(f"reference {reference!r} is already on list {list_id!r}: "
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

    def audit(self, count: int = 100) -> list[dict[str, str]]:
        """The newest audit entries (newest first), each with its stream ``id``."""
        rows = self.redis.xrevrange(self.audit_stream, count=count) or []
        return [{"id": _text(entry_id or ""),
                 **{_text(k): _text(v) for k, v in (fields or {}).items()}}
                for entry_id, fields in rows]

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
