"""``argus train anomaly --method objects``: the object-centric anomaly model of a camera.

    argus train anomaly --method objects --frames DIR [--labels CSV] --out PATH.json [--fps N]

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

    def tracker_info(self) -> dict[str, float]:
        """The track-stage settings the model is trained for (``info["tracker"]``), under
        the names of ``ARGUS_TRACK_*`` (the stage must run on the same thresholds)."""
        return {"default_threshold": self.threshold,
                "new_track_margin": self.new_track_margin}


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

    def clip_objects(self, paths: Sequence[Path]) -> tuple[Frames, list[list[dict[str, Any]]]]:
        """Per frame: the attribute rows of the objects the tracker matched in it, and
        their track id, class and box (for explanations). Frames go through the track
        stage's own path: ``detections`` messages -> its ``TrackerRegistry`` -> ``tracks``
        messages -> :func:`argus.anomaly_tracks.track_rows`, as the stage will see them."""
        dets = self.detect(paths)
        first = cv2.imread(str(paths[0])) if paths else None
        if first is None:
            raise ValueError(f"cannot read {paths[0] if paths else 'an empty clip'}")
        height, width = first.shape[:2]
        started = time.perf_counter()
        registry = TrackerRegistry(TrackerConfig(
            default_threshold=self.track.threshold,
            new_track_margin=self.track.new_track_margin), COCO_CLASSES)
        history = CentreHistory(self.track.speed_frames)
        rows: Frames = []
        meta: list[list[dict[str, Any]]] = []
        for i, (boxes, scores, classes) in enumerate(dets):
            frame = FrameHeaders(camera_id="eval", seq=i, capture_ts=T0 + i / self.track.fps,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus train anomaly --method objects",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("objects",), default="objects")
    parser.add_argument("--frames", required=True, help="folder of frames (or of clip folders)")
    parser.add_argument("--labels", help="CSV clip,frame_idx0,abnormal: train on 0s only")
    parser.add_argument("--out", required=True, help="model file (JSON)")
    defaults = ObjectParams()
    parser.add_argument("--fps", type=float, default=TrackParams().fps)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--quantile", type=float, default=defaults.quantile)
    parser.add_argument("--margin", type=float, default=defaults.margin)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    params = ObjectParams(window=args.window, quantile=args.quantile, margin=args.margin)
    extractor = Extractor(TrackParams(fps=args.fps))
    started = time.perf_counter()
    try:
        clips = list_clips(Path(args.frames))
        labels = load_labels(Path(args.labels)) if args.labels else None
        train = []
        for name, paths in clips:
            objects, _ = extractor.clip_objects(paths)
            y = (clip_labels(labels, name, len(paths)) if labels is not None
                 else np.zeros(len(paths), np.int8))
            train.append([objects[int(i)] for i in normal_pairs(y)])
        model = fit_model(train, params)
        model.info["source"] = str(args.frames)
        model.info["tracker"] = extractor.track.tracker_info()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(model.to_dict()), encoding="utf-8")
        tmp.replace(out)  # atomic
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {model.info['objects']} normal objects in "
          f"{model.info['frames']} frames from {len(clips)} clip(s), threshold "
          f"{model.threshold:.3f} (window {params.window}), "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
