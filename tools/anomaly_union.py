"""The union of anomaly methods (``argus eval anomaly --method flow,objects``): what an
operator sees when the worker runs both stages (``ARGUS_ANOMALY_METHOD=flow,objects``).

Each method is fitted and scored by its own code with its own, unchanged parameters and its
own threshold (chosen from normal training frames only, as when it runs alone), and smooths
its own scores with its own window. The union adds no parameter:

* a frame is **flagged** when any method flags it (its smoothed score above its threshold,
  each stage raising its own event);
* its **score** (for the threshold-free AUC) is the largest of the methods' smoothed scores,
  each divided by that method's threshold, so 1.0 is every method's operating point and a
  frame is flagged exactly when its score is above 1.0.

The rows also say how many flagged frames each method contributed (flagged by it, by it
alone, and its false alarms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.stages.anomaly.features import causal_smooth
from tools.anomaly_metrics import Clip, Method, Selection

__all__ = ["UnionMethod", "combine", "contribution_table", "contributions",
           "sum_contributions"]

ABOVE_ONE = float(np.nextafter(1.0, 2.0))


def combine(scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
            ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The union's frame scores (each method's score over its threshold, the largest), its
    flags (any method's score above its threshold) and each method's flags.

    >>> score, flagged, by = combine({"a": np.array([1.0, 3.0]), "b": np.array([4.0, 1.0])},
    ...                              {"a": 2.0, "b": 2.0})
    >>> score.tolist(), flagged.tolist(), by["a"].tolist(), by["b"].tolist()
    ([2.0, 1.5], [True, True], [False, True], [True, False])
    """
    if not scores or set(scores) != set(thresholds):
        raise ValueError(f"scores of {sorted(scores)} but thresholds of {sorted(thresholds)}")
    bad = {name: t for name, t in thresholds.items() if not t > 0}
    if bad:
        raise ValueError(f"thresholds must be positive to scale by: {bad}")
    flags = {name: np.asarray(s, np.float64) > thresholds[name] for name, s in scores.items()}
    ratio = np.max([np.asarray(s, np.float64) / thresholds[name]
                    for name, s in scores.items()], axis=0)
    flagged = np.any(list(flags.values()), axis=0)
    # a / t can round to exactly 1.0 when a is the float just above t: keep score > 1 <=> flagged
    ratio = np.where(flagged & (ratio <= 1.0), ABOVE_ONE, ratio)
    return ratio, flagged, flags


def contributions(flags: Mapping[str, np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """Per method: frames it flags, frames only it flags, its false alarms (normal frames
    it flags) and its misses (abnormal frames it does not flag); frames all flag.

    >>> contributions({"a": np.array([1, 1, 0, 0]), "b": np.array([0, 1, 1, 0])},
    ...               np.array([0, 1, 1, 1]))["only_by"]
    {'a': 1, 'b': 1}
    """
    y = np.asarray(labels).astype(bool)
    marks = {name: np.asarray(f).astype(bool) for name, f in flags.items()}
    every = np.all(list(marks.values()), axis=0)
    return {
        "flagged_by": {n: int(f.sum()) for n, f in marks.items()},
        "only_by": {n: int((f & ~_any_other(marks, n)).sum()) for n, f in marks.items()},
        "false_alarms_by": {n: int((f & ~y).sum()) for n, f in marks.items()},
        "misses_by": {n: int((~f & y).sum()) for n, f in marks.items()},
        "flagged_by_all": int(every.sum()),
    }


def _any_other(marks: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """Frames flagged by any method but ``name``."""
    out = np.zeros_like(marks[name])
    for other, flags in marks.items():
        if other != name:
            out |= flags
    return out


def sum_contributions(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The contributions of several clips added up (for the ``overall`` row)."""
    total: dict[str, Any] = {}
    for row in rows:
        for key in ("flagged_by", "only_by", "false_alarms_by", "misses_by"):
            into = total.setdefault(key, {})
            for name, count in row[key].items():
                into[name] = into.get(name, 0) + count
        total["flagged_by_all"] = total.get("flagged_by_all", 0) + row["flagged_by_all"]
    return total


class UnionMethod:
    """Several methods run side by side; the union of their flags (see the module doc)."""

    window = 1  # each part smooths its own scores with its own window

    def __init__(self, parts: Sequence[Method]) -> None:
        if len(parts) < 2 or len({p.name for p in parts}) != len(parts):
            raise ValueError("a union needs two or more different methods")
        self.parts = list(parts)
        self.name = ",".join(p.name for p in parts)
        self.choices = ("; ".join(f"{p.name}: {p.choices}" for p in parts)
                        + "; the union: none (any method's flag; the score is the largest "
                        "smoothed score over its method's threshold)")

    def prepare(self, clips: list[Clip]) -> dict[str, Any]:
        parts = {p.name: p.prepare(clips) for p in self.parts}
        costs = [v for f in parts.values()
                 if isinstance(v := f.get("feature_ms_per_frame"), int | float)]
        detect = [f["detect_ms_per_frame"] for f in parts.values() if "detect_ms_per_frame" in f]
        return {"params": {n: f.get("params") for n, f in parts.items()}, "parts": parts,
                "feature_ms_per_frame": round(sum(costs), 2),
                **({"detect_ms_per_frame": detect[0]} if detect else {})}

    def fit_score(self, train_sets: Selection, tests: Selection, workdir: Path, tag: str
                  ) -> tuple[list[np.ndarray], float, dict[str, Any]]:
        """Every part fitted and scored on the same frames; the union's raw scores (the raw
        scores over the thresholds, for the raw AUC) and, under ``smoothed`` and
        ``row_fields``, its smoothed scores and per-clip contributions; threshold 1.0."""
        fitted = {p.name: p.fit_score(train_sets, tests, workdir, f"{tag}-{p.name}")
                  for p in self.parts}
        thresholds = {name: float(threshold) for name, (_, threshold, _) in fitted.items()}
        raws, smoothed, fields = [], [], []
        for i, (clip, index) in enumerate(tests):
            raw = {name: np.asarray(scored[i], np.float64)
                   for name, (scored, _, _) in fitted.items()}
            smooth = {p.name: causal_smooth(raw[p.name], p.window) for p in self.parts}
            score, _, flags = combine(smooth, thresholds)
            raws.append(combine(raw, thresholds)[0])
            smoothed.append(score)
            fields.append({"thresholds": thresholds,
                           **contributions(flags, clip.labels[index])})
        return raws, 1.0, {"threshold": 1.0, "thresholds": thresholds,
                           "parts": {name: info for name, (_, _, info) in fitted.items()},
                           "smoothed": smoothed, "row_fields": fields}


def contribution_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown: per clip (and ``overall``), the frames each method flags (false alarms
    among them), those only it flags, and those all flag."""
    names = list(rows[0]["flagged_by"]) if rows else []
    head = " | ".join(f"{n} flagged (false alarms) | {n} only" for n in names)
    lines = [f"| clip | {head} | all |", "|---" * (2 * len(names) + 2) + "|"]
    for row in rows:
        cells = " | ".join(f"{row['flagged_by'][n]} ({row['false_alarms_by'][n]}) | "
                           f"{row['only_by'][n]}" for n in names)
        lines.append(f"| {row['clip']} | {cells} | {row['flagged_by_all']} |")
    return lines
