"""The faces stage: Triton ``faces`` → quality gate → watchlist match → ``events.face``.

Pure logic (:class:`FaceStage`, :func:`assign_track`, :func:`blur_faces_except`) plus the
asyncio Triton client and the thread that keeps a worker's watchlist index in step with
Redis (:class:`WatchlistFollower`). Privacy: a face that matches nobody is only counted;
its box and embedding are dropped here, nothing about it is stored or published.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
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

from argus.log import get_logger
from argus.modelcode import load_module_from_path
from argus.settings import REPO_ROOT
from argus.watchlist import WatchlistError, WatchlistIndex, WatchlistStore
from pipelines.triton import TritonModel, jpeg_input
from schemas.detections import Box
from schemas.faces import FaceEvent

log = get_logger(__name__)

MODEL = "faces"
FACELIB_PATH = REPO_ROOT / "triton_models" / "faces" / "1" / "facelib.py"
OUTPUTS = ("COUNT", "BOXES", "LANDMARKS", "SCORES", "QUALITY", "QUALITY_PARTS", "EMBEDDINGS",
           "IMAGE_SIZE")
CROP_KEY = "argus:face:crop:{event_id}"
"""Redis key of a matched face's JPEG crop (with the face retention TTL)."""


@lru_cache(maxsize=1)
def load_facelib() -> ModuleType:
    """The ``faces`` model's ``facelib.py`` (the same code Triton serves)."""
    return load_module_from_path("argus_triton_faces_facelib", FACELIB_PATH)


def model_parameters() -> dict[str, str]:
    """The ``parameters`` of ``triton_models/faces/config.pbtxt`` (the local path uses the
    same thresholds, sizes and files as the served model)."""
    text = (FACELIB_PATH.parent.parent / "config.pbtxt").read_text(encoding="utf-8")
    pattern = r'key:\s*"([^"]+)"[^{]*\{\s*string_value:\s*"([^"]*)"'
    return dict(re.findall(pattern, text))


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
    """Matches inside the cool-down of an earlier event for the same camera and person."""


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
                crop_ref=CROP_KEY.format(event_id=event_id)))
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
                            events: Sequence[FaceEvent], ttl_s: int) -> int:
    """Keep the crop of each matched face (and nothing else) under its ``crop_ref`` with a
    TTL; idempotent (a replay overwrites the same key). Returns the crops written."""
    written = 0
    for event in events:
        if event.crop_ref is None:
            continue
        box = (event.face_box.x1, event.face_box.y1, event.face_box.x2, event.face_box.y2)
        await client.set(event.crop_ref, face_crop_jpeg(image_bgr, box), ex=ttl_s)
        written += 1
    return written


def blur_faces_except(image_bgr: npt.NDArray[np.uint8], boxes: Sequence[Sequence[float]],
                      keep: int | None = None) -> npt.NDArray[np.uint8]:
    """A copy of the image with every face box (normalised) pixelated except ``boxes[keep]``:
    how a snapshot attached to an alert is served."""
    out = image_bgr.copy()
    height, width = out.shape[:2]
    for i, box in enumerate(boxes):
        if i == keep:
            continue
        x1, y1, x2, y2 = pixel_box(box, width, height, margin=0.15)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        region = out[y1:y2, x1:x2]
        small = cv2.resize(region, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)),
                           interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1),
                                       interpolation=cv2.INTER_NEAREST)
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
