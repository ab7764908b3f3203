"""The faces stage: Triton ``faces`` → quality gate → watchlist match → ``events.face``.

Pure logic (:class:`FaceStage` for sampled frames, :func:`assign_track`,
:func:`blur_faces_except`), the asyncio Triton client, and what a match keeps: the face crop
and the frame as a snapshot with the matched face's box (everything with a TTL). The person
track mode is in :mod:`pipelines.stages.faces.tracks`; the watchlist index and its follower in
:mod:`argus.watchlist.index`. Privacy: a face that matches nobody is only counted; its box
and embedding are dropped, nothing about it is stored or published.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis as AsyncRedis
from tritonclient.grpc.aio import InferInput

from argus.inference.triton import TritonModel, jpeg_input
from argus.log import get_logger
from argus.modelcode import load_module_from_path, triton_parameters
from argus.settings import REPO_ROOT
from argus.stores.frame_cache import FrameCache, open_snapshot, snapshot_key
from argus.watchlist.crypto import seal, unseal
from argus.watchlist.index import WatchlistIndex
from schemas.detections import Box
from schemas.faces import FaceEvent

log = get_logger(__name__)

MODEL = "faces"
FACELIB_PATH = REPO_ROOT / "triton_models" / "faces" / "1" / "facelib.py"
OUTPUTS = ("COUNT", "BOXES", "LANDMARKS", "SCORES", "QUALITY", "QUALITY_PARTS", "EMBEDDINGS",
           "IMAGE_SIZE")
CROP_KEY = "argus:face:crop:{event_id}"
"""Redis key of a matched face's JPEG crop, sealed (with the face retention TTL)."""
PIXEL_BLOCKS = 8
"""A hidden face is pixelated to 8 cells across: after that neither YuNet finds a face there
nor can FaceNet match it (12-pixel cells, tried first, left a 330-pixel face matching its
original at 0.81 cosine, above the watchlist threshold)."""
KEEP_KEY = "argus:snapshot-keep:{ref}"
"""Redis set of the matched face boxes of a snapshot (JSON ``[x1, y1, x2, y2]``): the faces
the API leaves visible when it serves the snapshot with every other face blurred."""


@lru_cache(maxsize=1)
def load_facelib() -> ModuleType:
    """The ``faces`` model's ``facelib.py`` (the same code Triton serves)."""
    return load_module_from_path("argus_triton_faces_facelib", FACELIB_PATH)


def model_parameters() -> dict[str, str]:
    """The ``parameters`` of ``triton_models/faces/config.pbtxt`` (the local path uses the
    same thresholds, sizes and files as the served model)."""
    return triton_parameters("faces")


def local_analyzer(models_dir: Path, threads: int | None = None) -> Any:
    """A ``facelib.FaceAnalyzer`` in this process, configured like the Triton model."""
    p = model_parameters()
    return load_facelib().FaceAnalyzer(
        str(models_dir / p["yunet_file"]), str(models_dir / p["facenet_file"]),
        score_threshold=float(p["score_threshold"]), nms_threshold=float(p["nms_threshold"]),
        max_side=int(p["max_side"]), min_side=int(p["min_side"]),
        max_faces=int(p["max_faces"]), align_scale=float(p["align_scale"]), threads=threads)


@dataclass(frozen=True)
class DetectedFace:
    """One face from the ``faces`` model, coordinates normalised to the image."""

    box: tuple[float, float, float, float]
    landmarks: npt.NDArray[np.float32]
    score: float
    quality: float
    parts: tuple[float, float, float]
    """size, frontal, sharpness."""
    embedding: npt.NDArray[np.float32]


def parse_faces(outputs: Mapping[str, npt.NDArray[Any]], item: int = 0,
                ) -> list[DetectedFace]:
    """The faces of batch item ``item`` of a ``faces`` response (padding rows dropped)."""
    count = int(outputs["COUNT"][item].reshape(-1)[0])
    faces = []
    for j in range(count):
        x1, y1, x2, y2 = (float(v) for v in np.clip(outputs["BOXES"][item, j], 0.0, 1.0))
        parts = outputs["QUALITY_PARTS"][item, j]
        faces.append(DetectedFace(
            box=(x1, y1, max(x1, x2), max(y1, y2)),
            landmarks=np.asarray(outputs["LANDMARKS"][item, j], np.float32).reshape(5, 2),
            score=float(outputs["SCORES"][item, j]), quality=float(outputs["QUALITY"][item, j]),
            parts=(float(parts[0]), float(parts[1]), float(parts[2])),
            embedding=np.asarray(outputs["EMBEDDINGS"][item, j], np.float32)))
    return faces


def from_facelib(faces: Sequence[object]) -> list[DetectedFace]:
    """``facelib.Face`` objects (the local path) as :class:`DetectedFace`."""
    out = []
    for face in faces:
        box, parts = face.box, face.parts  # type: ignore[attr-defined]
        out.append(DetectedFace(
            box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            landmarks=face.landmarks, score=face.score,  # type: ignore[attr-defined]
            quality=face.quality,  # type: ignore[attr-defined]
            parts=(float(parts[0]), float(parts[1]), float(parts[2])),
            embedding=face.embedding))  # type: ignore[attr-defined]
    return out


class TritonFaces(TritonModel):
    """The client of the ``faces`` model."""

    model = MODEL

    async def infer(self, jpeg: bytes, box: Sequence[float] | None = None,
                    ) -> tuple[list[DetectedFace], tuple[int, int], float]:
        """Faces, (width, height) and latency in ms; ``box`` (normalised) restricts the search.
        Raises ``Rejected("corrupt_jpeg", ...)`` when the model cannot decode the image."""
        inputs = [jpeg_input(jpeg)]
        if box is not None:
            roi = InferInput("BOX", [1, 4], "FP32")
            roi.set_data_from_numpy(np.asarray([box], dtype=np.float32).reshape(1, 4))
            inputs.append(roi)
        result, ms = await self.call(inputs, OUTPUTS)
        outputs = {name: result.as_numpy(name) for name in OUTPUTS}
        size = outputs["IMAGE_SIZE"][0]
        return parse_faces(outputs), (int(size[0]), int(size[1])), ms


# --- pure stage logic ------------------------------------------------------------------------

def assign_track(face_box: Sequence[float], tracks: Sequence[tuple[int, Sequence[float]]],
                 ) -> int | None:
    """The track whose person box holds the face centre in its upper half (the smallest such
    box when several do), else None. Boxes are normalised x1, y1, x2, y2.

    >>> assign_track((0.4, 0.1, 0.5, 0.2), [(7, (0.3, 0.05, 0.6, 0.9)), (8, (0, 0, 1, 1))])
    7
    """
    cx, cy = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
    best: tuple[float, int] | None = None
    for track_id, (x1, y1, x2, y2) in tracks:
        if x1 <= cx <= x2 and y1 <= cy <= y1 + (y2 - y1) / 2:
            area = (x2 - x1) * (y2 - y1)
            if best is None or area < best[0]:
                best = (area, track_id)
    return None if best is None else best[1]


@dataclass
class FrameSampler:
    """At most one frame per camera every ``interval_s`` of capture time (frames older than
    the last one taken are skipped too, so a replay does not resample)."""

    interval_s: float = 1.0
    _last: dict[str, float] = field(default_factory=dict)

    def take(self, camera_id: str, ts: float) -> bool:
        """Whether to run the faces model on this frame (and remember it if so)."""
        last = self._last.get(camera_id)
        if last is not None and ts < last + self.interval_s:
            return False
        self._last[camera_id] = ts
        return True


@dataclass
class FaceStageResult:
    """What one frame produced: events for matches, counts for everything else."""

    events: list[FaceEvent] = field(default_factory=list)
    matched: int = 0
    unmatched: int = 0
    low_quality: int = 0
    suppressed: int = 0
    """Matches inside the cool-down of an earlier event for the same camera and person
    (tracks mode: of an earlier event for the same track and person)."""
    no_face: int = 0
    """Tracks mode: no face in the track's head region."""
    not_better: int = 0
    """Tracks mode: a usable face no better than the best one already matched for its track."""


@dataclass
class FaceStage:
    """Quality gate, watchlist match and per-(camera, person) cool-down for one worker."""

    index: WatchlistIndex
    min_quality: float = 0.5
    cooldown_s: float = 10.0
    _last: dict[tuple[str, str], float] = field(default_factory=dict)

    def process(self, camera_id: str, site_id: str, seq: int, ts: float,
                faces: Sequence[DetectedFace],
                tracks: Sequence[tuple[int, Sequence[float]]] = ()) -> FaceStageResult:
        """Match one frame's faces. Unmatched faces are counted and forgotten."""
        result = FaceStageResult()
        usable = [f for f in faces if f.quality >= self.min_quality]
        result.low_quality = len(faces) - len(usable)
        matches = self.index.match([f.embedding for f in usable]) if usable else []
        for face, match in zip(usable, matches, strict=True):
            if match is None:
                result.unmatched += 1
                continue
            result.matched += 1
            person = match.person
            last = self._last.get((camera_id, person.person_id))
            if last is not None and abs(ts - last) < self.cooldown_s:
                result.suppressed += 1
                continue
            self._last[(camera_id, person.person_id)] = ts
            event_id = "face-" + hashlib.sha1(
                f"{camera_id}|{seq}|{person.person_id}".encode()).hexdigest()[:16]
            x1, y1, x2, y2 = face.box
            result.events.append(FaceEvent(
                event_id=event_id, camera_id=camera_id, site_id=site_id, ts=ts, seq=seq,
                track_id=assign_track(face.box, tracks), list_id=person.list_id,
                category=person.category, person_id=person.person_id,
                person_ref=person.reference, similarity=round(min(match.similarity, 1.0), 4),
                threshold=match.threshold, quality=round(face.quality, 4),
                face_box=Box(x1=x1, y1=y1, x2=x2, y2=y2),
                crop_ref=CROP_KEY.format(event_id=event_id),
                snapshot_ref=snapshot_ref(camera_id, seq)))
        self._prune(ts)
        return result

    def _prune(self, now: float) -> None:
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < self.cooldown_s}


def pixel_box(box: Sequence[float], width: int, height: int, margin: float = 0.0,
              ) -> tuple[int, int, int, int]:
    """A normalised box grown by ``margin`` (fraction of its size) → clipped pixel bounds."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return (max(0, int((x1 - mx) * width)), max(0, int((y1 - my) * height)),
            min(width, int(np.ceil((x2 + mx) * width))),
            min(height, int(np.ceil((y2 + my) * height))))


def face_crop_jpeg(image_bgr: npt.NDArray[np.uint8], box: Sequence[float],
                   margin: float = 0.2) -> bytes:
    """The JPEG crop of one (matched) face, with a margin."""
    x1, y1, x2, y2 = pixel_box(box, image_bgr.shape[1], image_bgr.shape[0], margin)
    ok, encoded = cv2.imencode(".jpg", image_bgr[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("cannot encode the face crop")
    return bytes(encoded.tobytes())


async def store_match_crops(client: AsyncRedis, image_bgr: npt.NDArray[np.uint8],
                            events: Sequence[FaceEvent], ttl_s: int, key: bytes) -> int:
    """Keep the crop of each matched face (and nothing else) under its ``crop_ref`` with a
    TTL, sealed like the watchlist's embeddings (AES-GCM with the watchlist key, the crop's
    Redis key as associated data: :func:`load_match_crop` reads it back); idempotent (a
    replay overwrites the same key). Returns the crops written."""
    written = 0
    for event in events:
        if event.crop_ref is None:
            continue
        box = (event.face_box.x1, event.face_box.y1, event.face_box.x2, event.face_box.y2)
        sealed = seal(key, event.crop_ref, face_crop_jpeg(image_bgr, box))
        await client.set(event.crop_ref, sealed, ex=ttl_s)
        written += 1
    return written


async def load_match_crop(client: AsyncRedis, key: bytes, crop_ref: str) -> bytes | None:
    """The JPEG of a stored face crop (None once it expired); a wrong key or a crop moved
    to another key raises :class:`argus.watchlist.crypto.WatchlistKeyError`."""
    blob = await client.get(crop_ref)
    if blob is None:
        return None
    if not isinstance(blob, bytes):
        raise TypeError("face crops are binary: read them with a client without "
                        "decode_responses")
    return unseal(key, crop_ref, blob)


def snapshot_ref(camera_id: str, seq: int) -> str:
    """The snapshot reference of a frame: the ``frames.raw/<camera>/<seq>`` reference the
    correlation engine already puts on the evidence of every video alert, so a face alert's
    evidence points at the snapshot this stage keeps.

    >>> snapshot_ref("cam-1", 42)
    'frames.raw/cam-1/42'
    """
    return f"frames.raw/{camera_id}/{seq}"


def keep_key(ref: str) -> str:
    """The Redis key of a snapshot's matched face boxes.

    >>> keep_key("frames.raw/cam-1/42")
    'argus:snapshot-keep:frames.raw/cam-1/42'
    """
    return KEEP_KEY.format(ref=ref)


def box_json(box: Box) -> str:
    """A face box as the JSON member of a snapshot's keep set (rounded: idempotent).

    >>> box_json(Box(x1=0.1, y1=0.2, x2=0.30001, y2=0.4))
    '[0.1, 0.2, 0.3, 0.4]'
    """
    return json.dumps([round(v, 4) for v in (box.x1, box.y1, box.x2, box.y2)])


async def keep_match_snapshots(cache: FrameCache, jpeg: bytes, events: Sequence[FaceEvent]
                               ) -> int:
    """Keep the frame of the matches as a snapshot under each event's ``snapshot_ref``, and
    the matched face boxes beside it (both with the snapshot TTL); idempotent. Returns the
    snapshots written."""
    refs: dict[str, list[FaceEvent]] = {}
    for event in events:
        if event.snapshot_ref is not None:
            refs.setdefault(event.snapshot_ref, []).append(event)
    for ref, matched in refs.items():
        await cache.store(ref, jpeg)
        pipe = cache.client.pipeline(transaction=True)
        pipe.sadd(keep_key(ref), *(box_json(e.face_box) for e in matched))
        pipe.expire(keep_key(ref), cache.snapshot_ttl_s)
        await pipe.execute()
    return len(refs)


async def snapshot_with_keep(client: AsyncRedis, ref: str, key: bytes | None = None
                             ) -> tuple[bytes | None, list[tuple[float, ...]]]:
    """A kept snapshot's JPEG (None if unknown or expired; opened with ``key`` if sealed,
    else :class:`~argus.stores.frame_cache.SnapshotKeyError`) and its matched face boxes."""
    pipe = client.pipeline(transaction=False)
    pipe.get(snapshot_key(ref))
    pipe.smembers(keep_key(ref))
    stored, members = await pipe.execute()
    boxes = [tuple(float(v) for v in json.loads(m)) for m in members or ()]
    jpeg = open_snapshot(key, ref, bytes(stored)) if stored is not None else None
    return jpeg, sorted(boxes)


def blur_faces_except(image_bgr: npt.NDArray[np.uint8], boxes: Sequence[Sequence[float]],
                      keep: int | Collection[int] | None = None, blocks: int = PIXEL_BLOCKS,
                      ) -> npt.NDArray[np.uint8]:
    """A copy of the image with every face box (normalised, grown by 15 %) pixelated to
    ``blocks`` cells across its longer side, except ``boxes[keep]`` (one index or several):
    how a snapshot attached to an alert is served."""
    kept = set() if keep is None else {keep} if isinstance(keep, int) else set(keep)
    out = image_bgr.copy()
    height, width = out.shape[:2]
    for i, box in enumerate(boxes):
        if i in kept:
            continue
        x1, y1, x2, y2 = pixel_box(box, width, height, margin=0.15)
        w, h = x2 - x1, y2 - y1
        if w < 1 or h < 1:
            continue
        cells = (max(1, round(blocks * w / max(w, h))), max(1, round(blocks * h / max(w, h))))
        small = cv2.resize(out[y1:y2, x1:x2], cells, interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.resize(small, (w, h),
                                       interpolation=cv2.INTER_NEAREST)
    return out
