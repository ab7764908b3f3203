"""``argus eval anomaly``: frame-level motion-anomaly detection on UCSD-Ped2-style clips.

    argus eval anomaly --frames DIR --labels CSV [--json PATH] [--protocol loco|prefix|both]
                       [--smoke]

``DIR/<clip>/*.jpg`` are the frames of each clip in order; the CSV has ``clip``,
``frame_idx0`` (0-based) and ``abnormal`` (0/1). No frame is ever scored by a model
trained on it, and no model sees an abnormal frame:

* ``loco`` (leave one clip out): for each clip, a model is trained (``tools.train_anomaly``,
  the same code as ``argus train anomaly``) on the normal frames of the *other* clips,
  exported to ONNX and run with onnxruntime through the same scorer Triton uses; it scores
  every frame of the held-out clip.
* ``prefix``: one model trained on the first half of each clip's normal frames; every
  other frame of every clip is scored.

Frame scores are smoothed causally (a trailing mean, as the stage does). Reported per clip
and overall: frame-level ROC AUC (threshold-free), and at the model's operating threshold
(chosen at training time from held-out *normal training* scores only, never from the test
clip) the accuracy, false-alarm rate (normal frames flagged) and miss rate (abnormal frames
not flagged). ``overall`` pools all scored frames (AUC over the pooled scores of the
per-clip models); ``mean_clip_auc`` averages the clips where both classes occur.

``--smoke`` keeps at most 40 frames per clip around its first normal/abnormal change and
runs ``loco`` only: a < 1 minute check for CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from pipelines.stages.anomaly.features import causal_smooth, load_scorer
from tools.train_anomaly import (
    KnnParams,
    clip_features,
    clip_labels,
    config_for,
    export_onnx,
    list_clips,
    load_labels,
    normal_pairs,
    train,
)

SMOKE_FRAMES = 40
MACHINE = "2-core AMD EPYC VM, 24 GB, CPU only"


@dataclass
class Clip:
    """One clip's frames, labels and features."""

    name: str
    frames: np.ndarray  # frame indices in the clip (a window in smoke mode)
    labels: np.ndarray
    features: np.ndarray  # [frames, cells, D]


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
        ) -> float | None:
    """ROC AUC (abnormal = positive, ties count half); None without both classes.

    >>> auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> auc([1.0, 1.0], [0, 1])
    0.5
    >>> auc([1.0, 2.0], [1, 1]) is None
    True
    """
    y = np.asarray(labels).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def rates(flagged: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, false-alarm rate and miss rate of 0/1 decisions (None when undefined).

    >>> r = rates(np.array([1, 0, 1, 1]), np.array([0, 0, 1, 1]))
    >>> r["accuracy"], r["false_alarm_rate"], r["miss_rate"]
    (0.75, 0.5, 0.0)
    """
    flagged, y = flagged.astype(bool), labels.astype(bool)
    tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
    fn, tn = int((~flagged & y).sum()), int((~flagged & ~y).sum())
    total = tp + fp + fn + tn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "accuracy": (tp + tn) / total if total else None,
            "false_alarm_rate": fp / (fp + tn) if fp + tn else None,
            "miss_rate": fn / (fn + tp) if fn + tp else None}


def smoke_window(labels: np.ndarray, size: int = SMOKE_FRAMES) -> np.ndarray:
    """Indices of at most ``size`` consecutive frames centred on the first label change.

    >>> smoke_window(np.array([0] * 50 + [1] * 50), 10).tolist()
    [45, 46, 47, 48, 49, 50, 51, 52, 53, 54]
    >>> smoke_window(np.array([1, 1, 1]), 10).tolist()
    [0, 1, 2]
    """
    changes = np.flatnonzero(np.diff(labels) != 0)
    centre = int(changes[0]) + 1 if len(changes) else 0
    start = min(max(0, centre - size // 2), max(0, len(labels) - size))
    return np.arange(start, min(len(labels), start + size))


def load_clips(frames_dir: Path, labels_csv: Path, smoke: bool) -> tuple[list[Clip], Any,
                                                                         float]:
    """Every clip with its labels and features; returns the clips, the feature config and
    the feature cost in ms per frame."""
    listed = list_clips(frames_dir)
    labels = load_labels(labels_csv)
    config = config_for(listed[0][1][0])
    clips, frames, started = [], 0, time.perf_counter()
    for name, paths in listed:
        y = clip_labels(labels, name, len(paths))
        index = smoke_window(y) if smoke else np.arange(len(paths))
        clips.append(Clip(name, index, y[index], clip_features([paths[i] for i in index],
                                                               config)))
        frames += len(index)
    return clips, config, (time.perf_counter() - started) * 1000.0 / max(1, frames)


def _fit_and_score(train_groups: list[np.ndarray], config: Any, params: KnnParams,
                   to_score: list[np.ndarray], workdir: Path, name: str
                   ) -> tuple[list[np.ndarray], float, dict[str, Any]]:
    """Train, export to ONNX, reload with the serving scorer, score each feature array."""
    model, threshold, stats = train(train_groups, config, params)
    path = workdir / f"{name}.onnx"
    export_onnx(model, config, threshold, params, path)
    scorer = load_scorer(str(path))
    started, frames = time.perf_counter(), 0
    scored = []
    for features in to_score:
        scored.append(scorer.score_features(features)[0] if len(features) else np.zeros(0))
        frames += len(features)
    stats["score_ms_per_frame"] = (time.perf_counter() - started) * 1000.0 / max(1, frames)
    stats["threshold"] = threshold
    return scored, threshold, stats


def _row(name: str, raw: np.ndarray, smooth: np.ndarray, labels: np.ndarray,
         threshold: float) -> dict[str, Any]:
    """The metrics of one clip (or of the pool)."""
    return {"clip": name, "frames": len(labels), "abnormal": int(labels.sum()),
            "auc": auc(smooth, labels), "auc_raw": auc(raw, labels), "threshold": threshold,
            **rates(smooth > threshold, labels)}


@dataclass
class Pool:
    """The scored frames of every clip of one protocol, for the overall row."""

    raw: list[np.ndarray] = field(default_factory=list)
    smooth: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    flagged: list[np.ndarray] = field(default_factory=list)

    def add(self, raw: np.ndarray, smooth: np.ndarray, labels: np.ndarray,
            threshold: float) -> None:
        self.raw.append(raw)
        self.smooth.append(smooth)
        self.labels.append(labels)
        self.flagged.append(smooth > threshold)

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        y = np.concatenate(self.labels)
        aucs = [r["auc"] for r in rows if r["auc"] is not None]
        return {"clip": "overall", "frames": len(y), "abnormal": int(y.sum()),
                "auc": auc(np.concatenate(self.smooth), y),
                "auc_raw": auc(np.concatenate(self.raw), y),
                "mean_clip_auc": float(np.mean(aucs)) if aucs else None, "threshold": None,
                **rates(np.concatenate(self.flagged), y)}


def run_loco(clips: list[Clip], config: Any, params: KnnParams, workdir: Path
             ) -> dict[str, Any]:
    """Leave one clip out: each clip scored by a model of the other clips' normal frames."""
    rows, pool, stats = [], Pool(), []
    for clip in clips:
        groups = [c.features[normal_pairs(c.labels)] for c in clips if c is not clip]
        (raw,), threshold, info = _fit_and_score(groups, config, params, [clip.features],
                                                 workdir, f"loco-{clip.name}")
        smooth = causal_smooth(raw, params.window)
        rows.append(_row(clip.name, raw, smooth, clip.labels, threshold))
        pool.add(raw, smooth, clip.labels, threshold)
        stats.append(info)
    return {"protocol": "loco", "clips": rows, "overall": pool.summary(rows),
            "training": stats}


def run_prefix(clips: list[Clip], config: Any, params: KnnParams, workdir: Path
               ) -> dict[str, Any]:
    """One model on the first half of each clip's normal frames; the rest is scored."""
    train_sets = []
    for clip in clips:
        normal = np.flatnonzero(clip.labels == 0)
        first = set(normal[: (len(normal) + 1) // 2].tolist())
        train_sets.append(np.array([t for t in normal_pairs(clip.labels) if t in first], int))
    groups = [c.features[t] for c, t in zip(clips, train_sets, strict=True)]
    tests = [np.setdiff1d(np.arange(len(c.labels)), t) for c, t in
             zip(clips, train_sets, strict=True)]
    scored, threshold, info = _fit_and_score(
        groups, config, params, [c.features[t] for c, t in zip(clips, tests, strict=True)],
        workdir, "prefix")
    rows, pool = [], Pool()
    for clip, test, raw in zip(clips, tests, scored, strict=True):
        smooth = causal_smooth(raw, params.window)  # over the scored frames, in order
        rows.append(_row(clip.name, raw, smooth, clip.labels[test], threshold))
        pool.add(raw, smooth, clip.labels[test], threshold)
    return {"protocol": "prefix", "clips": rows, "overall": pool.summary(rows),
            "training": [info]}


def evaluate(frames_dir: Path, labels_csv: Path, protocols: Sequence[str], smoke: bool,
             params: KnnParams) -> dict[str, Any]:
    """The whole report (JSON-safe)."""
    started = time.perf_counter()
    clips, config, feature_ms = load_clips(frames_dir, labels_csv, smoke)
    report: dict[str, Any] = {
        "frames_dir": str(frames_dir), "labels": str(labels_csv), "smoke": smoke,
        "features": config.to_dict(), "params": params.__dict__,
        "feature_ms_per_frame": round(feature_ms, 2), "machine": MACHINE, "protocols": {}}
    with tempfile.TemporaryDirectory(prefix="argus-anomaly-") as tmp:
        for protocol in protocols:
            run = run_loco if protocol == "loco" else run_prefix
            report["protocols"][protocol] = run(clips, config, params, Path(tmp))
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if pct else f"{value:.3f}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    """Markdown tables, one per protocol."""
    lines = [f"anomaly eval on {report['frames_dir']} ({'smoke' if report['smoke'] else 'full'}"
             f"), features {report['feature_ms_per_frame']} ms/frame"]
    for name, result in report["protocols"].items():
        lines += ["", f"protocol {name}", "",
                  "| clip | frames | abnormal | AUC % | AUC raw % | threshold | accuracy % "
                  "| false alarms % | misses % |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in [*result["clips"], result["overall"]]:
            lines.append(
                f"| {row['clip']} | {row['frames']} | {row['abnormal']} | "
                f"{_fmt(row['auc'], True)} | {_fmt(row['auc_raw'], True)} | "
                f"{_fmt(row['threshold'])} | {_fmt(row['accuracy'], True)} | "
                f"{_fmt(row['false_alarm_rate'], True)} | {_fmt(row['miss_rate'], True)} |")
        overall = result["overall"]
        lines.append(f"mean per-clip AUC {_fmt(overall['mean_clip_auc'], True)} %")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus eval anomaly", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", required=True, help="folder with one sub-folder per clip")
    parser.add_argument("--labels", required=True, help="CSV clip,frame_idx0,abnormal")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--protocol", choices=("loco", "prefix", "both"), default="both")
    parser.add_argument("--smoke", action="store_true", help="short CI run (loco, 40 frames "
                        "per clip)")
    defaults = KnnParams()
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--quantile", type=float, default=defaults.quantile)
    parser.add_argument("--margin", type=float, default=defaults.margin)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    protocols = ["loco"] if args.smoke else (
        ["loco", "prefix"] if args.protocol == "both" else [args.protocol])
    params = KnnParams(window=args.window, quantile=args.quantile, margin=args.margin)
    try:
        report = evaluate(Path(args.frames), Path(args.labels), protocols, args.smoke, params)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    print(json.dumps({name: {"clips": result["clips"], "overall": result["overall"]}
                      for name, result in report["protocols"].items()}))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
