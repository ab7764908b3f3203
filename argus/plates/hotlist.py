"""Plate hotlists and allow lists in Redis: keyed hashes, sealed clear text, audit.

Plates are personal data, so the store keeps them the way the face watchlist keeps faces:

* an entry is stored under a keyed hash of the normalised plate (:meth:`PlateKeys.tag`,
  HMAC-SHA256), so a lookup needs the key and Redis cannot be scanned for a plate;
* the clear text and the reason are sealed with AES-GCM (the watchlist's :func:`seal`), bound
  to the list and the tag as associated data;
* tolerance to one OCR confusion (0/O, 1/I, 8/B, 5/S, ...) goes through a second keyed hash
  of the read's :func:`~argus.plates.text.confusable_key`: a bounded lookup, never a scan;
  the match reports the edit distance;
* every add and remove is appended to ``<prefix>audit:plates`` (who, when, list, entry id;
  never the plate); an entry may expire (Redis deletes it).

Two sub-keys are derived from ``ARGUS_PLATE_KEY`` (base64 of 16, 24 or 32 bytes): one for the
lookup hashes, one for sealing. Redis layout (``prefix`` = ``argus:``):
``plates:entry:<list>:<tag>`` hash (``meta`` JSON, ``sealed``), ``plates:tags:<list>`` set,
``plates:fuzzy:<list>:<fuzzy tag>`` set of tags, ``plates:lists`` set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import redis
from pydantic import BaseModel, ConfigDict, Field

from argus.keys import decode_key
from argus.plates.text import clean, confusable_key, edit_distance
from argus.watchlist.crypto import WatchlistError, WatchlistKeyError, seal, unseal

KEY_ENV = "ARGUS_PLATE_KEY"
ListKind = Literal["hotlist", "allow"]


def load_plate_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The master key from ``ARGUS_PLATE_KEY`` (base64 of 16, 24 or 32 bytes)."""
    text = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    if not text:
        raise WatchlistKeyError(f"{KEY_ENV} is not set (base64 of 32 random bytes; keep it "
                                "secret)")
    try:
        return decode_key(KEY_ENV, text)
    except ValueError as exc:
        raise WatchlistKeyError(str(exc)) from None


@dataclass(frozen=True)
class PlateKeys:
    """The lookup and sealing keys derived from the master key."""

    lookup: bytes
    sealing: bytes
    key_id: str

    @classmethod
    def from_master(cls, key: bytes) -> PlateKeys:
        """Derive both sub-keys (HMAC-SHA256 of a purpose label) and a public fingerprint."""
        def derive(label: bytes) -> bytes:
            return hmac.new(key, label, hashlib.sha256).digest()
        return cls(derive(b"argus-plate-lookup"), derive(b"argus-plate-seal"),
                   hashlib.sha256(b"argus-plate-key:" + key).hexdigest()[:12])

    def tag(self, plate: str) -> str:
        """The keyed hash of a normalised plate (what entries are stored under)."""
        return hmac.new(self.lookup, b"=" + plate.encode(), hashlib.sha256).hexdigest()[:32]

    def fuzzy_tag(self, plate: str) -> str:
        """The keyed hash of the plate's confusion class (reads one confusion apart share it)."""
        return hmac.new(self.lookup, b"~" + confusable_key(plate).encode(),
                        hashlib.sha256).hexdigest()[:32]


class PlateEntry(BaseModel):
    """One listed plate (metadata only: the plate and the reason are sealed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_id: str = Field(description="The plate's keyed hash")
    list_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    kind: ListKind
    created_at: float
    created_by: str
    expires_at: float | None = None
    key_id: str


@dataclass(frozen=True)
class PlateMatch:
    """A read that hit a list entry."""

    entry: PlateEntry
    plate: str
    """The listed plate (clear text)."""
    reason: str
    distance: int
    """Edit distance between the read and the listed plate (0: exact)."""


class PlateListStore:
    """Hotlists and allow lists in Redis (sync client)."""

    def __init__(self, client: redis.Redis, keys: PlateKeys, prefix: str = "argus:") -> None:
        self.redis, self.keys, self.prefix = client, keys, prefix
        self.audit_stream = f"{prefix}audit:plates"

    def _k(self, *parts: str) -> str:
        return self.prefix + "plates:" + ":".join(parts)

    def _audit(self, pipe: redis.client.Pipeline, actor: str, action: str, list_id: str,
               entry_id: str) -> None:
        pipe.xadd(self.audit_stream, {"ts": f"{time.time():.3f}", "actor": actor,
                                      "action": action, "list_id": list_id,
                                      "entry_id": entry_id})

    def add(self, list_id: str, kind: ListKind, plate: str, reason: str, actor: str,
            expires_at: float | None = None) -> PlateEntry:
        """List a plate (normalised: upper case, A-Z0-9 only); replaces an existing entry
        of the same plate on that list."""
        text = clean(plate)
        if not 2 <= len(text) <= 12:
            raise WatchlistError(f"a plate has 2-12 characters A-Z0-9, got {len(text)}")
        if expires_at is not None and expires_at <= time.time():
            raise WatchlistError("expires_at is in the past")
        tag = self.keys.tag(text)
        entry = PlateEntry(entry_id=tag, list_id=list_id, kind=kind, created_at=time.time(),
                           created_by=actor, expires_at=expires_at, key_id=self.keys.key_id)
        sealed = seal(self.keys.sealing, f"plate:{list_id}:{tag}",
                      json.dumps({"plate": text, "reason": reason}).encode())
        entry_key = self._k("entry", list_id, tag)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(entry_key, mapping={"meta": entry.model_dump_json(), "sealed": sealed})
        if expires_at is not None:
            pipe.expireat(entry_key, int(expires_at) + 1)
        else:
            pipe.persist(entry_key)
        pipe.sadd(self._k("tags", list_id), tag)
        pipe.sadd(self._k("fuzzy", list_id, self.keys.fuzzy_tag(text)), tag)
        pipe.sadd(self._k("lists"), list_id)
        self._audit(pipe, actor, "plate.add", list_id, tag)
        pipe.execute()
        return entry

    def remove(self, list_id: str, plate: str, actor: str) -> bool:
        """Delist a plate; False when it was not listed."""
        text = clean(plate)
        tag = self.keys.tag(text)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._k("entry", list_id, tag))
        pipe.srem(self._k("tags", list_id), tag)
        pipe.srem(self._k("fuzzy", list_id, self.keys.fuzzy_tag(text)), tag)
        self._audit(pipe, actor, "plate.remove", list_id, tag)
        return bool(pipe.execute()[0])

    def _entry(self, list_id: str, tag: str) -> tuple[PlateEntry, str, str] | None:
        raw = self.redis.hgetall(self._k("entry", list_id, tag))
        if not raw:
            return None
        fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
        entry = PlateEntry.model_validate_json(fields["meta"])
        sealed = fields["sealed"]
        blob = sealed if isinstance(sealed, bytes) else sealed.encode("latin-1")
        clear = json.loads(unseal(self.keys.sealing, f"plate:{list_id}:{tag}", blob))
        return entry, str(clear["plate"]), str(clear["reason"])

    def show(self, list_id: str) -> list[tuple[PlateEntry, str, str]]:
        """Every live entry of a list with its plate and reason (sorted by plate); expired
        entries are dropped from the index on the way."""
        out = []
        for raw_tag in self.redis.smembers(self._k("tags", list_id)):
            tag = raw_tag.decode() if isinstance(raw_tag, bytes) else str(raw_tag)
            found = self._entry(list_id, tag)
            if found is None:
                self.redis.srem(self._k("tags", list_id), tag)
                continue
            out.append(found)
        return sorted(out, key=lambda item: item[1])

    def counts(self, list_id: str) -> dict[str, int]:
        """A list's live entries counted by kind (metadata only: nothing is unsealed);
        expired entries are dropped from the index on the way."""
        tags = [t.decode() if isinstance(t, bytes) else str(t)
                for t in self.redis.smembers(self._k("tags", list_id))]
        pipe = self.redis.pipeline(transaction=False)
        for tag in tags:
            pipe.hget(self._k("entry", list_id, tag), "meta")
        counts: dict[str, int] = {}
        for tag, meta in zip(tags, pipe.execute(), strict=True):
            if meta is None:
                self.redis.srem(self._k("tags", list_id), tag)
                continue
            kind = PlateEntry.model_validate_json(meta).kind
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def list_ids(self) -> list[str]:
        """Every list ever written, sorted."""
        return sorted(i.decode() if isinstance(i, bytes) else str(i)
                      for i in self.redis.smembers(self._k("lists")))

    def lists(self) -> dict[str, dict[str, int]]:
        """Every list ever written, with :meth:`counts`."""
        return {list_id: self.counts(list_id) for list_id in self.list_ids()}

    def match(self, list_id: str, read: str) -> PlateMatch | None:
        """The entry a read hits: the exact plate, else a listed plate one OCR confusion
        (or one edit among the read's confusion class) away."""
        text = clean(read)
        exact = self._entry(list_id, self.keys.tag(text))
        if exact is not None:
            return PlateMatch(exact[0], exact[1], exact[2], 0)
        best: PlateMatch | None = None
        for raw_tag in self.redis.smembers(self._k("fuzzy", list_id,
                                                   self.keys.fuzzy_tag(text))):
            tag = raw_tag.decode() if isinstance(raw_tag, bytes) else str(raw_tag)
            found = self._entry(list_id, tag)
            if found is None:
                continue
            distance = edit_distance(text, found[1])
            if distance <= 1 and (best is None or distance < best.distance):
                best = PlateMatch(found[0], found[1], found[2], distance)
        return best
