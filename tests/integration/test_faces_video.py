"""Real-video check: enroll one person from two photos, find them in a clip, nobody else.

There is no licensed video of known faces in the shared data, so the clip is assembled from
the deepface photos: each photo letterboxed to 640x480 and held for two frames, written as
an MJPG AVI, read back with OpenCV and JPEG-encoded as the frame grabber does. Every frame
goes through Triton's ``faces`` model and the faces stage with the list's default threshold:
whole frames (``frames`` mode), and person tracks from the detector and the tracker with the
faces model on each track's head region (``tracks`` mode, the default).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from argus.inference.detector import COCO_CLASSES, TritonDetector, detect_frames
from argus.inference.faces import DetectedFace, FaceStage, TritonFaces
from argus.settings import Settings
from argus.watchlist.store import DEFAULT_THRESHOLD, WatchlistIndex, WatchlistStore
from pipelines.stages.faces.tracks import TrackFaces, head_region
from pipelines.stages.track.registry import TrackerRegistry, TrackSettings
from schemas.detections import Detections
from schemas.faces import FaceEvent
from schemas.frames import FrameHeaders
from tools.face_clip import assemble_clip, read_clip

pytestmark = pytest.mark.integration

GALLERY = ("img1.jpg", "img2.jpg")  # identity G00 in identities_derived.csv
TARGET = ("img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg", "img10.jpg", "img11.jpg")
OTHERS = ("img26.jpg", "img28.jpg", "img8.jpg", "img3.jpg", "img16.jpg", "img13.jpg",
          "img29.jpg", "img38.jpg", "img34.jpg", "img18.jpg", "img20.jpg", "img22.jpg",
          "img24.jpg", "selfie-many-people.jpg")  # every other identity, the closest twice
FRAMES_PER_PHOTO = 2


def test_enrolled_person_is_found_in_a_clip_and_nobody_else(stack: Settings,
                                                           tmp_path: Path) -> None:
    folder = stack.shared / "data" / "faces" / "deepface"
    clip = tmp_path / "clip.avi"
    sequence = TARGET + OTHERS
    assemble_clip(folder, sequence, clip, FRAMES_PER_PHOTO)
    jpegs = read_clip(clip)
    assert len(jpegs) == len(sequence) * FRAMES_PER_PHOTO

    async def faces_of(images: list[bytes]) -> list[list[DetectedFace]]:
        client = TritonFaces(stack.triton_grpc_url)
        gate = asyncio.Semaphore(4)

        async def one(jpeg: bytes) -> list[DetectedFace]:
            async with gate:
                return list((await client.infer(jpeg))[0])

        try:
            return list(await asyncio.gather(*(one(j) for j in images)))
        finally:
            await client.close()

    gallery_faces = asyncio.run(faces_of([(folder / n).read_bytes() for n in GALLERY]))
    store = WatchlistStore(redis.Redis.from_url(stack.redis_url), os.urandom(32),
                           prefix=f"t{uuid.uuid4().hex[:8]}:")
    person = store.enroll("wanted", "CASE-G00", "G00",
                          np.stack([f[0].embedding for f in gallery_faces]), "video-test")
    stage = FaceStage(index=store.load_index(), min_quality=0.5, cooldown_s=0)
    assert stage.index.thresholds["wanted"] == DEFAULT_THRESHOLD

    frames = asyncio.run(faces_of(jpegs))
    matched_photos, false_matches, faces_seen = set(), [], 0
    for seq, faces in enumerate(frames):
        photo = sequence[seq // FRAMES_PER_PHOTO]
        result = stage.process("cam-clip", "site-clip", seq, 1000.0 + seq / 5, faces)
        faces_seen += len(faces)
        for event in result.events:
            if photo in TARGET:
                matched_photos.add(photo)
            else:
                false_matches.append((photo, event.similarity))
    assert faces_seen >= len(jpegs)  # every frame shows at least one face
    assert false_matches == []
    assert len(matched_photos) >= 3, f"found the person in only {sorted(matched_photos)}"
    store.remove(person.person_id, "video-test")


def test_tracks_mode_finds_the_person_on_their_tracks_and_nobody_else(stack: Settings,
                                                                      tmp_path: Path) -> None:
    """The same clip through the detector, the tracker and faces on person tracks (the
    stage's default mode): the enrolled person's tracks match, nobody else's does."""
    folder = stack.shared / "data" / "faces" / "deepface"
    clip = tmp_path / "clip.avi"
    sequence = TARGET + OTHERS
    assemble_clip(folder, sequence, clip, FRAMES_PER_PHOTO)
    jpegs = read_clip(clip)
    start = 1000.0
    frames = [(FrameHeaders(camera_id="cam-clip", seq=seq, capture_ts=start + seq / 5,
                            width=640, height=480), jpeg) for seq, jpeg in enumerate(jpegs)]

    async def run(index: WatchlistIndex) -> tuple[list[FaceEvent], dict[str, int]]:
        detector = TritonDetector(stack.triton_grpc_url)
        faces = TritonFaces(stack.triton_grpc_url)
        trackers = TrackerRegistry(TrackSettings().tracker_config(COCO_CLASSES), COCO_CLASSES)
        stage = TrackFaces(index=index, min_quality=0.5, interval_s=0.0)
        events: list[FaceEvent] = []
        counts = dict.fromkeys(("matched", "unmatched", "no_face", "not_better"), 0)
        try:
            detections = await detect_frames(detector, frames)
            for (_, jpeg), found in zip(frames, detections, strict=True):
                assert isinstance(found, Detections)
                tracks = trackers.process(found)
                assert tracks is not None
                due = stage.due(tracks)
                regions = [head_region(t.box, 640, 480) for t in due]
                results = await asyncio.gather(*(faces.infer(jpeg, r) for r in regions))
                for track, (track_faces, _, _) in zip(due, results, strict=True):
                    result = stage.consider(tracks, "site-clip", track, track_faces)
                    events += result.events
                    for key in counts:
                        counts[key] += getattr(result, key)
        finally:
            await detector.close()
            await faces.close()
        return events, counts

    async def gallery() -> np.ndarray:
        client = TritonFaces(stack.triton_grpc_url)
        try:
            return np.stack([(await client.infer((folder / n).read_bytes()))[0][0].embedding
                             for n in GALLERY])
        finally:
            await client.close()

    store = WatchlistStore(redis.Redis.from_url(stack.redis_url), os.urandom(32),
                           prefix=f"t{uuid.uuid4().hex[:8]}:")
    person = store.enroll("wanted", "CASE-G00", "G00", asyncio.run(gallery()), "video-test")
    try:
        events, counts = asyncio.run(run(store.load_index()))
    finally:
        store.remove(person.person_id, "video-test")
    photos = {sequence[e.seq // FRAMES_PER_PHOTO] for e in events}
    assert photos and photos <= set(TARGET), f"false matches: {photos - set(TARGET)}"
    assert all(e.track_id is not None and e.person_ref == "CASE-G00" for e in events)
    assert len({(e.track_id, e.person_id) for e in events}) == len(events)
    assert counts["matched"] >= 2, counts  # found on more than one photo (one event a track)
    assert counts["unmatched"] >= len(OTHERS)  # every other person was looked at
