"""``argus train anomaly --method objects``: the object-centric anomaly model of a camera.

    argus train anomaly --method objects --frames DIR [--labels CSV] --out PATH.json [--fps N]
    argus train anomaly --method objects --video PATH [--start-s A] [--end-s B]
        [--exclude-s A-B ...] --fps CAMERA_FPS --out PATH.json

Each frame is run through the detector's own code (``yolox.py`` with the Triton config's
parameters, letterbox fit) and the track stage's registry and tracker
(``pipelines.stages.track``), and every object matched in the frame's ``tracks`` message
becomes a row of attributes (``argus.anomaly_tracks``, ``argus.anomaly_objects``: class,
box position / size / aspect, partly visible or not, speed in box heights per second).
One k-NN model per attribute group is fitted on the objects of the normal frames and
calibrated on held-out normal clips; the model is a JSON file, which the anomaly stage's
object method (``ARGUS_ANOMALY_METHOD=objects``) reads from ``<models dir>/anomaly/``.

Detections are cached per clip under ``.cache/anomaly-detections/`` (git-ignored), keyed by
the frames, the model file and the detector parameters: detection dominates the run time.
This module also holds the ``objects`` method of ``argus eval anomaly``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus.anomaly_objects import (
    CentreHistory,
    Frames,
    ObjectModel,
    ObjectParams,
    fit_model,
)
from argus.anomaly_tracks import track_rows
from argus.inference.detector import COCO_CLASSES, to_detections
from argus.modelcode import load_yolox_module, triton_parameters
from argus.settings import REPO_ROOT, get_settings
from pipelines.stages.track.registry import TrackerRegistry
from pipelines.stages.track.tracker import TrackerConfig
from schemas.frames import FrameHeaders
from tools.anomaly_metrics import Clip, Selection
from tools.train_anomaly import clip_labels, list_clips, load_labels, normal_pairs
from tools.video_frames import outside, parse_range, sample_video, write_frames

CACHE_DIR = REPO_ROOT / ".cache" / "anomaly-detections"
T0 = 1_700_000_000.0  # capture time of a clip's first frame
Detections = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TrackParams:
    """How frames become tracked objects."""

    fps: float = 10.0  # frame rate of the footage (Ped2: 10)
    threshold: float = 0.3  # tracker high-score threshold (every class)
    new_track_margin: float = 0.1
    speed_frames: int = 5  # velocity = median of the last N frame-to-frame velocities
    class_thresholds: tuple[tuple[str, float], ...] = ()  # per class name, as
    # ARGUS_TRACK_CLASS_THRESHOLDS

    def tracker_info(self) -> dict[str, Any]:
        """The track-stage settings the model is trained for (``info["tracker"]``), under
        the names of ``ARGUS_TRACK_*`` (the stage must run on the same thresholds)."""
        info: dict[str, Any] = {"default_threshold": self.threshold,
                                "new_track_margin": self.new_track_margin}
        if self.class_thresholds:
            info["class_thresholds"] = dict(self.class_thresholds)
        return info

    def tracker_config(self) -> TrackerConfig:
        """The tracker these settings describe (re-id off: the frames carry no embeddings)."""
        unknown = sorted(n for n, _ in self.class_thresholds if n not in COCO_CLASSES)
        if unknown:
            raise ValueError(f"unknown class names {unknown}")
        return TrackerConfig(
            thresholds={COCO_CLASSES.index(n): v for n, v in self.class_thresholds},
            default_threshold=self.threshold, new_track_margin=self.new_track_margin)


class Extractor:
    """Detector + tracker + attributes for a clip's frames, with the detection cache."""

    def __init__(self, track: TrackParams, cache_dir: Path | None = CACHE_DIR) -> None:
        self.params = triton_parameters("detector")
        self.model_path = get_settings().models_dir / self.params.get("model_file",
                                                                      "yolox_nano.onnx")
        self.track = track
        self.cache_dir = cache_dir
        self.runner: Any = None
        self.detect_s = 0.0
        self.detected = 0
        self.track_s = 0.0

    def _key(self, paths: Sequence[Path]) -> str:
        digest = hashlib.sha256(json.dumps(
            [str(self.model_path), self.model_path.stat().st_size, sorted(self.params.items()),
             [(str(p), p.stat().st_size) for p in paths]]).encode()).hexdigest()
        return digest[:24]

    def detect(self, paths: Sequence[Path]) -> Detections:
        """(boxes, scores, classes) per frame, from the cache when it has them."""
        cache = self.cache_dir / f"{self._key(paths)}.npz" if self.cache_dir else None
        if cache is not None and cache.exists():
            data = np.load(cache)
            return [(data[f"b{i}"], data[f"s{i}"], data[f"c{i}"]) for i in range(len(paths))]
        if self.runner is None:
            self.runner = load_yolox_module().DetectorRunner.configured(
                str(self.model_path), self.params, threads=1)
        out: Detections = []
        started = time.perf_counter()
        for path in paths:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"cannot read {path}")
            boxes, scores, classes = self.runner.detect_image(image)
            out.append((boxes, scores, classes))
        self.detect_s += time.perf_counter() - started
        self.detected += len(paths)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f"{k}{i}": v for i, d in enumerate(out) for k, v in zip("bsc", d,
                                                                               strict=True)}
            save: Any = np.savez_compressed  # (numpy's stub mistypes **arrays)
            save(cache.with_suffix(".tmp.npz"), **arrays)
            cache.with_suffix(".tmp.npz").replace(cache)
        return out

    def clip_objects(self, paths: Sequence[Path], times: Sequence[float] | None = None
                     ) -> tuple[Frames, list[list[dict[str, Any]]]]:
        """Per frame: the attribute rows of the objects the tracker matched in it, and
        their track id, class and box (for explanations). Frames go through the track
        stage's own path: ``detections`` messages -> its ``TrackerRegistry`` -> ``tracks``
        messages -> :func:`argus.anomaly_tracks.track_rows`, as the stage will see them.
        ``times``: the frames' times in seconds (default: ``i / fps``; a 12 fps file
        sampled at 5 fps has uneven steps, as the grabber's capture times do)."""
        dets = self.detect(paths)
        first = cv2.imread(str(paths[0])) if paths else None
        if first is None:
            raise ValueError(f"cannot read {paths[0] if paths else 'an empty clip'}")
        height, width = first.shape[:2]
        started = time.perf_counter()
        registry = TrackerRegistry(self.track.tracker_config(), COCO_CLASSES)
        history = CentreHistory(self.track.speed_frames)
        rows: Frames = []
        meta: list[list[dict[str, Any]]] = []
        for i, (boxes, scores, classes) in enumerate(dets):
            offset = times[i] - times[0] if times is not None else i / self.track.fps
            frame = FrameHeaders(camera_id="eval", seq=i, capture_ts=T0 + offset,
                                 width=width, height=height)
            message = registry.process(to_detections(frame, boxes, scores, classes, 0.0))
            if message is None:
                raise ValueError(f"frame {i} of {paths[i].parent} is out of order")
            frame_rows, tracks = track_rows(message, history)
            rows.append(frame_rows)
            meta.append([{"track_id": t.track_id, "class_id": t.class_id,
                          "class_name": t.class_name,
                          "box": [round(v, 4) for v in (t.box.x1, t.box.y1, t.box.x2,
                                                        t.box.y2)]} for t in tracks])
        self.track_s += time.perf_counter() - started
        return rows, meta


CHOICES = ("attribute groups, k, class weight, tracker thresholds and threshold quantile "
           "chosen on split A (train 01,02,03 / test 04,05,06); the group calibration "
           "quantile (1.0) on split A and a leave-one-clip-out inside 04,05,06; clips "
           "01,02,03 were never scored for a choice; threshold from held-out normal "
           "training frames")


class ObjectMethod:
    """The ``objects`` method of ``argus eval anomaly``."""

    name = "objects"
    choices = CHOICES

    def __init__(self, params: ObjectParams, track: TrackParams) -> None:
        self.params = params
        self.window = params.window
        self.extractor = Extractor(track)
        self.objects: dict[str, Frames] = {}
        self.meta: dict[str, list[list[dict[str, Any]]]] = {}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ObjectMethod:
        """Parameters from ``argus eval anomaly``'s options (None: the default)."""
        given = {k: v for k in ("window", "quantile", "margin", "norm_quantile")
                 if (v := getattr(args, k, None)) is not None}
        track = {k: v for k, v in (("threshold", getattr(args, "track_threshold", None)),
                                   ("new_track_margin", getattr(args, "track_margin", None)))
                 if v is not None}
        method = cls(ObjectParams(**given),
                     TrackParams(fps=getattr(args, "fps", None) or 10.0, **track))
        if getattr(args, "no_cache", False):
            method.extractor.cache_dir = None
        return method

    def prepare(self, clips: list[Clip]) -> dict[str, Any]:
        frames = 0
        for clip in clips:
            self.objects[clip.name], self.meta[clip.name] = self.extractor.clip_objects(
                clip.paths)
            frames += len(clip.paths)
        ex = self.extractor
        return {"params": {**self.params.__dict__, "groups": dict(self.params.groups),
                           **ex.track.__dict__},
                "detect_ms_per_frame": (round(1000 * ex.detect_s / ex.detected, 2)
                                        if ex.detected else "cached"),
                "track_ms_per_frame": round(1000 * ex.track_s / max(1, frames), 2),
                "objects_per_frame": round(sum(len(r) for c in self.objects.values()
                                               for r in c) / max(1, frames), 2),
                "feature_ms_per_frame": round(1000 * ex.track_s / max(1, frames), 2)}

    def fit_score(self, train_sets: Selection, tests: Selection, workdir: Path, tag: str
                  ) -> tuple[list[np.ndarray], float, dict[str, Any]]:
        train = [[self.objects[c.name][int(i)] for i in index] for c, index in train_sets]
        started = time.perf_counter()
        model = fit_model(train, self.params)
        model.info["tracker"] = self.extractor.track.tracker_info()
        fit_s = time.perf_counter() - started
        path = workdir / f"{tag}.json"
        text = json.dumps(model.to_dict())
        path.write_text(text, encoding="utf-8")
        model = ObjectModel.from_dict(json.loads(text))  # score with what was exported
        started, frames, scored = time.perf_counter(), 0, []
        reasons: list[dict[str, Any]] = []
        for clip, index in tests:
            scores = []
            for i in index:
                score, why = model.score_frame(self.objects[clip.name][int(i)])
                scores.append(score)
                if why is not None and score > model.threshold:
                    reasons.append({"clip": clip.name, "frame": int(clip.frames[int(i)]),
                                    **self.meta[clip.name][int(i)][why.index],
                                    "group": why.group, "score": round(why.score, 2),
                                    "reason": why.reason})
            scored.append(np.array(scores))
            frames += len(index)
        return scored, model.threshold, {
            "threshold": model.threshold, "fit_s": round(fit_s, 3),
            "score_ms_per_frame": round(1000 * (time.perf_counter() - started)
                                        / max(1, frames), 3),
            "model_bytes": len(text),
            "memory_bytes": int(sum(g.bank.nbytes for g in model.groups)), **model.info,
            "examples": reasons[::max(1, len(reasons) // 8)][:8]}


def video_objects(extractor: Extractor, video: Path, start_s: float = 0.0,
                  end_s: float | None = None, exclude: Sequence[tuple[float, float]] = (),
                  jpeg_quality: int = 85) -> tuple[Frames, int]:
    """The objects of the normal frames of ``video`` between ``start_s`` and ``end_s``, as
    a camera at ``extractor.track.fps`` publishes them (``tools.video_frames``), and the
    number of frames sampled. The tracker runs over every sampled frame (so tracks carry
    across the ``exclude`` ranges as they do live); frames inside an ``exclude`` range
    (seconds of the file, e.g. where something abnormal is in view) are not trained on."""
    with tempfile.TemporaryDirectory(prefix="argus-anomaly-") as tmp:
        paths, times = write_frames(sample_video(video, extractor.track.fps, start_s, end_s,
                                                 jpeg_quality), Path(tmp))
        if not paths:
            raise ValueError(f"no frames of {video} between {start_s} and {end_s} s")
        objects, _ = extractor.clip_objects(paths, times)
    return [objects[int(i)] for i in normal_pairs(outside(times, exclude))], len(paths)


def write_model(model: ObjectModel, out: Path) -> None:
    """Write the model's JSON atomically (temp file + rename: the stage may be reading)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(model.to_dict()), encoding="utf-8")
    tmp.replace(out)


def train_video(video: Path, out: Path, track: TrackParams, params: ObjectParams | None = None,
                start_s: float = 0.0, end_s: float | None = None,
                exclude: Sequence[tuple[float, float]] = (), jpeg_quality: int = 85,
                cache_dir: Path | None = None) -> ObjectModel:
    """Train a camera's object model on a time range of a recording of it (see
    :func:`video_objects`) and write it to ``out``; ``track.fps`` is the camera's rate."""
    extractor = Extractor(track, cache_dir=cache_dir)
    normal, sampled = video_objects(extractor, video, start_s, end_s, exclude, jpeg_quality)
    model = fit_model([normal], params or ObjectParams())
    model.info["source"] = {"video": str(video), "start_s": start_s, "end_s": end_s,
                            "exclude_s": [list(r) for r in exclude], "fps": track.fps,
                            "sampled_frames": sampled}
    model.info["tracker"] = track.tracker_info()
    write_model(model, out)
    return model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus train anomaly --method objects",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("objects",), default="objects")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", help="folder of frames (or of clip folders)")
    source.add_argument("--video", help="a recording of the camera: its frames sampled at "
                        "--fps as the grabber publishes them")
    parser.add_argument("--labels", help="--frames: CSV clip,frame_idx0,abnormal: train on 0s")
    parser.add_argument("--start-s", type=float, default=0.0, help="--video: from (seconds)")
    parser.add_argument("--end-s", type=float, help="--video: to (seconds; default the end)")
    parser.add_argument("--exclude-s", action="append", default=[], metavar="A-B",
                        help="--video: seconds not to train on (something abnormal in view; "
                        "the tracker still sees them); repeatable")
    parser.add_argument("--jpeg-quality", type=int, default=85,
                        help="--video: the camera's jpeg_quality")
    parser.add_argument("--out", required=True, help="model file (JSON)")
    defaults, track_defaults = ObjectParams(), TrackParams()
    parser.add_argument("--fps", type=float, default=track_defaults.fps,
                        help="the footage's frame rate (--video: the camera's fps)")
    parser.add_argument("--track-threshold", type=float, default=track_defaults.threshold)
    parser.add_argument("--track-margin", type=float,
                        default=track_defaults.new_track_margin)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--quantile", type=float, default=defaults.quantile)
    parser.add_argument("--margin", type=float, default=defaults.margin)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    params = ObjectParams(window=args.window, quantile=args.quantile, margin=args.margin)
    track = TrackParams(fps=args.fps, threshold=args.track_threshold,
                        new_track_margin=args.track_margin)
    started = time.perf_counter()
    try:
        if args.video:
            exclude = [parse_range(r) for r in args.exclude_s]
            model = train_video(Path(args.video), Path(args.out), track, params,
                                args.start_s, args.end_s, exclude, args.jpeg_quality)
            clips = 1
        else:
            model, clips = train_frames(Path(args.frames), args.labels, track, params)
            write_model(model, Path(args.out))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {model.info['objects']} normal objects in "
          f"{model.info['frames']} frames from {clips} clip(s), threshold "
          f"{model.threshold:.3f} (window {params.window}), "
          f"{time.perf_counter() - started:.1f} s")
    return 0


def train_frames(frames: Path, labels_csv: str | None, track: TrackParams,
                 params: ObjectParams) -> tuple[ObjectModel, int]:
    """The model of the normal frames of a folder of frames (or of clip folders)."""
    extractor = Extractor(track)
    clips = list_clips(frames)
    labels = load_labels(Path(labels_csv)) if labels_csv else None
    train = []
    for name, paths in clips:
        objects, _ = extractor.clip_objects(paths)
        y = (clip_labels(labels, name, len(paths)) if labels is not None
             else np.zeros(len(paths), np.int8))
        train.append([objects[int(i)] for i in normal_pairs(y)])
    model = fit_model(train, params)
    model.info["source"] = str(frames)
    model.info["tracker"] = track.tracker_info()
    return model, len(clips)


if __name__ == "__main__":
    raise SystemExit(main())
