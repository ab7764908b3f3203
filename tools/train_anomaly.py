"""``argus train anomaly``: fit a camera's motion-anomaly model on its normal footage.

    argus train anomaly --frames DIR [--labels CSV] --out PATH

``DIR`` holds the frames in order, either directly (one clip) or in one sub-folder per clip
(``DIR/01/000.jpg`` ...). With ``--labels`` (CSV with ``clip``, ``frame_idx0`` and
``abnormal`` columns, as UCSD Ped2's ``frame_labels.csv``) only the frames labelled normal
are used, and only pairs whose both frames are normal; without it every frame is assumed
normal. Frames must come at the rate the camera's frames reach the stage (the grabber's
``fps``), since the features are speeds in pixels per frame.

The model (see ``triton_models/anomaly/1/anomalylib.py`` for the features) is a k-nearest-
neighbour density model over the cells of the normal frames: each cell of a new frame is
scored by its mean distance to the ``k`` closest normal cells, in standardised feature
space plus the cell position (so a speed that is normal in one part of the view can be
unusual in another); the frame score is the largest cell score. The bank of normal cells
is de-duplicated on a grid and written as constants of a small ONNX graph (MatMul, TopK),
so serving needs onnxruntime only.

The operating threshold is chosen without labels of anything it is later tested on: each
training clip (or, for one clip, each fifth of it) is scored by a bank built from the
other ones, the scores are smoothed like the stage smooths them, and the threshold is a
high quantile (``--quantile``, default 0.99) of those held-out normal scores times
``--margin``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus.log import get_logger
from pipelines.stages.anomaly.features import (
    anomalylib,
    causal_smooth,
    cell_features,
    feature_config,
    to_gray,
    working_size,
)

log = get_logger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
OPSET = 17


@dataclass(frozen=True)
class KnnParams:
    """Model hyper-parameters (all stored in the model's metadata)."""

    k: int = 3  # neighbours averaged per cell
    pos_weight: float = 1.0  # weight of the cell position (0..1 per axis) vs. features
    quant: float = 0.5  # de-duplication grid step (standardised units)
    max_bank: int = 20_000  # cap on bank rows (random subsample above it)
    window: int = 5  # causal smoothing window (frames)
    quantile: float = 0.99  # threshold = quantile of held-out normal smoothed scores
    margin: float = 1.0  # ... times this


@dataclass
class KnnBank:
    """The fitted model: feature scale, cell positions and the bank of normal cells."""

    scale: np.ndarray  # [D] 1/std of each feature
    positions: np.ndarray  # [cells, 2] weighted (row, col) in 0..1
    bank: np.ndarray  # [M, D + 2] standardised normal cells
    k: int
    stats: dict[str, Any] = field(default_factory=dict)


def list_clips(frames_dir: Path) -> list[tuple[str, list[Path]]]:
    """(clip name, sorted frame paths) per clip: sub-folders with images, else the folder."""
    def images(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    if not frames_dir.is_dir():
        raise FileNotFoundError(f"frames folder {frames_dir} does not exist")
    clips = [(d.name, images(d)) for d in sorted(frames_dir.iterdir()) if d.is_dir()]
    clips = [(name, paths) for name, paths in clips if paths]
    if not clips:
        own = images(frames_dir)
        clips = [(frames_dir.name, own)] if own else []
    if not clips:
        raise FileNotFoundError(f"no images in {frames_dir} or its sub-folders")
    return clips


def _clip_key(name: str) -> str:
    """Clip names compare without leading zeros ("01" == "1")."""
    return name.lstrip("0") or "0"


def load_labels(path: Path) -> dict[str, dict[int, int]]:
    """{clip: {0-based frame: abnormal 0/1}} from a CSV with clip, frame_idx0, abnormal."""
    labels: dict[str, dict[int, int]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"clip", "frame_idx0", "abnormal"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            labels.setdefault(_clip_key(row["clip"]), {})[int(row["frame_idx0"])] = int(
                row["abnormal"])
    return labels


def clip_labels(labels: dict[str, dict[int, int]], clip: str, frames: int) -> np.ndarray:
    """The 0/1 label of each frame of ``clip`` (``KeyError`` if any is missing)."""
    per_frame = labels.get(_clip_key(clip))
    if per_frame is None:
        raise KeyError(f"no labels for clip {clip!r}")
    missing = [i for i in range(frames) if i not in per_frame]
    if missing:
        raise KeyError(f"clip {clip!r}: no label for frames {missing[:5]}...")
    return np.array([per_frame[i] for i in range(frames)], dtype=np.int8)


def config_for(first_frame: Path, width: int = 360) -> Any:
    """The feature configuration for frames like ``first_frame`` (its aspect ratio)."""
    image = cv2.imread(str(first_frame), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read {first_frame}")
    w, h = working_size(image.shape[1], image.shape[0], width)
    return feature_config(width=w, height=h)


def clip_features(paths: Sequence[Path], config: Any) -> np.ndarray:
    """[frames, cells, D] features of a clip: frame t from the pair (t-1, t), frame 0 from
    (0, 1) (a single frame: zeros)."""
    grays = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot read {path}")
        grays.append(to_gray(image, config))
    out = np.zeros((len(grays), config.cells, len(anomalylib().FEATURE_NAMES)), np.float32)
    for t in range(1, len(grays)):
        out[t] = cell_features(grays[t - 1], grays[t], config)
    if len(grays) > 1:
        out[0] = out[1]
    return out


def normal_pairs(labels: np.ndarray) -> np.ndarray:
    """Frames usable for training: t >= 1 with frames t-1 and t both normal.

    >>> normal_pairs(np.array([0, 0, 1, 0, 0])).tolist()
    [1, 4]
    """
    ok = (labels[1:] == 0) & (labels[:-1] == 0)
    return np.flatnonzero(ok) + 1


def cell_positions(config: Any, weight: float) -> np.ndarray:
    """[cells, 2] (row, col) of each cell centre in 0..1, times ``weight``."""
    rows, cols = np.meshgrid((np.arange(config.rows) + 0.5) / config.rows,
                             (np.arange(config.cols) + 0.5) / config.cols, indexing="ij")
    return (np.stack([rows.ravel(), cols.ravel()], 1) * weight).astype(np.float32)


def embed(features: np.ndarray, scale: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """[n, cells, D] -> [n * cells, D + 2] standardised features with cell positions."""
    n, cells, _ = features.shape
    pos = np.broadcast_to(positions, (n, cells, 2))
    return np.concatenate([features * scale, pos], axis=2).reshape(n * cells, -1).astype(
        np.float32)


def fit_bank(features: np.ndarray, config: Any, params: KnnParams, seed: int = 0) -> KnnBank:
    """The k-NN model of normal cells ``features`` [n, cells, D]."""
    if len(features) == 0:
        raise ValueError("no normal frames to train on")
    flat = features.reshape(-1, features.shape[2])
    scale = (1.0 / (flat.std(axis=0) + 1e-3)).astype(np.float32)
    positions = cell_positions(config, params.pos_weight)
    rows = embed(features, scale, positions)
    keys = np.round(rows / params.quant).astype(np.int32)
    _, first = np.unique(keys, axis=0, return_index=True)
    bank = rows[np.sort(first)]
    deduplicated = len(bank)
    if len(bank) > params.max_bank:
        pick = np.random.default_rng(seed).choice(len(bank), params.max_bank, replace=False)
        bank = bank[np.sort(pick)]
    return KnnBank(scale=scale, positions=positions, bank=bank, k=min(params.k, len(bank)),
                   stats={"frames": len(features), "cells": len(rows),
                          "unique": deduplicated, "bank": len(bank)})


def knn_cell_scores(model: KnnBank, features: np.ndarray, chunk_elems: int = 16_000_000
                    ) -> np.ndarray:
    """[n, cells] mean distance to the k nearest bank rows (numpy twin of the ONNX graph)."""
    n, cells, _ = features.shape
    queries = embed(features, model.scale, model.positions)
    bank_sq = (model.bank.astype(np.float64) ** 2).sum(axis=1)
    step = max(1, chunk_elems // max(1, len(model.bank)))
    out = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), step):
        q = queries[start:start + step]
        d2 = (q.astype(np.float64) ** 2).sum(axis=1)[:, None] + bank_sq[None] - 2.0 * (
            q @ model.bank.T)
        nearest = np.partition(np.maximum(d2, 0.0), model.k - 1, axis=1)[:, :model.k]
        out[start:start + step] = np.sqrt(nearest).mean(axis=1)
    return out.reshape(n, cells)


def held_out_scores(groups: Sequence[np.ndarray], config: Any, params: KnnParams
                    ) -> list[np.ndarray]:
    """Smoothed frame scores of each group by a bank fitted on the other groups."""
    out = []
    for i, group in enumerate(groups):
        others = [g for j, g in enumerate(groups) if j != i and len(g)]
        if not others or not len(group):
            continue
        model = fit_bank(np.concatenate(others), config, params)
        frame = knn_cell_scores(model, group).max(axis=1)
        out.append(causal_smooth(frame, params.window))
    return out


def calibration_groups(groups: Sequence[np.ndarray], min_groups: int = 5
                       ) -> list[np.ndarray]:
    """The clips as groups; with fewer than two, the frames cut into ``min_groups`` runs."""
    groups = [g for g in groups if len(g)]
    if len(groups) >= 2:
        return list(groups)
    frames = np.concatenate(groups) if groups else np.zeros((0, 1, 1), np.float32)
    return [part for part in np.array_split(frames, min_groups) if len(part)]


def train(groups: Sequence[np.ndarray], config: Any, params: KnnParams
          ) -> tuple[KnnBank, float, dict[str, Any]]:
    """Fit the bank on all ``groups`` (normal features per clip) and choose the threshold.
    Returns the model, the threshold and calibration figures."""
    started = time.perf_counter()
    held = held_out_scores(calibration_groups(groups), config, params)
    if not held:
        raise ValueError("need at least two frames of normal motion to calibrate")
    scores = np.concatenate(held)
    threshold = float(np.quantile(scores, params.quantile) * params.margin)
    model = fit_bank(np.concatenate([g for g in groups if len(g)]), config, params)
    stats = {"calibration_frames": len(scores), "calibration_median": float(np.median(scores)),
             "train_s": round(time.perf_counter() - started, 3), **model.stats}
    return model, threshold, stats


def export_onnx(model: KnnBank, config: Any, threshold: float, params: KnnParams,
                path: Path, extra: dict[str, Any] | None = None) -> None:
    """Write the model as ONNX (FEATURES [B, cells, D] -> CELL_SCORES, SCORE) with its
    metadata; needs the ``onnx`` package (``pip install -e .[train]``)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    lib = anomalylib()
    dims = len(lib.FEATURE_NAMES)
    consts = {
        "scale": model.scale.reshape(1, 1, dims),
        "positions": model.positions.reshape(1, config.cells, 2),
        "bank_t": np.ascontiguousarray(model.bank.T),
        "bank_sq": (model.bank.astype(np.float64) ** 2).sum(axis=1).astype(np.float32),
        "flat_shape": np.array([-1, dims + 2], np.int64),
        "k": np.array([model.k], np.int64),
        "two": np.array(2.0, np.float32), "zero": np.array(0.0, np.float32),
        "axis1": np.array([1], np.int64), "starts": np.array([0], np.int64),
        "ends": np.array([2], np.int64), "pos_shape_tail": np.array([2], np.int64),
    }
    n = helper.make_node
    nodes = [
        n("Shape", ["FEATURES"], ["in_shape"]),
        n("Slice", ["in_shape", "starts", "ends"], ["bn"]),  # [B, cells]
        n("Concat", ["bn", "pos_shape_tail"], ["pos_shape"], axis=0),
        n("Mul", ["FEATURES", "scale"], ["scaled"]),
        n("Expand", ["positions", "pos_shape"], ["pos"]),
        n("Concat", ["scaled", "pos"], ["emb"], axis=2),
        n("Reshape", ["emb", "flat_shape"], ["q"]),
        n("Mul", ["q", "q"], ["q2"]),
        n("ReduceSum", ["q2", "axis1"], ["qq"], keepdims=1),
        n("MatMul", ["q", "bank_t"], ["qb"]),
        n("Mul", ["qb", "two"], ["qb2"]),
        n("Add", ["qq", "bank_sq"], ["s"]),
        n("Sub", ["s", "qb2"], ["d2raw"]),
        n("Max", ["d2raw", "zero"], ["d2"]),
        n("TopK", ["d2", "k"], ["near", "near_idx"], axis=1, largest=0, sorted=1),
        n("Sqrt", ["near"], ["dist"]),
        n("ReduceMean", ["dist"], ["cell_flat"], axes=[1], keepdims=0),
        n("Reshape", ["cell_flat", "bn"], ["CELL_SCORES"]),
        n("ReduceMax", ["CELL_SCORES"], ["SCORE"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "argus_anomaly_knn",
        [helper.make_tensor_value_info("FEATURES", TensorProto.FLOAT, ["B", config.cells, dims])],
        [helper.make_tensor_value_info("CELL_SCORES", TensorProto.FLOAT, ["B", config.cells]),
         helper.make_tensor_value_info("SCORE", TensorProto.FLOAT, ["B"])],
        initializer=[numpy_helper.from_array(v, name) for name, v in consts.items()])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="argus train anomaly")
    onnx_model.ir_version = 8
    info = lib.ModelInfo(features=config, threshold=threshold, window=params.window,
                         extra={"model": "knn", "k": model.k, "pos_weight": params.pos_weight,
                                "quantile": params.quantile, "margin": params.margin,
                                "feature_names": list(lib.FEATURE_NAMES), **(extra or {})})
    helper.set_model_props(onnx_model, {lib.METADATA_KEY: info.to_json()})
    checker.check_model(onnx_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(onnx_model.SerializeToString())
    tmp.replace(path)  # atomic: Triton may be reading the previous version


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", choices=("flow", "objects"), default="flow")
    if pre.parse_known_args(argv)[0].method == "objects":
        from tools.train_anomaly_objects import main as train_objects

        return train_objects(argv)
    parser = argparse.ArgumentParser(prog="argus train anomaly", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("flow", "objects"), default="flow",
                        help="flow: this frame-level model; objects: the object-centric "
                        "attribute model (tools/train_anomaly_objects.py)")
    parser.add_argument("--frames", required=True, help="folder of frames (or of clip folders)")
    parser.add_argument("--labels", help="CSV clip,frame_idx0,abnormal: train on 0s only")
    parser.add_argument("--out", required=True,
                        help="model file, e.g. .cache/models/anomaly/<camera>.onnx")
    defaults = KnnParams()
    parser.add_argument("--k", type=int, default=defaults.k)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--quantile", type=float, default=defaults.quantile)
    parser.add_argument("--margin", type=float, default=defaults.margin)
    args = parser.parse_args(argv)
    params = KnnParams(k=args.k, window=args.window, quantile=args.quantile, margin=args.margin)
    started = time.perf_counter()
    try:
        clips = list_clips(Path(args.frames))
        labels = load_labels(Path(args.labels)) if args.labels else None
        config = config_for(clips[0][1][0])
        groups = []
        for name, paths in clips:
            feats = clip_features(paths, config)
            y = (clip_labels(labels, name, len(paths)) if labels is not None
                 else np.zeros(len(paths), np.int8))
            groups.append(feats[normal_pairs(y)])
        model, threshold, stats = train(groups, config, params)
        export_onnx(model, config, threshold, params, Path(args.out),
                    extra={"source": str(args.frames), **stats})
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {stats['frames']} normal frames from {len(clips)} clip(s), "
          f"bank {stats['bank']} cells, threshold {threshold:.3f} (window {params.window}), "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
