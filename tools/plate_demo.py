"""The demo's hotlist hit: an ANPR camera sending stills, one car on a demo hotlist.

At demo start (:func:`prepare`): camera ``cam-anpr-demo`` is added to the demo topology (the
one the faces demo wrote, else the configured one) on the first site, replaying OpenALPR US
photos from ``../shared/data/plates/openalpr_us`` in place (``dir:`` source, one photo every
two seconds, in a loop, ``plates: {mode: stills}``); the child processes are given a plate key
(``ARGUS_PLATE_KEY``: the one set, else a fresh one for this run) and plate ``6HP995`` is
put on hotlist ``demo-stolen``. The plate stage reads it and the ``hotlist_vehicle`` rule
raises an alert. At the end (:meth:`PlateDemo.cleanup`) the entry is removed (audited).

Nothing here stops the demo: if the photos or Redis are missing, it says why and the demo
runs without the plate camera.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import redis

from argus.log import get_logger
from argus.plates.hotlist import KEY_ENV, PlateKeys, PlateListStore, load_plate_key
from argus.settings import Settings
from tools.demo_topology import with_camera

log = get_logger(__name__)

CAMERA_ID = "cam-anpr-demo"
LIST_ID = "demo-stolen"
PLATE = "6HP995"
PHOTOS = "[0-4]*.jpg"
"""Ten photos of the set (names are random ids), the hotlisted car among them."""


@dataclass
class PlateDemo:
    """What the demo set up, to undo at the end."""

    store: PlateListStore

    def cleanup(self) -> None:
        """Remove the demo hotlist entry (audited)."""
        try:
            self.store.remove(LIST_ID, PLATE, actor="demo")
        except redis.RedisError as exc:
            log.warning("demo hotlist entry not removed", extra={"error": str(exc)})
        finally:
            self.store.redis.close()


def add_camera(source: Path, folder: Path, path: Path) -> Path:
    """The topology at ``source`` plus the ANPR camera, written to ``path``."""
    return with_camera(source, {
        "id": CAMERA_ID, "source": f"dir:{folder / PHOTOS}", "fps": 0.5, "loop": True,
        "realtime": True, "plates": {"mode": "stills"}}, path)


def prepare(settings: Settings, out: TextIO) -> PlateDemo | None:
    """Set up the ANPR camera for the demo (see the module doc); None if it cannot."""
    folder = settings.shared / "data" / "plates" / "openalpr_us"
    own_key = not os.environ.get(KEY_ENV, "").strip()
    try:
        if not any(folder.glob(PHOTOS)):
            raise FileNotFoundError(f"no photos {folder / PHOTOS}")
        source = Path(os.environ.get("ARGUS_TOPOLOGY") or settings.topology)
        topology = add_camera(source, folder, settings.cache_dir / "demo" / "topology.yaml")
        if own_key:
            os.environ[KEY_ENV] = base64.b64encode(os.urandom(32)).decode()
        store = PlateListStore(redis.Redis.from_url(settings.redis_url),
                               PlateKeys.from_master(load_plate_key()))
        store.add(LIST_ID, "hotlist", PLATE, "demo: reported stolen", actor="demo")
    except Exception as exc:  # the demo goes on without the plate camera
        log.warning("demo plate camera not set up", extra={"error": repr(exc)})
        out.write(f"Plates: skipped ({exc}).\n")
        if own_key:
            os.environ.pop(KEY_ENV, None)  # no lists: the plate stage stays off
        return None
    os.environ["ARGUS_TOPOLOGY"] = str(topology)
    out.write(f"Plates: {PLATE} on hotlist '{LIST_ID}'; camera {CAMERA_ID} sends stills of "
              f"{folder / PHOTOS}: expect a hotlist_vehicle alert.\n")
    return PlateDemo(store)
