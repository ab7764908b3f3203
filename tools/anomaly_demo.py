"""The demo's object anomaly: a cyclist crossing a car park where the camera's normal
footage shows a pedestrian.

At demo start (:func:`prepare`): 24 s of ``../shared/data/videos/person-bicycle-car-detection.mp4``
(4.0-28.0 s of the file: no car; a cyclist crosses from 8.2 to 13.9 s, a pedestrian from
24.5 s) are cut into the git-ignored cache (``<cache>/demo/walkway-<hash>.avi``, MJPEG at
the file's 12 fps); camera ``cam-walkway`` is added to the demo topology (the one the other
demos wrote, else the configured one) replaying it in a loop at 5 fps, with the tracker
thresholds of the object method (``tracking``: 0.3, new tracks at 0.4; docs/anomaly.md);
its object model is trained once, if its file is missing or was trained on something else,
on the pedestrian's crossing (20-24 s of the cut: 19 frames at 5 fps, sampled as the
grabber publishes them, the tracker running from the cut's start so that tracks carry on as
they do live) and written to ``<models dir>/anomaly/cam-walkway.json``; the child processes
run both anomaly methods (``ARGUS_ANOMALY_METHOD=flow,objects``: each scores the cameras that
have a model of its kind). The ``anomaly_objects`` stage then flags the cyclist ("bicycle
#N: class seen in 0 of M normal objects") and the ``scene_anomaly`` rule raises an alert.

What "normal" is here was chosen by looking at the footage, not by the detector: the file
has no pedestrian-only stretch before the first cyclist (a car drives through from 0 to
3.7 s, the cyclist enters at 8.2 s, the pedestrian only at 24.5 s, a second cyclist at
28.4 s and a car at 29.8 s), and the demo replays its own training footage, so it shows the
method working end to end, not how well it generalises (docs/anomaly.md has that).

Nothing here stops the demo: if the video, the detector model or the folders are missing,
it says why and the demo runs without the walkway camera.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

from argus.log import get_logger
from argus.settings import Settings
from pipelines.stages.anomaly.agent import AnomalySettings
from tools.demo_topology import with_camera
from tools.train_anomaly_objects import TrackParams, train_video
from tools.video_frames import cut_clip

log = get_logger(__name__)

CAMERA_ID = "cam-walkway"
VIDEO = Path("data") / "videos" / "person-bicycle-car-detection.mp4"
CUT_S = (4.0, 28.0)
"""The replayed part of the file (seconds): no car in it."""
NORMAL_S = (20.0, 24.0)
"""The training frames, in the cut's seconds (24.0-28.0 s of the file): the pedestrian."""
FPS = 5.0
TRACKING = {"default_threshold": 0.3, "new_track_margin": 0.1}
"""The camera's tracker thresholds, the object method's (TrackParams' defaults)."""


def model_folder(settings: Settings) -> Path:
    """Where the ``anomaly_objects`` stage looks for camera models."""
    return Path(AnomalySettings().objects_dir or settings.models_dir / "anomaly")


def cached_model_fits(path: Path, clip: Path) -> bool:
    """Whether the model file at ``path`` was trained by this demo's recipe on ``clip``."""
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["info"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    source = info.get("source")
    return (isinstance(source, dict) and source.get("video") == str(clip)
            and source.get("end_s") == NORMAL_S[1] and info.get("tracker") == TRACKING)


def train(clip: Path, out: Path) -> float:
    """Train the camera's object model on the pedestrian (see the module doc); seconds."""
    started = time.perf_counter()
    track = TrackParams(fps=FPS, threshold=TRACKING["default_threshold"],
                        new_track_margin=TRACKING["new_track_margin"])
    train_video(clip, out, track, start_s=0.0, end_s=NORMAL_S[1],
                exclude=[(0.0, NORMAL_S[0])])
    return time.perf_counter() - started


def methods_with_objects(current: str) -> str:
    """``ARGUS_ANOMALY_METHOD`` with the object method added.

    >>> methods_with_objects(""), methods_with_objects("objects")
    ('flow,objects', 'objects')
    """
    names = {m.strip() for m in (current or "flow").split(",") if m.strip()}
    return ",".join(m for m in ("flow", "objects") if m in names | {"objects"})


def prepare(settings: Settings, out: TextIO) -> Path | None:
    """Set up the walkway camera for the demo (see the module doc); its model file, or None
    if it cannot."""
    source = settings.shared / VIDEO
    work = settings.cache_dir / "demo"
    try:
        if not source.is_file():
            raise FileNotFoundError(f"no video {source}")
        recipe = hashlib.sha1(repr((CUT_S, source.stat().st_size)).encode()).hexdigest()
        clip = work / f"walkway-{recipe[:8]}.avi"  # cut again when the recipe changes
        if not clip.is_file():
            cut_clip(source, clip, *CUT_S)
        model = model_folder(settings) / f"{CAMERA_ID}.json"
        trained = ""
        if not cached_model_fits(model, clip):
            trained = f" (trained in {train(clip, model):.1f} s)"
        topology = with_camera(
            Path(os.environ.get("ARGUS_TOPOLOGY") or settings.topology),
            {"id": CAMERA_ID, "source": str(clip), "fps": FPS, "loop": True,
             "realtime": True, "jpeg_quality": 85, "tracking": TRACKING},
            work / "topology.yaml")
    except Exception as exc:  # the demo goes on without the walkway camera
        log.warning("demo anomaly camera not set up", extra={"error": repr(exc)})
        out.write(f"Anomaly: skipped ({exc}).\n")
        return None
    os.environ["ARGUS_TOPOLOGY"] = str(topology)
    os.environ["ARGUS_ANOMALY_METHOD"] = methods_with_objects(
        os.environ.get("ARGUS_ANOMALY_METHOD", ""))
    out.write(f"Anomaly: camera {CAMERA_ID} replays {clip} (in a loop: a cyclist, "
              f"then a pedestrian); "
              f"object model {model}{trained}, normal = the pedestrian: expect a "
              "scene_anomaly alert naming a bicycle.\n")
    return model
