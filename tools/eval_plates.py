"""``argus eval plates``: how many plates are read exactly, end to end, and how fast.

    argus eval plates --folder DIR --labels CSV [--crops] [--format REGEX] [--fold O=0]
                      [--split all|tune|test] [--no-whole-photo] [--limit N] [--json PATH]

Labels: a CSV with ``file,width,height,x,y,w,h,plate`` (one labelled plate per photo, the box
in pixels of the stored image), as ``../shared/data/plates/openalpr_us/plates.csv``.

End to end (default), the path the plate stage takes: the photo → YOLOX vehicle detection
(the ``detector`` model's own code and ``config.pbtxt`` parameters, one thread) → every car,
motorcycle, bus or truck at least ``--min-width`` pixels wide → the ``plates`` model's code
(``platelib.py`` with its ``config.pbtxt`` parameters, onnxruntime on one thread) → the site
format (``--format``, ``--fold``, confusion repair; :func:`argus.plates.reader.plate_of`).
A photo with no such vehicle is read whole, as a stills camera does (``plates.whole_photo``,
on by default for stills; ``--no-whole-photo``: not read, as before).
A plate is *found* when a vehicle's chosen read has its box centre inside the labelled box
(grown by half its size); *exact* when that read's normalised text equals the label;
*character accuracy* is 1 - edit distance / label length (0 when not found). Timing: the
plate reader's milliseconds per vehicle read (decoding and vehicle detection are reported
apart, per photo; whole-photo reads apart from the vehicles').

``--crops`` scores recognition alone: the labelled plate box grown by 15 % per side → the same
reader with the search region the whole crop.

Split: photos in the CSV's order; every third one (index 0, 3, 6, ...) is *test*, held out,
the others *tune* (what any parameter was chosen on). Both are reported separately.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus.classes import VEHICLE_CLASSES
from argus.modelcode import load_yolox_module, triton_parameters
from argus.plates.reader import local_reader, plate_of
from argus.plates.text import PlateFormat, edit_distance
from argus.settings import get_settings
from tools.bench import machine

VEHICLE_IDS = frozenset(load_yolox_module().COCO_CLASSES.index(name)
                        for name in VEHICLE_CLASSES)
"""The COCO class ids of the vehicles whose plates are read."""
CROP_MARGIN = 0.15


@dataclass
class Label:
    """One labelled photo."""

    index: int
    file: str
    box: tuple[int, int, int, int]
    """x, y, w, h in pixels."""
    plate: str

    @property
    def split(self) -> str:
        """``test`` (every third photo) or ``tune``."""
        return "test" if self.index % 3 == 0 else "tune"


def load_labels(path: Path) -> list[Label]:
    """The labels CSV (``file,width,height,x,y,w,h,plate``)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"file", "x", "y", "w", "h", "plate"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
    return [Label(i, row["file"], (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])),
                  row["plate"].strip().upper()) for i, row in enumerate(rows)]


def box_hit(read_box: list[float] | tuple[float, ...], label: Label, width: int,
            height: int) -> bool:
    """Whether a read's box (normalised) has its centre inside the labelled box grown by
    half its size on every side."""
    x, y, w, h = label.box
    cx = (read_box[0] + read_box[2]) / 2 * width
    cy = (read_box[1] + read_box[3]) / 2 * height
    return x - w / 2 <= cx <= x + 1.5 * w and y - h / 2 <= cy <= y + 1.5 * h


def char_accuracy(read: str, truth: str) -> float:
    """1 - edit distance / length of the truth, at least 0.

    >>> char_accuracy("AB123", "AB128"), char_accuracy("", "AB")
    (0.8, 0.0)
    """
    return max(0.0, 1.0 - edit_distance(read, truth) / max(1, len(truth)))


class Evaluator:
    """The reader (and, end to end, the vehicle detector) configured like Triton's models."""

    def __init__(self, fmt: PlateFormat, crops: bool, min_width: int, min_score: float,
                 overrides: dict[str, str] | None = None, whole_photo: bool = True) -> None:
        settings = get_settings()
        self.fmt = fmt
        self.crops = crops
        self.whole_photo = whole_photo and not crops
        self.min_width = min_width
        self.min_score = min_score
        self.params = {**triton_parameters("plates"), **(overrides or {})}
        self.reader = local_reader(settings.models_dir, self.params, threads=1)
        self.detector: Any = None
        if not crops:
            det_params = triton_parameters("detector")
            self.detector = load_yolox_module().DetectorRunner.configured(
                str(settings.models_dir / det_params.get("model_file", "yolox_nano.onnx")),
                det_params, threads=1)

    def one(self, image: np.ndarray, label: Label) -> dict[str, Any]:
        """Score one photo."""
        height, width = image.shape[:2]
        out: dict[str, Any] = {"file": label.file, "split": label.split, "truth": label.plate,
                               "read": "", "found": False, "exact": False, "vehicles": 0,
                               "reader_ms": 0.0, "detect_ms": 0.0, "vehicle_ms": [],
                               "whole_photo": False, "whole_ms": []}
        regions: list[tuple[float, float, float, float] | None] = []
        search_top: float | None = None
        if self.crops:
            x, y, w, h = label.box
            mx, my = w * CROP_MARGIN, h * CROP_MARGIN
            regions.append(((x - mx) / width, (y - my) / height, (x + w + mx) / width,
                            (y + h + my) / height))
            search_top = 0.0
        else:
            start = time.perf_counter()
            boxes, scores, classes = self.detector.detect_image(image)
            out["detect_ms"] = round((time.perf_counter() - start) * 1000, 2)
            regions = [*select_vehicles(boxes.tolist(), scores.tolist(), classes.tolist(),
                                        self.min_score, self.min_width / width)]
            out["vehicles"] = len(regions)
            if not regions and self.whole_photo:  # the stage's stills rule: read it whole
                regions, out["whole_photo"] = [None], True
        chosen: list[tuple[float, str, list[float]]] = []
        lib_start = time.perf_counter()
        for region in regions:
            one_start = time.perf_counter()
            reads = [r.as_dict() for r in self.reader.read_image(image, region, search_top)]
            ms = round((time.perf_counter() - one_start) * 1000, 2)
            out["whole_ms" if region is None else "vehicle_ms"].append(ms)
            picked = plate_of(reads, self.fmt)
            if picked is None:
                continue
            item, normal = picked
            chosen.append((float(item["score"]), normal.text, list(item["box"])))
        out["reader_ms"] = round((time.perf_counter() - lib_start) * 1000, 2)
        if self.crops:
            out["vehicles"] = len(regions)
        hits = sorted((c for c in chosen if box_hit(c[2], label, width, height)),
                      key=lambda c: -c[0])
        if hits:
            out["read"] = hits[0][1]
            out["found"] = True
            out["exact"] = hits[0][1] == label.plate
        out["char_accuracy"] = round(char_accuracy(out["read"], label.plate), 4)
        return out


def select_vehicles(boxes: list[list[float]], scores: list[float], classes: list[int],
                    min_score: float, min_width: float, same_iou: float = 0.6,
                    ) -> list[tuple[float, float, float, float]]:
    """The vehicle boxes to read, best score first: COCO car, motorcycle, bus or truck, score
    at least ``min_score``, width at least ``min_width`` (normalised); a box overlapping one
    already kept by ``same_iou`` or more is the same vehicle under another class.

    >>> select_vehicles([[0, 0, .5, .5], [0, 0, .5, .52], [.6, .6, .9, .9], [0, 0, 1, 1]],
    ...                 [0.9, 0.4, 0.2, 0.8], [2, 7, 2, 0], 0.1, 0.1)
    [(0, 0, 0.5, 0.5), (0.6, 0.6, 0.9, 0.9)]
    """
    kept: list[tuple[float, float, float, float]] = []
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    for i in order:
        box = tuple(boxes[i])
        if classes[i] not in VEHICLE_IDS or scores[i] < min_score or \
                box[2] - box[0] < min_width:
            continue
        if any(_iou(box, other) >= same_iou for other in kept):
            continue
        kept.append((box[0], box[1], box[2], box[3]))
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates and timings of a set of scored photos."""
    if not rows:
        return {"photos": 0}
    vehicles = sum(r["vehicles"] for r in rows)
    per_vehicle = sorted(ms for r in rows for ms in r["vehicle_ms"])
    whole = sorted(ms for r in rows for ms in r.get("whole_ms", []))
    return {
        "photos": len(rows),
        "found": round(sum(r["found"] for r in rows) / len(rows), 4),
        "exact": round(sum(r["exact"] for r in rows) / len(rows), 4),
        "char_accuracy": round(statistics.fmean(r["char_accuracy"] for r in rows), 4),
        "vehicles": vehicles,
        "ms_per_vehicle": round(sum(per_vehicle) / max(1, vehicles), 1),
        "median_ms_per_vehicle": round(statistics.median(per_vehicle), 1) if per_vehicle else 0.0,
        "p90_ms_per_vehicle": round(per_vehicle[int(0.9 * (len(per_vehicle) - 1))], 1)
        if per_vehicle else 0.0,
        "detect_ms_per_photo": round(statistics.fmean(r["detect_ms"] for r in rows), 1),
        "whole_photos": len(whole),
        "whole_photos_exact": sum(r["exact"] for r in rows if r.get("whole_photo")),
        "ms_per_whole_photo": round(statistics.fmean(whole), 1) if whole else 0.0,
        "median_ms_per_whole_photo": round(statistics.median(whole), 1) if whole else 0.0,
    }


def run(folder: Path, labels: list[Label], evaluator: Evaluator) -> list[dict[str, Any]]:
    """Score every labelled photo (missing or unreadable files are an error)."""
    rows = []
    for label in labels:
        image = cv2.imread(str(folder / label.file), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {folder / label.file}")
        rows.append(evaluator.one(image, label))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus eval plates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True, help="the photos")
    parser.add_argument("--labels", type=Path, required=True, help="the labels CSV")
    parser.add_argument("--crops", action="store_true",
                        help="recognition alone, on the labelled plate boxes")
    parser.add_argument("--format", default=PlateFormat().pattern,
                        help="the site's plate format, a full-match regex (default: any "
                             "2-10 of A-Z0-9)")
    parser.add_argument("--fold", default="", help="characters folded first, e.g. O=0")
    parser.add_argument("--drop-below", type=float, default=0.0,
                        help="drop characters read below this confidence (0: none)")
    parser.add_argument("--split", choices=["all", "tune", "test"], default="all")
    parser.add_argument("--limit", type=int, default=0, help="at most N photos (0: all)")
    parser.add_argument("--min-width", type=int, default=60,
                        help="vehicles narrower than this (pixels) are not read")
    parser.add_argument("--min-score", type=float, default=0.1,
                        help="vehicle detections below this score are not read")
    parser.add_argument("--no-whole-photo", dest="whole_photo", action="store_false",
                        help="a photo with no vehicle is not read (default: read whole, as a "
                             "stills camera does)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter of triton_models/plates/config.pbtxt")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--misses", action="store_true", help="list every photo not exact")
    args = parser.parse_args(argv)

    fmt = PlateFormat(pattern=args.format, fold=PlateFormat.parse_fold(args.fold),
                      drop_below=args.drop_below)
    labels = load_labels(args.labels)
    if args.split != "all":
        labels = [label for label in labels if label.split == args.split]
    if args.limit:
        labels = labels[:args.limit]
    overrides = dict(item.split("=", 1) for item in args.param)
    evaluator = Evaluator(fmt, args.crops, args.min_width, args.min_score, overrides,
                          whole_photo=args.whole_photo)
    rows = run(args.folder, labels, evaluator)
    by_split = {name: summarise([r for r in rows if r["split"] == name])
                for name in ("tune", "test")}
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "mode": "crops" if args.crops else "end_to_end",
        "folder": str(args.folder), "format": fmt.pattern, "fold": fmt.fold,
        "drop_below": fmt.drop_below, "whole_photo": evaluator.whole_photo,
        "reader": evaluator.params, "threads": 1, "machine": machine(),
        "versions": _versions(),
        "all": summarise(rows), **by_split,
        "misses": [{k: r[k] for k in ("file", "split", "truth", "read")}
                   for r in rows if not r["exact"]],
    }
    mode = "recognition on labelled plate boxes" if args.crops else \
        "end to end (vehicle detection -> plate reader -> format)"
    print(f"plates, {mode}, {len(rows)} photos of {args.folder}, format {fmt.pattern!r}")
    print(f"{'split':<6} {'photos':>6} {'found':>7} {'exact':>7} {'chars':>7} "
          f"{'vehicles':>8} {'ms/vehicle':>10} {'median':>7} {'p90':>7} {'detect ms':>9}")
    for name in ("tune", "test", "all"):
        s = report[name]
        if s.get("photos"):
            print(f"{name:<6} {s['photos']:>6} {s['found']:>7.1%} {s['exact']:>7.1%} "
                  f"{s['char_accuracy']:>7.1%} {s['vehicles']:>8} {s['ms_per_vehicle']:>10.1f} "
                  f"{s['median_ms_per_vehicle']:>7.1f} {s['p90_ms_per_vehicle']:>7.1f} "
                  f"{s['detect_ms_per_photo']:>9.1f}")
    for name in ("tune", "test"):
        s = report[name]
        if s.get("whole_photos"):
            print(f"{name:<6} {s['whole_photos']} photos with no vehicle read whole, "
                  f"{s['whole_photos_exact']} exact, {s['ms_per_whole_photo']:.1f} ms mean, "
                  f"{s['median_ms_per_whole_photo']:.1f} median")
    if args.misses:
        for miss in report["misses"]:
            print(f"  miss {miss['split']:<4} {miss['truth']:<9} read {miss['read'] or '-':<9} "
                  f"{miss['file']}")
    text = json.dumps(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _versions() -> dict[str, str]:
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


if __name__ == "__main__":
    raise SystemExit(main())
