"""Frame-level anomaly metrics shared by ``argus eval anomaly``'s methods and protocols.

Pure numpy/scipy: ROC AUC, the rates of 0/1 decisions at an operating threshold, the
per-event detection delay, clip lists (``"01,02,03"``) and the per-protocol pool of scored
frames that gives the ``overall`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy.stats import rankdata

SMOKE_FRAMES = 40


@dataclass
class Clip:
    """One clip's frames (a window of them in smoke mode) and their 0/1 labels."""

    name: str
    paths: list[Path]
    frames: np.ndarray  # frame indices in the clip
    labels: np.ndarray


Selection = list[tuple[Clip, np.ndarray]]
"""Clips with the indices (into ``Clip.paths``) of the frames used."""


class Method(Protocol):
    """An anomaly method as the protocols drive it."""

    name: str
    window: int  # causal smoothing window (frames)
    choices: str  # which clips its parameters were chosen on

    def prepare(self, clips: list[Clip]) -> dict[str, Any]:
        """Per-frame work done once for every clip; returns figures for the report."""
        ...

    def fit_score(self, train_sets: Selection, tests: Selection, workdir: Path, tag: str
                  ) -> tuple[list[np.ndarray], float, dict[str, Any]]:
        """Fit on the training frames; raw frame scores of each test selection, the
        operating threshold (from training data only) and training figures."""
        ...


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


def events(labels: np.ndarray) -> list[tuple[int, int]]:
    """The abnormal events: (first, last + 1) of each run of consecutive 1 labels.

    >>> events(np.array([0, 1, 1, 0, 1]))
    [(1, 3), (4, 5)]
    """
    y = np.concatenate([[0], np.asarray(labels).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(y))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def event_delays(flagged: np.ndarray, labels: np.ndarray) -> list[int | None]:
    """Per abnormal event: frames from its first frame to the first flagged frame inside
    it (0 = flagged at onset), None when no frame of the event is flagged (a missed event).

    >>> event_delays(np.array([0, 0, 1, 1, 0, 0]), np.array([0, 1, 1, 1, 0, 1]))
    [1, None]
    """
    out: list[int | None] = []
    hits = np.asarray(flagged).astype(bool)
    for start, end in events(labels):
        inside = np.flatnonzero(hits[start:end])
        out.append(int(inside[0]) if len(inside) else None)
    return out


def delay_summary(delays: Sequence[int | None]) -> dict[str, Any]:
    """Events, detected events and the mean / largest delay of the detected ones (frames).

    >>> delay_summary([1, None, 3])
    {'events': 3, 'detected': 2, 'mean_delay': 2.0, 'max_delay': 3}
    """
    found = [d for d in delays if d is not None]
    return {"events": len(delays), "detected": len(found),
            "mean_delay": float(np.mean(found)) if found else None,
            "max_delay": max(found) if found else None}


def parse_clips(text: str) -> list[str]:
    """``"01,02, 3"`` -> ["01", "02", "3"] (empty items dropped; ValueError when empty).

    >>> parse_clips("01,02, 03")
    ['01', '02', '03']
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"no clip names in {text!r}")
    return names


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


def clip_row(name: str, raw: np.ndarray, smooth: np.ndarray, labels: np.ndarray,
             threshold: float) -> dict[str, Any]:
    """The metrics of one clip: AUC of the smoothed and raw scores, rates and event delays
    at ``threshold``."""
    flagged = smooth > threshold
    delays = event_delays(flagged, labels)
    return {"clip": name, "frames": len(labels), "abnormal": int(labels.sum()),
            "auc": auc(smooth, labels), "auc_raw": auc(raw, labels), "threshold": threshold,
            **rates(flagged, labels), "delays": delays, **delay_summary(delays)}


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
        delays = [d for r in rows for d in r.get("delays", [])]
        return {"clip": "overall", "frames": len(y), "abnormal": int(y.sum()),
                "auc": auc(np.concatenate(self.smooth), y),
                "auc_raw": auc(np.concatenate(self.raw), y),
                "mean_clip_auc": float(np.mean(aucs)) if aucs else None, "threshold": None,
                **rates(np.concatenate(self.flagged), y), "delays": delays,
                **delay_summary(delays)}
