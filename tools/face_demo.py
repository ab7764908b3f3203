"""The demo's watchlist hit: a camera that replays faces, one of them enrolled.

At demo start (:func:`prepare`): a clip is assembled from the deepface photos into the
git-ignored cache (``<cache>/demo/faces-clip-<hash>.avi``: identity G00's other photos between
photos of other people), a demo topology is written next to it (the configured topology plus
camera ``cam-faces-demo`` on the first site, replaying the clip in a loop), the child
processes are pointed at it (``ARGUS_TOPOLOGY``) and given a watchlist key
(``ARGUS_FACE_KEY``: the one set, else a fresh one for this run), and G00 is enrolled on
list ``demo`` from two photos that are not in the clip. The stream workers then find G00 on
the camera and the ``watchlist_face`` rule raises an alert. At the end (:meth:`FaceDemo.
cleanup`) the entry is removed (audited), so no demo face stays enrolled.

Nothing here stops the demo: if the photos, Triton or Redis are missing, it says why and
the demo runs without the faces camera.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import redis

from argus.log import get_logger
from argus.settings import Settings
from argus.watchlist.photos import embed_photos
from argus.watchlist.store import KEY_ENV, Person, WatchlistError, WatchlistStore, load_key
from tools.demo_topology import with_camera
from tools.face_clip import assemble_clip

log = get_logger(__name__)

CAMERA_ID = "cam-faces-demo"
LIST_ID = "demo"
REFERENCE = "DEMO-G00"
GALLERY = ("img1.jpg", "img2.jpg")  # identity G00 (identities_derived.csv): enrolled
CLIP = ("img26.jpg", "img4.jpg", "img8.jpg", "img5.jpg", "img3.jpg", "img6.jpg", "img16.jpg",
        "img7.jpg")  # G00's other photos between four other people
CLIP_FPS = 5.0
SECONDS_PER_PHOTO = 4


@dataclass
class FaceDemo:
    """What the demo set up, to undo at the end."""

    store: WatchlistStore
    person: Person
    topology: Path
    clip: Path

    def cleanup(self) -> None:
        """Remove the demo entry (Redis and every worker's index; audited)."""
        try:
            self.store.remove(self.person.person_id, actor="demo")
        except redis.RedisError as exc:
            log.warning("demo watchlist entry not removed", extra={"error": str(exc)})
        finally:
            self.store.redis.close()


def demo_topology(settings: Settings, clip: Path, path: Path) -> Path:
    """The configured topology plus the faces camera, written to ``path``."""
    return with_camera(settings.topology, {
        "id": CAMERA_ID, "source": str(clip), "fps": 2, "loop": True, "realtime": True,
        "jpeg_quality": 85}, path)


def enroll(settings: Settings, store: WatchlistStore, folder: Path) -> Person:
    """Enroll G00 from the gallery photos (a leftover demo entry is replaced)."""
    old = store.find(LIST_ID, REFERENCE)
    if old is not None:
        store.remove(old.person_id, actor="demo")

    async def embed() -> list[np.ndarray]:
        from argus.inference.faces import TritonFaces

        client = TritonFaces(settings.triton_grpc_url, timeout_s=120.0)
        try:
            accepted, refused = await embed_photos(
                [(n, (folder / n).read_bytes()) for n in GALLERY], client)
        finally:
            await client.close()
        if refused:
            raise WatchlistError("; ".join(refused))
        return accepted

    return store.enroll(LIST_ID, REFERENCE, "G00 (demo identity)", np.stack(asyncio.run(embed())),
                        actor="demo", category="wanted")


def prepare(settings: Settings, out: TextIO) -> FaceDemo | None:
    """Set up the watchlist camera for the demo (see the module doc); None if it cannot."""
    folder = settings.shared / "data" / "faces" / "deepface"
    work = settings.cache_dir / "demo"
    own_key = not os.environ.get(KEY_ENV, "").strip()
    try:
        recipe = hashlib.sha1(repr((CLIP, SECONDS_PER_PHOTO, CLIP_FPS)).encode()).hexdigest()
        clip = work / f"faces-clip-{recipe[:8]}.avi"  # rebuilt when the recipe changes
        if not clip.is_file():
            assemble_clip(folder, CLIP, clip, int(SECONDS_PER_PHOTO * CLIP_FPS), CLIP_FPS)
        topology = demo_topology(settings, clip, work / "topology.yaml")
        if own_key:
            os.environ[KEY_ENV] = base64.b64encode(os.urandom(32)).decode()
        store = WatchlistStore(redis.Redis.from_url(settings.redis_url), load_key())
        person = enroll(settings, store, folder)
    except Exception as exc:  # the demo goes on without the faces camera
        log.warning("demo faces camera not set up", extra={"error": repr(exc)})
        out.write(f"Faces: skipped ({exc}).\n")
        if own_key:
            os.environ.pop(KEY_ENV, None)  # no watchlist: the faces stage stays off
        return None
    os.environ["ARGUS_TOPOLOGY"] = str(topology)
    out.write(f"Faces: {REFERENCE} enrolled on watchlist '{LIST_ID}' from {', '.join(GALLERY)}; "
              f"camera {CAMERA_ID} replays {clip} (their other photos among others): "
              "expect a watchlist_face alert.\n")
    return FaceDemo(store, person, topology, clip)
