"""``argus eval fall``: does the person-down event fire on a labelled fall video, and when?

    argus eval fall --video fall-01-cam0.mp4 --labels urfall-cam0-falls.csv
                    [--sequence fall-01] [--half right|left|none] [--json PATH]
                    [--no-pose] [--pose-bench N]

The path is the stage's own code on the real Triton server: each frame (the RGB half of a
URFD frame, JPEG at the grabber's default quality) → Triton ``detector``
(:func:`argus.inference.detector.detect_frames`) → the per-camera tracker
(:class:`pipelines.stages.track.registry.TrackerRegistry`, thresholds from ``ARGUS_TRACK_*``) →
:class:`pipelines.stages.behaviour.fall.FallDetector`, confirming candidates with the Triton
``pose`` model on the frame's JPEG (an in-memory stand-in for the Redis frame cache).

Labels are the URFD per-frame CSV (``sequence,frame,label,...``; label -1 not lying,
0 falling, 1 lying; frames 1-based). Reported: every ``fall`` event with its frame, label
and seconds after the fall onset (the first frame labelled 0), whether the fall was
detected (an event in a falling/lying frame), and false fires (events in not-lying frames),
as a table and JSON. ``--pose-bench N`` also times N pose calls through Triton, one at a
time and N at once (the dynamic batcher groups them).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from argus.inference.detector import COCO_CLASSES, TritonDetector, detect_frames
from argus.inference.pose import Keypoints, TritonPose
from argus.inference.triton import Rejected
from argus.log import setup_logging
from argus.settings import get_settings
from argus.topology import Camera
from pipelines.stages.behaviour.fall import FallConfig, FallDetector
from pipelines.stages.track.registry import TrackerRegistry, TrackSettings
from schemas.detections import Box
from schemas.events import VideoEvent
from schemas.frames import FrameHeaders
from tools import stack
from tools.bench import machine

CAMERA = "urfd-cam0"
START_TS = 1_795_000_000.0
JPEG_QUALITY = 85
BATCH = 8
LABEL_NAMES = {-1: "not lying", 0: "falling", 1: "lying"}


def load_labels(path: Path, sequence: str) -> dict[int, int]:
    """URFD labels of one sequence: frame (1-based) → -1 not lying, 0 falling, 1 lying."""
    labels: dict[int, int] = {}
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) >= 3 and row[0].strip() == sequence:
                labels[int(row[1])] = int(row[2])
    if not labels:
        raise ValueError(f"{path}: no rows for sequence {sequence!r}")
    return labels


def sequence_name(video: Path) -> str:
    """``fall-01-cam0.mp4`` → ``fall-01`` (the CSV's sequence column)."""
    stem = video.stem
    return stem.rsplit("-cam", 1)[0] if "-cam" in stem else stem


def read_frames(video: Path, half: str) -> tuple[list[bytes], float, int, int]:
    """Every frame as JPEG (only the ``half`` of a side-by-side frame), the video's frame
    rate, and the JPEG width and height."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {video}")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    jpegs: list[bytes] = []
    width = height = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        middle = image.shape[1] // 2
        image = {"right": image[:, middle:], "left": image[:, :middle]}.get(half, image)
        height, width = image.shape[:2]
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        jpegs.append(jpeg.tobytes())
    cap.release()
    return jpegs, fps, width, height


class TimedPose:
    """``TritonPose.infer`` as a ``FallDetector`` pose callable, keeping each latency."""

    def __init__(self, client: TritonPose) -> None:
        self.client = client
        self.latencies_ms: list[float] = []

    async def __call__(self, jpeg: bytes, box: Box) -> Keypoints:
        keypoints, ms = await self.client.infer(jpeg, box)
        self.latencies_ms.append(ms)
        return keypoints


def latency_summary(values: list[float]) -> dict[str, float]:
    """Count, mean, median and 95th percentile (ms)."""
    if not values:
        return {"calls": 0}
    ordered = sorted(values)
    return {"calls": len(values), "mean_ms": round(statistics.fmean(values), 2),
            "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)}


async def pose_benchmark(client: TritonPose, items: list[tuple[bytes, Box]], n: int,
                         ) -> dict[str, Any]:
    """N pose calls one at a time, then N at once: latency per call and calls per second."""
    await client.infer(*items[0])  # warm-up
    sequential = []
    for i in range(n):
        _, ms = await client.infer(*items[i % len(items)])
        sequential.append(ms)
    started = time.perf_counter()
    results = await asyncio.gather(*(client.infer(*items[i % len(items)]) for i in range(n)))
    seconds = time.perf_counter() - started
    return {"sequential": latency_summary(sequential),
            "concurrent": {**latency_summary([ms for _, ms in results]),
                           "calls_per_s": round(n / seconds, 1)}}


async def run(video: Path, labels: dict[int, int], half: str, config: FallConfig,
              pose_bench: int) -> dict[str, Any]:
    """Detect, track and run the fall detector over the video; the raw results."""
    settings = get_settings()
    jpegs, fps, width, height = read_frames(video, half)
    metas = [FrameHeaders(camera_id=CAMERA, seq=i + 1, capture_ts=START_TS + i / fps,
                          width=width, height=height) for i in range(len(jpegs))]
    detector = TritonDetector(settings.triton_grpc_url)
    pose_client = TritonPose(settings.triton_grpc_url)
    timed = TimedPose(pose_client)
    cache = {meta.seq: jpeg for meta, jpeg in zip(metas, jpegs, strict=True)}

    async def frame_loader(camera_id: str, seq: int) -> bytes | None:
        return cache.get(seq) if camera_id == CAMERA else None

    async def snapshot_ref(camera_id: str, seq: int, event_id: str) -> str | None:
        return f"eval:{event_id}"

    fall = FallDetector(Camera(id=CAMERA, site="urfd", source=str(video)), config,
                        pose=timed, frame_loader=frame_loader, snapshot_ref=snapshot_ref)
    registry = TrackerRegistry(TrackSettings().tracker_config(COCO_CLASSES), COCO_CLASSES)
    events: list[VideoEvent] = []
    person_boxes: list[tuple[bytes, Box]] = []
    person_frames = 0
    started = time.perf_counter()
    try:
        for start in range(0, len(jpegs), BATCH):
            batch = list(zip(metas[start:start + BATCH], jpegs[start:start + BATCH],
                             strict=True))
            for (meta, jpeg), found in zip(batch, await detect_frames(detector, batch),
                                           strict=True):
                if isinstance(found, Rejected):
                    raise RuntimeError(f"frame {meta.seq} rejected: {found}")
                tracks = registry.process(found)
                if tracks is None:
                    continue
                people = [t for t in tracks.confirmed() if t.class_name == "person"]
                person_frames += bool(people)
                if people and len(person_boxes) < 32:
                    person_boxes.append((jpeg, people[0].box))
                events.extend(await fall.process(tracks))
        seconds = time.perf_counter() - started
        bench = (await pose_benchmark(pose_client, person_boxes, pose_bench)
                 if pose_bench > 0 and person_boxes else None)
    finally:
        await detector.close()
        await pose_client.close()
    return {"fps": fps, "width": width, "height": height, "frames": len(jpegs),
            "events": events, "stats": fall.stats, "person_frames": person_frames,
            "seconds": seconds, "pose_calls": latency_summary(timed.latencies_ms),
            "pose_bench": bench}


def score(events: list[VideoEvent], labels: dict[int, int], fps: float) -> dict[str, Any]:
    """Each event against the labels; detection, delay after onset and false fires."""
    onset = min((f for f, v in labels.items() if v >= 0), default=None)
    lying = min((f for f, v in labels.items() if v == 1), default=None)
    rows = []
    for event in events:
        label = labels.get(event.seq)
        rows.append({
            "frame": event.seq, "label": label, "label_name": LABEL_NAMES.get(label, "?")
            if label is not None else "unlabelled",
            "seconds_after_onset": None if onset is None
            else round((event.seq - onset) / fps, 3),
            "track_id": event.attributes.get("track_id"),
            "torso_angle": event.attributes.get("torso_angle"),
            "confidence": event.score, "phase": event.attributes.get("phase"),
            "trigger": event.attributes.get("trigger"),
            "snapshot": event.snapshot_ref})
    hits = [r for r in rows if r["label"] in (0, 1)]
    return {
        "fall_onset_frame": onset, "lying_onset_frame": lying,
        "labelled_frames": {name: sum(1 for v in labels.values() if v == value)
                            for value, name in LABEL_NAMES.items()},
        "events": rows, "detected": bool(hits),
        "first_event_frame": hits[0]["frame"] if hits else None,
        "delay_s": hits[0]["seconds_after_onset"] if hits else None,
        "false_fires": sum(1 for r in rows if r["label"] == -1),
    }


def render_table(result: dict[str, Any]) -> str:
    """The events and the verdict as aligned text."""
    heads = ["frame", "label", "s after onset", "track", "torso°", "conf", "phase", "trigger"]
    rows = [heads] + [[str(e["frame"]), e["label_name"], str(e["seconds_after_onset"]),
                       str(e["track_id"]), str(e["torso_angle"]), f"{e['confidence']:.2f}",
                       str(e["phase"]), str(e["trigger"])] for e in result["events"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if not result["events"]:
        lines.append("(no fall event)")
    lines.append(
        f"{result['sequence']}: fall onset frame {result['fall_onset_frame']}, detected="
        f"{result['detected']} at frame {result['first_event_frame']} "
        f"(+{result['delay_s']} s), false fires {result['false_fires']}; pose calls "
        f"{result['pose_calls'].get('calls', 0)}, mean {result['pose_calls'].get('mean_ms')} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus eval fall", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True, help="URFD per-frame label CSV")
    parser.add_argument("--sequence", default=None,
                        help="the CSV's sequence name (default: from the video file name)")
    parser.add_argument("--half", choices=["right", "left", "none"], default="right",
                        help="side-by-side frames: the half to use (URFD: RGB on the right)")
    parser.add_argument("--no-pose", action="store_true",
                        help="confirm on box geometry alone (confirm_with_pose=false)")
    parser.add_argument("--pose-bench", type=int, default=0, metavar="N",
                        help="also time N pose calls through Triton")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    sequence = args.sequence or sequence_name(args.video)
    labels = load_labels(args.labels, sequence)
    config = FallConfig(confirm_with_pose=not args.no_pose)
    stack.up(get_settings(), ["triton"])
    raw = asyncio.run(run(args.video, labels, args.half, config, args.pose_bench))
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(),
        "video": args.video.name, "labels": args.labels.name, "sequence": sequence,
        "half": args.half, "frames": raw["frames"], "fps": raw["fps"],
        "frame_size": [raw["width"], raw["height"]],
        "frames_with_person_track": raw["person_frames"],
        **score(raw["events"], labels, raw["fps"]),
        "fall_detector": raw["stats"], "config": config.model_dump(),
        "seconds": round(raw["seconds"], 2),
        "pose_calls": raw["pose_calls"], "pose_bench": raw["pose_bench"],
    }
    text = json.dumps(result, indent=2)
    sys.stdout.write(render_table(result) + "\n" + text + "\n")
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
