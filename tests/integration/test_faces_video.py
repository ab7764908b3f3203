"""Real-video check: enroll one person from two photos, find them in a clip, nobody else.

There is no licensed video of known faces in the shared data, so the clip is assembled from
the deepface photos: each photo letterboxed to 640x480 and held for two frames, written as
an MJPG AVI, read back with OpenCV and JPEG-encoded as the frame grabber does. Every frame
goes through Triton's ``faces`` model and the faces stage with the list's default threshold.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from argus.settings import Settings
from argus.watchlist import DEFAULT_THRESHOLD, WatchlistStore
from pipelines.faces import DetectedFace, FaceStage, TritonFaces

pytestmark = pytest.mark.integration

GALLERY = ("img1.jpg", "img2.jpg")  # identity G00 in identities_derived.csv
TARGET = ("img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg", "img10.jpg", "img11.jpg")
OTHERS = ("img26.jpg", "img28.jpg", "img8.jpg", "img3.jpg", "img16.jpg", "img13.jpg",
          "img29.jpg", "img38.jpg", "img34.jpg", "img18.jpg", "img20.jpg", "img22.jpg",
          "img24.jpg", "selfie-many-people.jpg")  # every other identity, the closest twice
FRAMES_PER_PHOTO = 2


def letterbox(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return canvas


def assemble_clip(folder: Path, photos: tuple[str, ...], path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (640, 480))
    assert writer.isOpened()
    for name in photos:
        image = cv2.imread(str(folder / name))
        assert image is not None, name
        frame = letterbox(image)
        for _ in range(FRAMES_PER_PHOTO):
            writer.write(frame)
    writer.release()


def read_clip(path: Path) -> list[bytes]:
    capture = cv2.VideoCapture(str(path))
    jpegs = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        jpegs.append(bytes(encoded.tobytes()))
    capture.release()
    return jpegs


def test_enrolled_person_is_found_in_a_clip_and_nobody_else(stack: Settings,
                                                           tmp_path: Path) -> None:
    folder = stack.shared / "data" / "faces" / "deepface"
    clip = tmp_path / "clip.avi"
    sequence = TARGET + OTHERS
    assemble_clip(folder, sequence, clip)
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
    store.enroll("wanted", "CASE-G00", "G00", np.stack([f[0].embedding for f in gallery_faces]),
                 "video-test")
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
    store.remove(store.persons()[0].person_id, "video-test")
