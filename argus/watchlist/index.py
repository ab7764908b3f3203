"""Watchlist records, the in-memory match index and the follower that keeps it current.

:class:`WatchlistIndex` holds every enrolled embedding as one matrix (cosine = dot product
of unit vectors, per-list thresholds, expiry). :class:`WatchlistFollower` loads it from a
:class:`~argus.watchlist.store.WatchlistStore` and applies each change published on the store's
channel within milliseconds (a removed entry stops matching in every worker), with a full
reload when the stored version moved without a message.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from argus.log import get_logger
from argus.watchlist.crypto import EMBEDDING_DIM, WatchlistError

if TYPE_CHECKING:
    from argus.watchlist.store import WatchlistStore

log = get_logger(__name__)

DEFAULT_THRESHOLD = 0.79
"""Cosine threshold of a new list: the FAR = 0.1 % point of FaceNet on the deepface pairs
(docs/faces.md). A watchlist compares every face with every entry, so its false alarms grow
with the number of entries: it needs a stricter point than 1:1 verification (FAR 1 %: 0.62)."""


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


# --- keeping a worker's index in step --------------------------------------------------------

class WatchlistFollower:
    """Loads the watchlist index and applies every change published on the store's channel
    (a background thread); a full reload every ``resync_s`` if the version moved without a
    message (pub/sub is fire-and-forget, e.g. across a reconnect)."""

    def __init__(self, store: WatchlistStore, index: WatchlistIndex | None = None,
                 resync_s: float = 30.0) -> None:
        self.store, self.index = store, index or WatchlistIndex()
        self.resync_s = resync_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, timeout_s: float = 10.0) -> WatchlistFollower:
        self._thread = threading.Thread(target=self._run, name="watchlist-follower",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("watchlist follower did not subscribe in time")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def apply(self, message: dict[str, object]) -> None:
        """One change: ``put`` reloads the entry, ``drop`` forgets it, ``list`` reloads all."""
        op, ident = message.get("op"), str(message.get("id", ""))
        if op == "drop":
            self.index.drop(ident)
        elif op == "put":
            person = self.store.get(ident)
            try:
                embeddings = self.store.embeddings(ident) if person else None
            except WatchlistError:
                embeddings = None
            if person is None or embeddings is None:
                self.index.drop(ident)
            else:
                self.index.put(person, embeddings)
        else:
            self.index.replace(self.store.load_index())
        self.index.version = max(self.index.version, int(str(message.get("version", 0))))

    def _run(self) -> None:
        pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.store.channel)
        self.index.replace(self.store.load_index())
        self._ready.set()
        next_check = time.monotonic() + self.resync_s
        try:
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message.get("type") == "message":
                    try:
                        self.apply(json.loads(message["data"]))
                    except (ValueError, WatchlistError) as exc:
                        log.warning("watchlist.bad_change", extra={"error": str(exc)})
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.resync_s
                    if self.store.version() != self.index.version:
                        self.index.replace(self.store.load_index())
        finally:
            pubsub.close()
