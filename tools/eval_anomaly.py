"""``argus eval anomaly``: frame-level anomaly detection on UCSD-Ped2-style clips.

    argus eval anomaly --frames DIR --labels CSV [--json PATH]
                       [--method flow|objects|flow,objects]
                       [--protocol loco|prefix|both|split]
                       [--train-clips 01,02,03 --test-clips 04,05,06] [--clips 04,05,06]
                       [--smoke]

``DIR/<clip>/*.jpg`` are the frames of each clip in order; the CSV has ``clip``,
``frame_idx0`` (0-based) and ``abnormal`` (0/1). No frame is ever scored by a model
trained on it, and no model sees an abnormal frame:

* ``loco`` (leave one clip out): for each clip, a model is trained on the normal frames of
  the *other* clips; it scores every frame of the held-out clip.
* ``prefix``: one model trained on the first half of each clip's normal frames; every
  other frame of every clip is scored.
* ``split`` (``--train-clips`` / ``--test-clips``): one model on the normal frames of the
  training clips; every frame of the test clips is scored.

Methods (``--method``): ``flow`` (default), the flow-cell k-NN of ``argus train anomaly``
(trained by the same code, exported to ONNX and run with onnxruntime through the scorer
Triton uses); ``objects``, the object-centric attribute k-NN
(``tools.train_anomaly_objects``); ``flow,objects``, both with their own parameters and
thresholds and the union of their flags, as the worker runs them (``tools.anomaly_union``).
The report names the clips each method's parameters were chosen on.

Frame scores are smoothed causally (a trailing mean, as the stage does). Reported per clip
and overall: frame-level ROC AUC (threshold-free), and at the model's operating threshold
(chosen at training time from held-out *normal training* scores only, never from the test
clips) the accuracy, false-alarm rate (normal frames flagged), miss rate (abnormal frames
not flagged) and, per abnormal event (a run of abnormal frames), the detection delay: frames
from its onset to the first flagged frame ("miss" when none is). ``overall`` pools all
scored frames (AUC over the pooled scores of the per-clip models); ``mean_clip_auc``
averages the clips where both classes occur.

``--clips`` keeps only the clips named (e.g. ``--clips 04,05,06 --protocol loco``: a
leave-one-clip-out inside one split's training clips, to choose parameters without
touching its test clips).

``--smoke`` keeps at most 40 frames per clip around its first normal/abnormal change and
runs ``loco`` (or the split given): a < 1 minute check for CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.stages.anomaly.features import causal_smooth, load_scorer
from tools.anomaly_metrics import (
    Clip,
    Method,
    Pool,
    Selection,
    auc,
    clip_row,
    parse_clips,
    rates,
    smoke_window,
)
from tools.anomaly_union import UnionMethod, contribution_table, sum_contributions
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

__all__ = ["FlowMethod", "auc", "evaluate", "main", "rates", "smoke_window"]

MACHINE = "2-core AMD EPYC VM, 24 GB, CPU only"


def load_clips(frames_dir: Path, labels_csv: Path, smoke: bool,
               only: Sequence[str] | None = None) -> list[Clip]:
    """Every clip (or those in ``only``) with its frame paths and labels (a window of each
    in smoke mode); the labels of other clips are not read."""
    listed = list_clips(frames_dir)
    if only is not None:
        unknown = sorted(set(only) - {name for name, _ in listed})
        if unknown:
            raise ValueError(f"unknown clips {unknown}")
        listed = [(name, paths) for name, paths in listed if name in only]
    labels = load_labels(labels_csv)
    clips = []
    for name, paths in listed:
        y = clip_labels(labels, name, len(paths))
        index = smoke_window(y) if smoke else np.arange(len(paths))
        clips.append(Clip(name, [paths[i] for i in index], index, y[index]))
    return clips


class FlowMethod:
    """The frame-level flow-cell k-NN (``argus train anomaly``, exported to ONNX and run
    through the scorer Triton uses)."""

    name = "flow"
    choices = ("features and k-NN parameters compared on all six Ped2 clips 01-06 "
               "(docs/anomaly.md); threshold from held-out normal training frames")

    def __init__(self, params: KnnParams) -> None:
        self.params = params
        self.window = params.window
        self.config: Any = None
        self.features: dict[str, np.ndarray] = {}

    def prepare(self, clips: list[Clip]) -> dict[str, Any]:
        """Flow features of every clip (once); returns the cost."""
        started, frames = time.perf_counter(), 0
        self.config = config_for(clips[0].paths[0])
        for clip in clips:
            self.features[clip.name] = clip_features(clip.paths, self.config)
            frames += len(clip.paths)
        return {"features": self.config.to_dict(), "params": self.params.__dict__,
                "feature_ms_per_frame": round(
                    (time.perf_counter() - started) * 1000.0 / max(1, frames), 2)}

    def fit_score(self, train_sets: Selection, tests: Selection, workdir: Path, tag: str
                  ) -> tuple[list[np.ndarray], float, dict[str, Any]]:
        """Train on the selected frames, export to ONNX, reload with the serving scorer,
        score the test frames."""
        groups = [self.features[c.name][index] for c, index in train_sets]
        model, threshold, stats = train(groups, self.config, self.params)
        path = workdir / f"{tag}.onnx"
        export_onnx(model, self.config, threshold, self.params, path)
        scorer = load_scorer(str(path))
        started, frames, scored = time.perf_counter(), 0, []
        for clip, index in tests:
            features = self.features[clip.name][index]
            scored.append(scorer.score_features(features)[0] if len(features)
                          else np.zeros(0))
            frames += len(features)
        stats["score_ms_per_frame"] = (time.perf_counter() - started) * 1000.0 / max(1, frames)
        stats["threshold"] = threshold
        return scored, threshold, stats


def _score_protocol(name: str, method: Method, train_sets: Selection, tests: Selection,
                    workdir: Path) -> tuple[list[dict[str, Any]], Pool, dict[str, Any]]:
    """One model on ``train_sets``; the rows of the ``tests`` it scores. A method that
    smooths its own scores (a union) returns them under ``smoothed``, and may add fields to
    each clip's row under ``row_fields``."""
    scored, threshold, info = method.fit_score(train_sets, tests, workdir, name)
    smoothed = info.pop("smoothed", None)
    fields = info.pop("row_fields", None)
    rows, pool = [], Pool()
    for i, ((clip, index), raw) in enumerate(zip(tests, scored, strict=True)):
        smooth = (smoothed[i] if smoothed is not None  # over the scored frames, in order:
                  else causal_smooth(raw, method.window))
        rows.append(clip_row(clip.name, raw, smooth, clip.labels[index], threshold)
                    | (fields[i] if fields is not None else {}))
        pool.add(raw, smooth, clip.labels[index], threshold)
    return rows, pool, info


def run_loco(clips: list[Clip], method: Method, workdir: Path) -> dict[str, Any]:
    """Leave one clip out: each clip scored by a model of the other clips' normal frames."""
    rows, pool, stats = [], Pool(), []
    for clip in clips:
        train_sets = [(c, normal_pairs(c.labels)) for c in clips if c is not clip]
        (row,), one, info = _score_protocol(f"loco-{clip.name}", method, train_sets,
                                            [(clip, np.arange(len(clip.labels)))], workdir)
        rows.append(row)
        pool.add(one.raw[0], one.smooth[0], one.labels[0], row["threshold"])
        stats.append(info)
    return {"protocol": "loco", "clips": rows, "overall": pool.summary(rows),
            "training": stats}


def run_prefix(clips: list[Clip], method: Method, workdir: Path) -> dict[str, Any]:
    """One model on the first half of each clip's normal frames; the rest is scored."""
    train_sets, tests = [], []
    for clip in clips:
        normal = np.flatnonzero(clip.labels == 0)
        first = set(normal[: (len(normal) + 1) // 2].tolist())
        chosen = np.array([t for t in normal_pairs(clip.labels) if t in first], int)
        train_sets.append((clip, chosen))
        tests.append((clip, np.setdiff1d(np.arange(len(clip.labels)), chosen)))
    rows, pool, info = _score_protocol("prefix", method, train_sets, tests, workdir)
    return {"protocol": "prefix", "clips": rows, "overall": pool.summary(rows),
            "training": [info]}


def run_split(clips: list[Clip], method: Method, workdir: Path, train_names: list[str],
              test_names: list[str]) -> dict[str, Any]:
    """One model on the normal frames of the training clips; every frame of the test clips
    is scored (the threshold comes from the training clips only)."""
    by_name = {c.name: c for c in clips}
    unknown = sorted(set(train_names + test_names) - set(by_name))
    if unknown:
        raise ValueError(f"unknown clips {unknown} (have {sorted(by_name)})")
    if set(train_names) & set(test_names):
        raise ValueError(f"clips {sorted(set(train_names) & set(test_names))} are both "
                         "training and test clips")
    train_sets = [(by_name[n], normal_pairs(by_name[n].labels)) for n in train_names]
    tests = [(by_name[n], np.arange(len(by_name[n].labels))) for n in test_names]
    rows, pool, info = _score_protocol("split", method, train_sets, tests, workdir)
    return {"protocol": "split", "train_clips": train_names, "test_clips": test_names,
            "clips": rows, "overall": pool.summary(rows), "training": [info]}


def make_method(name: str, args: argparse.Namespace) -> Method:
    """The method ``--method`` names, with its parameters from the command line."""
    if name == "flow,objects":
        return UnionMethod([make_method("flow", args), make_method("objects", args)])
    if name == "flow":
        given = {k: v for k in ("window", "quantile", "margin")
                 if (v := getattr(args, k)) is not None}
        return FlowMethod(KnnParams(**given))
    from tools.train_anomaly_objects import ObjectMethod  # detector + tracker: only when used

    return ObjectMethod.from_args(args)


def evaluate(frames_dir: Path, labels_csv: Path, protocols: Sequence[str], smoke: bool,
             method: Method, split: tuple[list[str], list[str]] | None = None,
             only: Sequence[str] | None = None) -> dict[str, Any]:
    """The whole report (JSON-safe)."""
    started = time.perf_counter()
    clips = load_clips(frames_dir, labels_csv, smoke, only)
    report: dict[str, Any] = {
        "frames_dir": str(frames_dir), "labels": str(labels_csv), "smoke": smoke,
        "clips": [c.name for c in clips],
        "method": method.name, "parameter_choices": method.choices,
        **method.prepare(clips), "machine": MACHINE, "protocols": {}}
    with tempfile.TemporaryDirectory(prefix="argus-anomaly-") as tmp:
        for protocol in protocols:
            if protocol == "split":
                if split is None:
                    raise ValueError("the split protocol needs --train-clips and --test-clips")
                result = run_split(clips, method, Path(tmp), *split)
            else:
                run = run_loco if protocol == "loco" else run_prefix
                result = run(clips, method, Path(tmp))
            if isinstance(method, UnionMethod):
                result["overall"] |= sum_contributions(result["clips"])
            report["protocols"][protocol] = result
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}" if pct else f"{value:.3f}"
    return str(value)


def _delays(row: dict[str, Any]) -> str:
    """Per-event delays in frames ("miss" for an event never flagged)."""
    return " ".join("miss" if d is None else str(d) for d in row.get("delays", [])) or "-"


def render(report: dict[str, Any]) -> str:
    """Markdown tables, one per protocol."""
    cost = report.get("feature_ms_per_frame")
    detect = report.get("detect_ms_per_frame")
    lines = [f"anomaly eval ({report['method']}) on {report['frames_dir']} "
             f"({'smoke' if report['smoke'] else 'full'}), features {cost} ms/frame"
             + (f", detection {detect} ms/frame" if detect is not None else ""),
             f"parameters chosen on: {report['parameter_choices']}"]
    for name, result in report["protocols"].items():
        title = f"protocol {name}"
        if name == "split":
            title += (f": train {','.join(result['train_clips'])} "
                      f"-> test {','.join(result['test_clips'])}")
        lines += ["", title, "",
                  "| clip | frames | abnormal | AUC % | AUC raw % | threshold | accuracy % "
                  "| false alarms % | misses % | events found | delay (frames) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in result["clips"]:
            lines.append(_line(row, _delays(row)))
        overall = result["overall"]
        lines.append(_line(overall, f"mean {_fmt(overall['mean_delay'])}, "
                                    f"max {_fmt(overall['max_delay'])}"))
        lines.append(f"mean per-clip AUC {_fmt(overall['mean_clip_auc'], True)} %")
        if "flagged_by" in overall:
            lines += ["", "flagged frames by method (threshold 1.000 = each method's own)",
                      "", *contribution_table([*result["clips"], overall])]
    return "\n".join(lines)


def _line(row: dict[str, Any], delays: str) -> str:
    return (f"| {row['clip']} | {row['frames']} | {row['abnormal']} | "
            f"{_fmt(row['auc'], True)} | {_fmt(row['auc_raw'], True)} | "
            f"{_fmt(row['threshold'])} | {_fmt(row['accuracy'], True)} | "
            f"{_fmt(row['false_alarm_rate'], True)} | {_fmt(row['miss_rate'], True)} | "
            f"{row['detected']}/{row['events']} | {delays} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus eval anomaly", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", required=True, help="folder with one sub-folder per clip")
    parser.add_argument("--labels", required=True, help="CSV clip,frame_idx0,abnormal")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--method", choices=("flow", "objects", "flow,objects"),
                        default="flow", help="flow,objects: both, each with its own "
                        "parameters and threshold; a frame is flagged when either flags it")
    parser.add_argument("--protocol", choices=("loco", "prefix", "both", "split"),
                        default=None, help="default: both (loco and prefix), or split when "
                        "--train-clips is given")
    parser.add_argument("--train-clips", help="split protocol: training clips, e.g. 01,02,03")
    parser.add_argument("--test-clips", help="split protocol: test clips, e.g. 04,05,06")
    parser.add_argument("--clips", help="use only these clips, e.g. 04,05,06 (loco inside "
                        "a split's training clips)")
    parser.add_argument("--smoke", action="store_true", help="short CI run (40 frames per "
                        "clip; loco unless a split is given)")
    parser.add_argument("--window", type=int, help="smoothing window (default: the "
                        "method's, 5)")
    parser.add_argument("--quantile", type=float, help="threshold quantile of held-out "
                        "normal training scores (default: the method's; flow 0.99, objects 0.9)")
    parser.add_argument("--margin", type=float, help="threshold factor (default 1.0)")
    parser.add_argument("--norm-quantile", type=float, help="objects: each attribute group's "
                        "calibration quantile of held-out normal distances (default 1.0: "
                        "their largest)")
    parser.add_argument("--fps", type=float, default=10.0, help="objects: frame rate of the "
                        "footage (speeds are per second)")
    parser.add_argument("--track-threshold", type=float, help="objects: the tracker's high "
                        "score threshold (default 0.3; the track stage's default is 0.5)")
    parser.add_argument("--track-margin", type=float, help="objects: new tracks need "
                        "threshold + this (default 0.1; the track stage's default is 0.2)")
    parser.add_argument("--no-cache", action="store_true", help="objects: detect every "
                        "frame again (to measure its cost) instead of reading .cache")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if bool(args.train_clips) != bool(args.test_clips):
        parser.error("--train-clips and --test-clips go together")
    split = (parse_clips(args.train_clips), parse_clips(args.test_clips)) if (
        args.train_clips) else None
    protocol = args.protocol or ("split" if split else "loco" if args.smoke else "both")
    if protocol == "split" and split is None:
        parser.error("--protocol split needs --train-clips and --test-clips")
    protocols = ["loco", "prefix"] if protocol == "both" else [protocol]
    if "," in args.method and any(getattr(args, k) is not None
                                  for k in ("window", "quantile", "margin")):
        parser.error("--window, --quantile and --margin set one method's parameter; "
                     "--method flow,objects runs each with its own")
    try:
        report = evaluate(Path(args.frames), Path(args.labels), protocols, args.smoke,
                          make_method(args.method, args), split,
                          parse_clips(args.clips) if args.clips else None)
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
