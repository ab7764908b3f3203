"""``argus eval mot``: multi-object tracking accuracy of the detector + tracker path.

    argus eval mot --video FILE --gt GT.txt [--gt-scale S] [--frames A-B] [--fps N]
                   [--json PATH] [--pipeline | --offline] [--roi auto|none|x,y;x,y;...]

* ``--pipeline`` (default): the REAL path on isolated topics, as ``argus bench`` does —
  the frame grabber reads the video (as fast as it can) → ``frames.raw`` → a worker
  subprocess (``python -m pipelines``: detect via Triton, then the track stage) →
  ``tracks``, which this command reads.
* ``--offline``: the same model code and tracker in this process (JPEG at the grabber's
  quality → ``yolox.py`` with the Triton config's parameters → ``TrackerRegistry``): no
  servers, for quick tuning. Tracker settings come from ``ARGUS_TRACK_*`` in both modes.

The ground truth is MOTChallenge ``gt.txt`` (frame, id, x, y, w, h, conf, ...; rows with
conf 0 are ignored) in pixels of the video times ``--gt-scale``. Hypotheses are the
``confirmed`` person tracks (``--class``) of each frame; matching is IoU >= 0.5 with
``motmetrics``. Two rows are reported: every box, and (``--roi``) only boxes whose foot
point lies in the region the ground truth annotates (``auto``: the convex hull of all
ground-truth foot points, slightly enlarged) — annotations often cover a tracking area
only, and people outside it would count as false positives. Frames after the last
annotated one are reported as track statistics (tracks per frame, distinct ids, track
lengths), next to the same figures on the annotated frames, to check that behaviour holds
where there is no ground truth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import motmetrics as mm
import numpy as np
from kafka import KafkaConsumer

from argus.log import setup_logging
from argus.modelcode import load_yolox_module, triton_parameters
from argus.settings import Settings, get_settings
from pipelines.stages.track.tracker import iou_matrix
from schemas.tracks import Tracks
from tools import stack
from tools.bench import machine

GtRows = dict[int, list[tuple[int, np.ndarray]]]
Polygon = list[tuple[float, float]]
METRICS = ["mota", "motp", "idf1", "precision", "recall", "num_switches", "mostly_tracked",
           "partially_tracked", "mostly_lost", "num_false_positives", "num_misses",
           "num_fragmentations", "num_objects", "num_unique_objects"]


def load_gt(path: Path, scale: float = 1.0) -> GtRows:
    """``gt.txt`` → frame (1-based) → [(id, x1 y1 x2 y2 in video pixels)]; conf 0 ignored."""
    rows: GtRows = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        f, pid, x, y, w, h, conf = (float(v) for v in line.split(",")[:7])
        if conf != 0:
            rows[int(f)].append((int(pid), np.array([x, y, x + w, y + h]) * scale))
    return dict(rows)


def parse_frames(text: str) -> tuple[int, int]:
    """``"A-B"`` → (A, B), 1-based and inclusive."""
    first, _, last = text.partition("-")
    a, b = int(first), int(last or first)
    if a < 1 or b < a:
        raise argparse.ArgumentTypeError(f"bad frame range {text!r} (want A-B, 1 <= A <= B)")
    return a, b


def foot_hull(gt: GtRows, width: int, height: int, grow: float = 1.05) -> Polygon:
    """The convex hull of the ground-truth foot points (bottom centres), normalised and
    enlarged by ``grow`` around its centre: the area the annotation covers."""
    feet = np.array([((b[0] + b[2]) / 2, b[3]) for rows in gt.values() for _, b in rows],
                    dtype=np.float32)
    hull = cv2.convexHull(feet).reshape(-1, 2)
    centre = hull.mean(axis=0)
    return [(float(x), float(y)) for x, y in ((hull - centre) * grow + centre) / [width, height]]


def inside(point: tuple[float, float], polygon: Polygon) -> bool:
    contour = np.array(polygon, dtype=np.float32).reshape(-1, 1, 2)
    return bool(cv2.pointPolygonTest(contour, point, False) >= 0)


def hypotheses(message: Tracks, class_name: str, roi: Polygon | None,
               ) -> list[tuple[int, np.ndarray]]:
    """Confirmed tracks of the class (in the ROI): [(track id, normalised x1 y1 x2 y2)]."""
    out = []
    for t in message.confirmed():
        if t.class_name != class_name:
            continue
        if roi is not None and not inside(((t.box.x1 + t.box.x2) / 2, t.box.y2), roi):
            continue
        out.append((t.track_id, np.array([t.box.x1, t.box.y1, t.box.x2, t.box.y2])))
    return out


def score(gt: GtRows, tracks: dict[int, Tracks], frame_of_seq: dict[int, int],
          class_name: str, roi: Polygon | None) -> dict[str, float]:
    """CLEAR-MOT and identity metrics over the annotated frames that were sampled."""
    acc = mm.MOTAccumulator(auto_id=True)
    for seq, frame in sorted(frame_of_seq.items()):
        message = tracks.get(seq)
        truth = gt.get(frame, [])
        hyp = hypotheses(message, class_name, roi) if message is not None else []
        if message is not None:
            scale = np.array([message.width, message.height] * 2, dtype=float)
            hyp = [(tid, box * scale) for tid, box in hyp]
        dist = 1.0 - iou_matrix(np.array([b for _, b in truth]).reshape(-1, 4),
                                np.array([b for _, b in hyp]).reshape(-1, 4))
        dist[dist > 0.5] = np.nan  # IoU < 0.5: no match
        acc.update([pid for pid, _ in truth], [tid for tid, _ in hyp], dist)
    summary = mm.metrics.create().compute(acc, metrics=METRICS, name="all")
    return {k: round(float(v), 4) for k, v in summary.iloc[0].to_dict().items()}


def track_stats(tracks: dict[int, Tracks], seqs: list[int], class_name: str,
                roi: Polygon | None) -> dict[str, float]:
    """Behaviour without ground truth: tracks per frame, distinct ids, track lengths."""
    lengths: dict[int, int] = defaultdict(int)
    counts = []
    for seq in seqs:
        hyp = hypotheses(tracks[seq], class_name, roi) if seq in tracks else []
        counts.append(len(hyp))
        for tid, _ in hyp:
            lengths[tid] += 1
    span = list(lengths.values()) or [0]
    return {"frames": len(seqs), "tracks_per_frame": round(float(np.mean(counts or [0])), 3),
            "distinct_ids": len(lengths),
            "ids_per_100_frames": round(100 * len(lengths) / max(1, len(seqs)), 2),
            "median_track_frames": float(np.median(span)), "max_track_frames": max(span)}


def sampled_frames(video: Path, fps: float | None, last: int) -> tuple[dict[int, int], float]:
    """seq → 1-based frame number for the frames the grabber keeps (up to ``last``), as its
    ``FrameSampler`` decides, and the camera fps to configure."""
    from services.frame_grabber.source import FrameSampler

    cap = cv2.VideoCapture(str(video))
    source = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
    cap.release()
    target = fps or source or 10.0
    sampler = FrameSampler(source, target)
    kept = [i for i in range(last) if sampler.keep(i, float(i))]
    return {seq: i + 1 for seq, i in enumerate(kept)}, target


def run_offline(base: Settings, video: Path, frame_of_seq: dict[int, int], fps: float,
                params: dict[str, str], jpeg_quality: int = 85) -> dict[int, Tracks]:
    """Decode → JPEG → the detector's own code (with the Triton config's ``params``) → the
    track stage's registry, in process."""
    from argus.inference.detector import COCO_CLASSES, to_detections
    from argus.inference.reid import LocalReid, ReidSchedule, attach_embeddings
    from pipelines.stages.detect.stage import DetectSettings
    from pipelines.stages.track.registry import TrackerRegistry, TrackSettings
    from schemas.frames import FrameHeaders

    runner = load_yolox_module().DetectorRunner.configured(
        str(base.models_dir / params.get("model_file", "yolox_nano.onnx")), params)
    reid = LocalReid(base.models_dir, params)
    schedule = ReidSchedule(DetectSettings().reid_interval_s)  # as the detect stage does
    track_settings = TrackSettings()
    registry = TrackerRegistry(track_settings.tracker_config(COCO_CLASSES), COCO_CLASSES)
    wanted = {frame - 1: seq for seq, frame in frame_of_seq.items()}
    cap = cv2.VideoCapture(str(video))
    out: dict[int, Tracks] = {}
    index, t0 = 0, 1_700_000_000.0
    while index <= max(wanted):
        ok, image = cap.read()
        if not ok:
            break
        seq = wanted.get(index)
        index += 1
        if seq is None:
            continue
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        boxes, scores, classes, (w, h) = runner.detect_jpeg(jpeg.tobytes())
        meta = FrameHeaders(camera_id="eval-cam", seq=seq, capture_ts=t0 + seq / fps,
                            width=w, height=h)
        detections = to_detections(meta, boxes, scores, classes, 0.0)
        if reid.runner is not None:
            full = schedule.due(meta.camera_id, meta.capture_ts)
            codes = reid.codes(jpeg.tobytes(), boxes, scores, classes, near_only=not full)
            detections = attach_embeddings(detections, classes, codes, reid.name)
        message = registry.process(detections)
        if message is not None:
            out[seq] = message
    cap.release()
    if reid.runner is not None:
        sys.stderr.write(f"re-id: {1000 * reid.seconds / max(1, len(out)):.1f} ms per frame\n")
    return out


def detector_parameters() -> dict[str, str]:
    """The ``parameters`` of the detector's Triton config (key → string value)."""
    return triton_parameters("detector")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_pipeline(base: Settings, video: Path, frame_of_seq: dict[int, int], fps: float,
                 timeout_s: float = 600.0) -> dict[int, Tracks]:
    """Grabber → Kafka → worker (detect on Triton, track) → ``tracks``, isolated topics."""
    from argus.topology import load_topology
    from services.frame_grabber.grabber import FrameGrabber

    workdir = Path(tempfile.mkdtemp(prefix="argus-eval-mot-"))
    topology_path = workdir / "topology.yaml"
    topology_path.write_text(
        "sites: [{id: eval, lat: 0, lon: 0, zones: [{id: all}]}]\n"
        f"cameras:\n  - {{id: eval-cam, site: eval, source: '{video}', fps: {fps},\n"
        "      realtime: false, jpeg_quality: 85}\n")
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topic_prefix": f"evalmot-{tag}.",
                                       "app_id": f"argus-evalmot-{tag}",
                                       "topology": topology_path})
    stack.create_topics(settings)
    port = _free_port()
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - closed below
    # detect + track only, every frame of the fast replay detected (no stale skipping)
    worker = subprocess.Popen([sys.executable, "-m", "pipelines", "--metrics-port", str(port),
                               "--stages", "detect,track"], cwd=workdir,
                              env={**os.environ, **settings.to_env(),
                                   "ARGUS_DETECT_MAX_AGE_S": "0"},
                              stdout=log, stderr=subprocess.STDOUT)
    consumer = KafkaConsumer(settings.topic("tracks"), bootstrap_servers=base.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None)
    out: dict[int, Tracks] = {}
    last_seq, ok = max(frame_of_seq), False
    try:
        _wait_healthy(port, worker, workdir)
        camera = load_topology(topology_path, settings.shared).cameras[0]
        # a buffer for every frame: the grabber outpaces the detector, and a dropped frame
        # would count as missed people, not as a tracking error
        grabber = FrameGrabber([camera], settings, buffer_size=len(frame_of_seq) + 32)
        grabber.start()
        deadline = time.monotonic() + timeout_s
        while last_seq not in out and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited; see {workdir / 'worker.log'}")
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    message = Tracks.model_validate_json(record.value)
                    if message.seq in frame_of_seq:
                        out.setdefault(message.seq, message)
        grabber.stop()
        dropped = grabber.workers["eval-cam"].stats()["dropped"]
        if dropped:
            sys.stderr.write(f"warning: the grabber dropped {dropped} frames\n")
        if last_seq not in out:
            raise RuntimeError(f"only {len(out)}/{len(frame_of_seq)} frames were tracked in "
                               f"{timeout_s:.0f} s; see {workdir / 'worker.log'}")
        ok = True
        return out
    finally:
        consumer.close()
        worker.terminate()  # its topics are throw-away: no need for a slow, clean stop
        try:
            worker.wait(5)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
        with contextlib.suppress(Exception):
            stack.delete_topics(settings)
        if ok:  # keep the worker's log (and faust's data dir) only when something failed
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_healthy(port: int, worker: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited; see {workdir / 'worker.log'}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the worker did not answer /healthz within 60 s")


def parse_roi(text: str, gt: GtRows, width: int, height: int) -> Polygon | None:
    if text == "none":
        return None
    if text == "auto":
        return foot_hull(gt, width, height)
    return [(float(x), float(y)) for x, y in (p.split(",") for p in text.split(";"))]


def render_table(result: dict[str, Any]) -> str:
    """The metrics as an aligned text table (one row per area)."""
    cols = ["mota", "idf1", "precision", "recall", "num_switches", "mostly_tracked",
            "mostly_lost", "num_false_positives", "num_misses"]
    heads = ["area", "MOTA", "IDF1", "precision", "recall", "ID sw", "MT", "ML", "FP", "FN"]
    rows = [heads] + [[area] + [f"{m[c]:.3f}" if c in ("mota", "idf1", "precision", "recall")
                                else str(int(m[c])) for c in cols]
                      for area, m in result["metrics"].items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                     for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus eval mot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--gt", type=Path, required=True, help="MOTChallenge gt.txt")
    parser.add_argument("--gt-scale", type=float, default=1.0,
                        help="multiply ground-truth coordinates by this (to video pixels)")
    parser.add_argument("--frames", type=parse_frames, default=None,
                        help="A-B, 1-based inclusive (default: the annotated frames)")
    parser.add_argument("--fps", type=float, default=None,
                        help="sample the video at this rate (default: its own)")
    parser.add_argument("--class", dest="class_name", default="person")
    parser.add_argument("--roi", default="auto", help="auto | none | x,y;x,y;... normalised")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--detector-param", action="append", default=[], metavar="KEY=VALUE",
                        help="--offline only: override a detector config.pbtxt parameter "
                             "(e.g. tiles=2x2)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--pipeline", dest="offline", action="store_false", default=False)
    mode.add_argument("--offline", dest="offline", action="store_true")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    base = get_settings()
    gt = load_gt(args.gt, args.gt_scale)
    first, last = args.frames or (min(gt), max(gt))
    frame_of_seq, fps = sampled_frames(args.video, args.fps, last)
    frame_of_seq = {s: f for s, f in frame_of_seq.items() if f >= first}
    cap = cv2.VideoCapture(str(args.video))
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    roi = parse_roi(args.roi, gt, width, height)
    params = detector_parameters()
    if args.detector_param and not args.offline:
        parser.error("--detector-param needs --offline (Triton serves its own config)")
    params.update(p.split("=", 1) for p in args.detector_param)
    started = time.perf_counter()
    if args.offline:
        tracks = run_offline(base, args.video, frame_of_seq, fps, params)
    else:
        stack.up(base)
        tracks = run_pipeline(base, args.video, frame_of_seq, fps)
    seconds = time.perf_counter() - started
    annotated = {s: f for s, f in frame_of_seq.items() if f <= max(gt)}
    unlabelled = sorted(s for s, f in frame_of_seq.items() if f > max(gt))
    areas = {"all boxes": None, **({"annotated area": roi} if roi is not None else {})}
    metrics = {name: score(gt, tracks, annotated, args.class_name, area)
               for name, area in areas.items()}
    stats = {name: {"annotated frames": track_stats(tracks, sorted(annotated), args.class_name,
                                                    area),
                    "unlabelled frames": track_stats(tracks, unlabelled, args.class_name, area)}
             for name, area in areas.items()}
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(),
        "mode": "offline" if args.offline else "pipeline", "video": args.video.name,
        "gt": args.gt.name, "frames": [first, last], "fps": fps,
        "frames_evaluated": len(annotated), "seconds": round(seconds, 2),
        "roi": roi, "detector": params,
        "tracker": {k: v for k, v in os.environ.items() if k.startswith("ARGUS_TRACK_")},
        "metrics": metrics,
        "track_stats": stats,
    }
    text = json.dumps(result, indent=2)
    sys.stdout.write(render_table(result) + "\n" + text + "\n")
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
