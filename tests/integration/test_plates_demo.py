"""The demo's ANPR camera set up on the real Redis (without the fixed-port demo): the demo
topology adds a stills plate camera over the shared photos and keeps the configured cameras,
the demo plate is on the hotlist under a key the child processes inherit, the hotlisted car
is among the photos the camera sends, and cleanup really removes the entry."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import redis

from argus.plates.hotlist import KEY_ENV, PlateKeys, PlateListStore, load_plate_key
from argus.settings import REPO_ROOT, Settings
from argus.topology import load_topology
from services.frame_grabber.source import ImageFolderCapture
from tools import plate_demo

pytestmark = pytest.mark.integration


def test_demo_plate_camera(stack: Settings, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (KEY_ENV, "ARGUS_TOPOLOGY"):  # prepare() sets both: restore them after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    settings = Settings(redis_url=stack.redis_url, cache_dir=tmp_path,
                        topology=REPO_ROOT / "config" / "topology.yaml")
    out = io.StringIO()
    demo = plate_demo.prepare(settings, out)
    assert demo is not None, out.getvalue()
    store = PlateListStore(redis.Redis.from_url(stack.redis_url),
                           PlateKeys.from_master(load_plate_key()))
    try:
        assert "6HP995 on hotlist 'demo-stolen'" in out.getvalue()
        written = Path(os.environ["ARGUS_TOPOLOGY"])
        assert written == tmp_path / "demo" / "topology.yaml"
        topology = load_topology(written, settings.shared)
        configured = load_topology(settings.topology, settings.shared)
        assert {c.id for c in topology.cameras} == {c.id for c in configured.cameras} | {
            "cam-anpr-demo"}
        camera = topology.camera("cam-anpr-demo")
        assert camera is not None and camera.plates is not None
        assert camera.plates.mode == "stills" and camera.loop
        photos = ImageFolderCapture(camera.source.removeprefix("dir:"))
        names = {p.name for p in photos.files}
        assert len(names) == 10 and "37170dd1-2802-4e38-b982-c5d07c64ff67.jpg" in names
        hit = store.match("demo-stolen", "6HP995")
        assert hit is not None and hit.entry.kind == "hotlist"
    finally:
        demo.cleanup()
    assert store.match("demo-stolen", "6HP995") is None
