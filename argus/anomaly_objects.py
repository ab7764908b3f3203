"""Object-centric anomaly scoring: attributes of tracked objects, one k-NN density model per
attribute group, calibrated on held-out normal data, with the reason for each score.

In the spirit of attribute-based video anomaly detection (Reiss & Hoshen 2022): each
tracked object of a frame is described by named attributes (class, box position / size /
aspect, speed in box heights per second, grey-level change inside the box); each attribute
*group* has its own k-nearest-neighbour model of the normal objects (standardised columns,
the class one-hot), and an object's distance in a group is divided by that group's
calibration distance (by default the largest distance of a held-out normal object), so
1.0 means "as unusual as the most unusual normal object". The object's score is the
largest of its groups; the frame's score is the largest object score (``floor`` when there
are none). The reason names the group and the attribute that is furthest from normal, e.g.
``"speed 3.1x normal"`` (the ratio to the normal objects' median).

Pure numpy: used by ``argus train anomaly --method objects``, ``argus eval anomaly`` and the
anomaly stage. The model round-trips through a JSON-safe dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Vector = Sequence[float] | npt.NDArray[Any]

FEATURES: tuple[str, ...] = ("class", "cx", "cy", "height", "aspect", "speed", "vx", "vy",
                             "change", "partial")
"""Columns of an object's feature row (see :func:`object_features`)."""
CLASS_SLOTS: tuple[int, ...] = (0, 1, 2, 3, 5, 7)
"""COCO ids with their own one-hot slot (person, bicycle, car, motorcycle, bus, truck);
every other class shares one more slot."""
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "class": ("class",),
    "shape": ("height", "aspect", "partial"),
    "motion": ("speed", "partial"),
}
LABELS = {"cx": "x position", "cy": "y position", "height": "size", "aspect": "width/height",
          "speed": "speed", "vx": "horizontal speed", "vy": "vertical speed",
          "change": "change inside box", "partial": "partly visible"}
MODEL_VERSION = 1
EDGE = 0.01
"""Boxes this close to the border (normalised) are partly outside the view."""


def object_features(box: Vector, class_id: int, velocity: Vector,
                    width: int, height: int, change: float = 0.0,
                    edge: float = EDGE) -> FloatArray:
    """One object's row of :data:`FEATURES`.

    ``box``: normalised ``x1, y1, x2, y2``; ``velocity``: the box centre's velocity in
    normalised units per second (the tracker's); ``width``/``height``: the image size in
    pixels; ``change``: mean absolute grey-level change inside the box (0-255). Speeds are
    in box heights per second, so near and far objects compare. ``partial`` is 1 for a box
    within ``edge`` of the image border (a partly visible object, whose box grows as it
    enters): with it in a group, such objects compare with partly visible normal ones.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    h_px = max((y2 - y1) * height, 1.0)
    w_px = max((x2 - x1) * width, 1.0)
    vx, vy = float(velocity[0]) * width / h_px, float(velocity[1]) * height / h_px
    row = np.array([class_id, (x1 + x2) / 2, (y1 + y2) / 2, h_px / height, w_px / h_px,
                    float(np.hypot(vx, vy)), vx, vy, change, 0.0], dtype=np.float64)
    if min(x1, y1) < edge or max(x2, y2) > 1.0 - edge:
        row[-1] = 1.0
    return row


def class_slot(class_id: int) -> int:
    """The one-hot slot of a COCO class id."""
    return CLASS_SLOTS.index(class_id) if class_id in CLASS_SLOTS else len(CLASS_SLOTS)


class CentreHistory:
    """Per track, the last box centres; velocity = the median of the last ``frames``
    frame-to-frame velocities (per axis): steadier than one frame's Kalman velocity when
    boxes jitter, and one jump (the track switching to a neighbour) does not count."""

    def __init__(self, frames: int = 5, max_tracks: int = 1000) -> None:
        self.frames = frames
        self.max_tracks = max_tracks
        self.seen: dict[int, list[tuple[float, float, float]]] = {}

    def velocity(self, track_id: int, box: Vector, ts: float) -> tuple[float, float]:
        """Record the box centre at ``ts``; (vx, vy) in normalised units per second."""
        cx, cy = (float(box[0]) + float(box[2])) / 2, (float(box[1]) + float(box[3])) / 2
        points = self.seen.pop(track_id, [])
        points = [*points, (ts, cx, cy)][-(self.frames + 1):]
        self.seen[track_id] = points  # most recently seen last
        while len(self.seen) > self.max_tracks:
            del self.seen[next(iter(self.seen))]
        p = np.array(points)
        dt = np.diff(p[:, 0])
        ok = dt > 0
        if not ok.any():
            return (0.0, 0.0)
        steps = np.diff(p[:, 1:], axis=0)[ok] / dt[ok, None]
        vx, vy = np.median(steps, axis=0)
        return (float(vx), float(vy))


@dataclass
class GroupModel:
    """The k-NN density model of one attribute group."""

    name: str
    columns: tuple[str, ...]
    mean: FloatArray  # per non-class column
    scale: FloatArray  # 1 / std per non-class column
    bank: FloatArray  # [M, D] embedded normal objects
    k: int
    class_weight: float
    norm: float = 1.0  # calibration distance (held-out normal quantile)
    median: FloatArray = field(default_factory=lambda: np.zeros(0))  # raw, per non-class col
    class_counts: dict[int, int] = field(default_factory=dict)

    @property
    def value_columns(self) -> list[int]:
        return [FEATURES.index(c) for c in self.columns if c != "class"]

    def embed(self, rows: FloatArray) -> FloatArray:
        """[n, FEATURES] -> [n, D]: standardised columns (+ the class one-hot x weight)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
        parts = [(rows[:, self.value_columns] - self.mean) * self.scale]
        if "class" in self.columns:
            onehot = np.zeros((len(rows), len(CLASS_SLOTS) + 1))
            onehot[np.arange(len(rows)), [class_slot(int(c)) for c in rows[:, 0]]] = 1.0
            parts.insert(0, onehot * self.class_weight)
        return np.concatenate(parts, axis=1)

    def distances(self, rows: FloatArray) -> FloatArray:
        """[n] mean distance of each row to its ``k`` nearest normal objects."""
        query = self.embed(rows)
        if len(query) == 0:
            return np.zeros(0)
        d2 = ((query ** 2).sum(1)[:, None] + (self.bank ** 2).sum(1)[None]
              - 2.0 * query @ self.bank.T)
        k = min(self.k, self.bank.shape[0])
        nearest = np.partition(np.maximum(d2, 0.0), k - 1, axis=1)[:, :k]
        return np.sqrt(nearest).mean(axis=1)

    def reason(self, row: FloatArray) -> str:
        """The attribute of ``row`` furthest from normal, in words."""
        if "class" in self.columns:
            seen = self.class_counts.get(int(row[0]), 0)
            if seen <= 0.01 * max(1, sum(self.class_counts.values())):
                return f"class seen in {seen} of {sum(self.class_counts.values())} normal objects"
        names = [c for c in self.columns if c != "class"]
        values = row[self.value_columns]
        z = np.abs((values - self.mean) * self.scale)
        z[[n == "partial" for n in names]] = -1.0  # context, not a reason
        if not len(z) or z.max() < 0:
            return f"unusual {self.name}"
        i = int(np.argmax(z))
        name = names[i]
        median = float(self.median[i])
        if median > 1e-6 and values[i] >= 0:
            return f"{LABELS[name]} {values[i] / median:.1f}x normal"
        return f"{LABELS[name]} {values[i]:.2f} (normal median {median:.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "bank": self.bank.round(5).tolist(),
                "k": self.k, "class_weight": self.class_weight, "norm": self.norm,
                "median": self.median.tolist(),
                "class_counts": {str(k): v for k, v in self.class_counts.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupModel:
        return cls(name=data["name"], columns=tuple(data["columns"]),
                   mean=np.array(data["mean"], float), scale=np.array(data["scale"], float),
                   bank=np.array(data["bank"], float).reshape(-1, _width(data)),
                   k=int(data["k"]), class_weight=float(data["class_weight"]),
                   norm=float(data["norm"]), median=np.array(data["median"], float),
                   class_counts={int(k): int(v) for k, v in data["class_counts"].items()})


def _width(data: dict[str, Any]) -> int:
    values = len([c for c in data["columns"] if c != "class"])
    return values + (len(CLASS_SLOTS) + 1 if "class" in data["columns"] else 0)


def fit_group(name: str, columns: Sequence[str], rows: FloatArray, k: int = 3,
              class_weight: float = 3.0) -> GroupModel:
    """A group model of the normal objects ``rows`` [n, FEATURES] (not yet calibrated)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    if len(rows) == 0:
        raise ValueError("no normal objects to fit on")
    unknown = sorted(set(columns) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown attributes {unknown} (known: {', '.join(FEATURES)})")
    value_cols = [FEATURES.index(c) for c in columns if c != "class"]
    values = rows[:, value_cols]
    classes, counts = np.unique(rows[:, 0].astype(int), return_counts=True)
    model = GroupModel(name=name, columns=tuple(columns), mean=values.mean(axis=0),
                       scale=1.0 / (values.std(axis=0) + 1e-3), bank=np.zeros((0, 0)),
                       k=k, class_weight=class_weight, median=np.median(values, axis=0),
                       class_counts={int(c): int(n) for c, n in zip(classes, counts,
                                                                      strict=True)})
    model.bank = model.embed(rows)
    return model


@dataclass
class Explanation:
    """Which object and attribute made a frame's score."""

    index: int  # the object's row in the frame
    group: str
    score: float  # calibrated (1.0 = the normal calibration quantile)
    reason: str


@dataclass
class ObjectModel:
    """Every group's model, the operating threshold and the smoothing window."""

    groups: list[GroupModel]
    threshold: float = 1.0
    window: int = 5
    floor: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def object_scores(self, rows: FloatArray) -> FloatArray:
        """[n, groups] calibrated scores of the objects ``rows`` [n, FEATURES]."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
        if len(rows) == 0:
            return np.zeros((0, len(self.groups)))
        return np.stack([g.distances(rows) / g.norm for g in self.groups], axis=1)

    def score_frame(self, rows: FloatArray) -> tuple[float, Explanation | None]:
        """A frame's score (the largest object score, ``floor`` without objects) and why."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
        scores = self.object_scores(rows)
        if scores.size == 0:
            return self.floor, None
        index, group = np.unravel_index(int(np.argmax(scores)), scores.shape)
        best = float(scores[index, group])
        model = self.groups[int(group)]
        return max(best, self.floor), Explanation(int(index), model.name, best,
                                                  model.reason(rows[int(index)]))

    def to_dict(self) -> dict[str, Any]:
        return {"version": MODEL_VERSION, "method": "objects", "threshold": self.threshold,
                "window": self.window, "floor": self.floor, "info": self.info,
                "groups": [g.to_dict() for g in self.groups]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectModel:
        if data.get("version") != MODEL_VERSION or data.get("method") != "objects":
            raise ValueError(f"not an object anomaly model (version {data.get('version')!r}, "
                             f"method {data.get('method')!r})")
        return cls(groups=[GroupModel.from_dict(g) for g in data["groups"]],
                   threshold=float(data["threshold"]), window=int(data["window"]),
                   floor=float(data["floor"]), info=dict(data.get("info", {})))


Frames = list[FloatArray]
"""One clip: per frame, its objects' rows [n, FEATURES]."""


@dataclass(frozen=True)
class ObjectParams:
    """Hyper-parameters of :func:`fit_model` (stored in the model's ``info``)."""

    groups: tuple[tuple[str, tuple[str, ...]], ...] = tuple(DEFAULT_GROUPS.items())
    k: int = 3
    class_weight: float = 3.0
    norm_quantile: float = 1.0  # group calibration: quantile of held-out normal distances
    # (1.0: the largest, so 1.0 = as unusual as the most unusual held-out normal object)
    quantile: float = 0.9  # threshold: quantile of held-out smoothed normal frame scores
    margin: float = 1.0
    window: int = 5
    floor: float = 0.0
    min_norm: float = 0.5  # calibration distance floor (standardised units): a group where
    # held-out normal objects all sit on bank rows (one class only) must not divide by ~0


def causal_mean(scores: FloatArray, window: int) -> FloatArray:
    """Trailing mean over ``window`` frames (fewer at the start), as the stage smooths."""
    scores = np.asarray(scores, dtype=np.float64)
    if window <= 1 or len(scores) == 0:
        return scores.copy()
    sums = np.cumsum(np.concatenate([[0.0], scores]))
    idx = np.arange(1, len(scores) + 1)
    start = np.maximum(0, idx - window)
    return (sums[idx] - sums[start]) / (idx - start)


def _fit_groups(clips: Sequence[Frames], params: ObjectParams) -> list[GroupModel]:
    rows = np.concatenate([r for clip in clips for r in clip if len(r)] or
                          [np.zeros((0, len(FEATURES)))])
    return [fit_group(name, cols, rows, params.k, params.class_weight)
            for name, cols in params.groups]


def _split(clips: Sequence[Frames], parts: int = 5) -> list[Frames]:
    """Clips as calibration groups; a single clip is cut into ``parts`` runs of frames."""
    clips = [c for c in clips if len(c)]
    if len(clips) >= 2:
        return list(clips)
    frames = clips[0] if clips else []
    size = max(1, -(-len(frames) // parts))
    return [frames[i:i + size] for i in range(0, len(frames), size)]


def fit_model(clips: Sequence[Frames], params: ObjectParams | None = None) -> ObjectModel:
    """Fit on the normal frames of ``clips`` and calibrate on held-out normal data: each clip
    (or fifth of one clip) is scored by groups fitted on the others; each group's ``norm``
    is the ``norm_quantile`` of its held-out distances, and the threshold the ``quantile``
    of the held-out smoothed frame scores x ``margin``."""
    params = params or ObjectParams()
    parts = _split(clips)
    if len(parts) < 2:
        raise ValueError("need at least two normal frames with objects to calibrate")
    held: list[tuple[list[GroupModel], Frames]] = []
    distances: list[list[FloatArray]] = [[] for _ in params.groups]
    for i, part in enumerate(parts):
        others = [p for j, p in enumerate(parts) if j != i]
        if not any(len(r) for p in others for r in p):
            continue
        groups = _fit_groups(others, params)
        held.append((groups, part))
        for r in part:
            for slot, group in enumerate(groups):
                if len(r):
                    distances[slot].append(group.distances(r))
    if not held:
        raise ValueError("need normal objects in at least two clips (or parts) to calibrate")
    norms = [max(float(np.quantile(np.concatenate(d), params.norm_quantile)) if d else 1.0,
                 params.min_norm) for d in distances]
    smoothed = []
    for fitted, part in held:
        for group, norm in zip(fitted, norms, strict=True):
            group.norm = norm
        held_model = ObjectModel(fitted, floor=params.floor)
        frame = np.array([held_model.score_frame(r)[0] for r in part])
        smoothed.append(causal_mean(frame, params.window))
    threshold = float(np.quantile(np.concatenate(smoothed), params.quantile) * params.margin)
    final = _fit_groups(parts, params)
    for group, norm in zip(final, norms, strict=True):
        group.norm = norm
    return ObjectModel(final, threshold=threshold, window=params.window, floor=params.floor,
                       info={"objects": int(sum(len(r) for p in parts for r in p)),
                             "frames": int(sum(len(p) for p in parts)),
                             "calibration_frames": int(sum(len(s) for s in smoothed)),
                             "norms": dict(zip([n for n, _ in params.groups], norms,
                                               strict=True)),
                             "params": {"groups": {n: list(c) for n, c in params.groups},
                                        "k": params.k, "class_weight": params.class_weight,
                                        "norm_quantile": params.norm_quantile,
                                        "min_norm": params.min_norm, "floor": params.floor,
                                        "quantile": params.quantile,
                                        "margin": params.margin}})
