"""A short-lived cache of recent frames in Redis, and the snapshots kept from it.

Stages after ``detect`` see boxes and tracks, not pixels. When one of them decides that a
frame matters (a person fell, someone loiters, a face to look at on a person track), it
needs that frame's JPEG. The detect stage therefore writes every frame it accepted to Redis
for a few seconds::

    argus:frame:{camera_id}:{seq}     the JPEG, TTL ``frame_cache_s`` (seconds)
    argus:frame:{camera_id}:latest    "<seq> <unix time>" of the newest cached frame, same TTL
                                      (the console's camera wall reads it)
    argus:snapshot:{ref}              a frame kept as evidence, TTL ``snapshot_ttl_s``

A stage that wants to keep a frame as evidence copies it to a snapshot key (``keep``) and
puts the *reference* in its event, never the bytes. The alert API serves snapshots by
reference (blurring faces where asked). Both keys expire: nothing is kept forever.

Snapshots are kept for days, so with ``ARGUS_EVIDENCE_KEY`` set they are **sealed at
rest** (AES-GCM, the snapshot's Redis key as associated data, so a sealed frame cannot be
moved to another reference): :func:`open_snapshot` opens one. Cached frames live 20 s and
stay plain. A snapshot written without a key stays readable as plain JPEG.

Only the cameras whose frames a later stage may ask for are cached
(:func:`cameras_needing_frames`): in a city of plain intrusion cameras the detect stage
writes nothing. Writes are best-effort for the hot path: a Redis failure is counted and
logged and the frame still goes on to detection (events then carry no snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from argus.log import get_logger
from argus.metrics import STAGE_ERRORS, redis_command
from argus.settings import Settings
from argus.topology import Topology
from argus.watchlist.crypto import SEAL_VERSION, WatchlistKeyError, seal, unseal

log = get_logger(__name__)

FRAME_KEY = "argus:frame:{camera_id}:{seq}"
LATEST_KEY = "argus:frame:{camera_id}:latest"
SNAPSHOT_KEY = "argus:snapshot:{ref}"


def cameras_needing_frames(topology: Topology, faces_on_tracks: bool) -> frozenset[str]:
    """The cameras whose recent frames later stages read: every camera when the faces
    stage runs on person tracks (it crops heads from the cached frame); otherwise those
    with tripwires, zone behaviours, person-down detection (their events keep a
    snapshot, and a fall is confirmed with pose on the frame) or plate reading (the plate
    stage crops vehicles from the cached frame).

    >>> from argus.topology import parse_topology
    >>> topology = parse_topology('''
    ... sites: [{id: s, lat: 0, lon: 0}]
    ... cameras:
    ...   - {id: plain, site: s, source: a.mp4, zones: [{id: z, polygon: [[0, 0], [1, 0], [1, 1]]}]}
    ...   - {id: tripwire, site: s, source: a.mp4, lines: [{id: l, points: [[0, 0], [1, 1]]}]}
    ...   - {id: fall, site: s, source: a.mp4, fall: {}}
    ...   - {id: gate, site: s, source: a.mp4, plates: {}}
    ... ''', "t.yaml", {"ARGUS_SHARED": "/data"})
    >>> sorted(cameras_needing_frames(topology, faces_on_tracks=False))
    ['fall', 'gate', 'tripwire']
    >>> sorted(cameras_needing_frames(topology, faces_on_tracks=True))
    ['fall', 'gate', 'plain', 'tripwire']
    """
    return frozenset(
        camera.id for camera in topology.cameras
        if faces_on_tracks or camera.lines or camera.fall is not None or camera.plates is not None
        or any(zone.behaviours is not None for zone in camera.zones))


def frame_key(camera_id: str, seq: int) -> str:
    """The Redis key of one cached frame.

    >>> frame_key("cam-1", 42)
    'argus:frame:cam-1:42'
    """
    return FRAME_KEY.format(camera_id=camera_id, seq=seq)


def latest_key(camera_id: str) -> str:
    """The key naming a camera's newest cached frame.

    >>> latest_key("cam-1")
    'argus:frame:cam-1:latest'
    """
    return LATEST_KEY.format(camera_id=camera_id)


def snapshot_key(ref: str) -> str:
    """The Redis key of a kept snapshot.

    >>> snapshot_key("cam-1:zone-a:fall:42")
    'argus:snapshot:cam-1:zone-a:fall:42'
    """
    return SNAPSHOT_KEY.format(ref=ref)


class SnapshotKeyError(Exception):
    """A sealed snapshot that cannot be opened: no key set, or not the key that sealed it."""


def open_snapshot(key: bytes | None, ref: str, blob: bytes) -> bytes:
    """The JPEG of a stored snapshot: unsealed with ``key``, or as is when it was stored
    plain (a JPEG starts with 0xFF, a sealed record with the seal version byte).

    >>> key = bytes(32)
    >>> sealed = seal(key, snapshot_key("r"), b"\\xff\\xd8jpeg")
    >>> open_snapshot(key, "r", sealed)
    b'\\xff\\xd8jpeg'
    >>> open_snapshot(None, "r", b"\\xff\\xd8plain")
    b'\\xff\\xd8plain'
    >>> open_snapshot(key, "other", sealed)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    argus.stores.frame_cache.SnapshotKeyError: snapshot 'other' cannot be opened: ...
    """
    if blob[:1] != SEAL_VERSION:
        return blob
    if key is None:
        raise SnapshotKeyError(f"snapshot {ref!r} is sealed and ARGUS_EVIDENCE_KEY is not set")
    try:
        return unseal(key, snapshot_key(ref), blob)
    except WatchlistKeyError:
        raise SnapshotKeyError(f"snapshot {ref!r} cannot be opened: wrong ARGUS_EVIDENCE_KEY "
                               "or moved data") from None


class FrameCache:
    """Recent frames per camera (``put_many``/``get``) and snapshots kept from them.

    ``client`` is a ``redis.asyncio.Redis``; ``ttl_s <= 0`` turns the frame cache off
    (``put_many`` does nothing, ``get`` and ``keep`` find nothing); ``key`` seals the
    snapshots (None: stored plain).
    """

    def __init__(self, client: Any, ttl_s: float, snapshot_ttl_s: int,
                 key: bytes | None = None) -> None:
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)
        self.snapshot_ttl_s = snapshot_ttl_s
        self.key = key

    @classmethod
    def from_settings(cls, client: Any, settings: Settings) -> FrameCache:
        """The cache as the settings configure it (TTLs, snapshot sealing key)."""
        return cls(client, settings.frame_cache_s, settings.snapshot_ttl_s,
                   settings.evidence_key_bytes)

    @property
    def enabled(self) -> bool:
        return self.ttl_ms > 0

    async def put_many(self, frames: Sequence[tuple[str, int, bytes]], stage: str = "detect"
                       ) -> bool:
        """Cache ``(camera_id, seq, jpeg)`` frames in one round trip. Never raises: a
        failure is counted (``argus_stage_errors_total{kind="frame_cache"}``) and logged."""
        if not self.enabled or not frames:
            return False
        try:
            with redis_command("frame_cache_put"):
                pipe = self.client.pipeline(transaction=False)
                newest: dict[str, int] = {}
                for camera_id, seq, jpeg in frames:
                    pipe.set(frame_key(camera_id, seq), jpeg, px=self.ttl_ms)
                    newest[camera_id] = max(seq, newest.get(camera_id, seq))
                now = time.time()
                for camera_id, seq in newest.items():
                    pipe.set(latest_key(camera_id), f"{seq} {now:.3f}", px=self.ttl_ms)
                await pipe.execute()
        except Exception as exc:
            STAGE_ERRORS.labels(stage, "frame_cache").inc()
            log.warning("frame cache write failed", extra={"error": repr(exc),
                                                           "frames": len(frames)})
            return False
        return True

    async def latest(self, camera_id: str) -> tuple[int, float] | None:
        """(seq, when cached) of the camera's newest cached frame, or None (none within
        the cache's TTL: the camera is not cached, or sends nothing)."""
        with redis_command("frame_cache_latest"):
            value = await self.client.get(latest_key(camera_id))
        if value is None:
            return None
        seq, when = (value.decode() if isinstance(value, bytes) else str(value)).split()
        return int(seq), float(when)

    async def get(self, camera_id: str, seq: int) -> bytes | None:
        """The cached JPEG of a frame, or None once it expired (or was never cached)."""
        if not self.enabled:
            return None
        with redis_command("frame_cache_get"):
            value = await self.client.get(frame_key(camera_id, seq))
        return bytes(value) if value is not None else None

    async def keep(self, camera_id: str, seq: int, ref: str) -> str | None:
        """Keep a cached frame as the snapshot ``ref`` (TTL ``snapshot_ttl_s``); returns
        ``ref``, or None when the frame is no longer cached. Idempotent: a replay rewrites
        the same key."""
        if not self.enabled:
            return None
        target = snapshot_key(ref)
        if self.key is not None:  # sealed: the bytes come through here to be encrypted
            jpeg = await self.get(camera_id, seq)
            return None if jpeg is None else await self.store(ref, jpeg)
        with redis_command("snapshot_keep"):
            pipe = self.client.pipeline(transaction=True)
            pipe.copy(frame_key(camera_id, seq), target, replace=True)
            pipe.expire(target, self.snapshot_ttl_s)
            copied, _ = await pipe.execute()
        return ref if copied else None

    def sealed(self, ref: str, jpeg: bytes) -> bytes:
        """What is stored for the snapshot ``ref``: sealed with the key, or plain."""
        return jpeg if self.key is None else seal(self.key, snapshot_key(ref), jpeg)

    async def store(self, ref: str, jpeg: bytes) -> str:
        """Keep JPEG bytes a stage already holds as the snapshot ``ref``."""
        with redis_command("snapshot_store"):
            await self.client.set(snapshot_key(ref), self.sealed(ref, jpeg),
                                  ex=self.snapshot_ttl_s)
        return ref

    async def snapshot(self, ref: str) -> bytes | None:
        """The JPEG of a kept snapshot, or None (unknown or expired);
        :class:`SnapshotKeyError` if it is sealed and cannot be opened."""
        with redis_command("snapshot_get"):
            value = await self.client.get(snapshot_key(ref))
        return open_snapshot(self.key, ref, bytes(value)) if value is not None else None
