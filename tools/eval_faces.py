"""Face verification and identification accuracy, face throughput and match cost.

    python -m tools.eval_faces --folder DIR --identities CSV [--pairs CSV] [--json PATH]
                               [--via triton|local] [--max-identities N]
                               [--match-sizes 10,10000,1000000]

``--identities`` is a CSV of ``file,identity`` (the first column holding file names and the
second the identity, whatever their headers); ``--pairs`` a CSV of ``file_x,file_y,decision``
(yes/no, true/false, 1/0, same/different). Every photo is embedded once (its largest face)
through Triton's ``faces`` model (default) or in-process with the same ``facelib`` code.

Reported, as a table and as JSON:

* verification over all pairs of the identities file, and over ``--pairs`` if given: ROC AUC,
  TAR at FAR = 1 % and 0.1 % with their thresholds (``limited`` when there are too few
  impostor pairs to measure that FAR: then the threshold sits above every impostor);
* identification: the first photo of each identity is the gallery, the others are probes;
  rank-1 accuracy, and the open-set hit rate at the FAR = 1 % threshold;
* throughput: photos and faces per second for the embedding pass;
* match cost: milliseconds per probe for a numpy matrix product against N enrolled
  (random unit) embeddings, with the memory the matrix takes.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from argus.settings import get_settings

FloatArray = npt.NDArray[np.float64]
TRUE_WORDS = {"yes", "y", "true", "1", "same", "match", "genuine"}
FALSE_WORDS = {"no", "n", "false", "0", "different", "impostor", "non-match"}


# --- inputs ----------------------------------------------------------------------------------

def read_identities(path: Path) -> list[tuple[str, str]]:
    """``(file, identity)`` rows: the first two columns, a header row skipped if present."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if len(r) >= 2 and r[0].strip()]
    if rows and rows[0][0].strip().lower() in {"file", "filename", "path", "image", "img"}:
        rows = rows[1:]
    return [(r[0].strip(), r[1].strip()) for r in rows]


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """``(file_x, file_y, same)`` rows; raises ``ValueError`` naming a bad decision value."""
    out = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if len(row) < 3 or not row[0].strip():
                continue
            word = row[2].strip().lower()
            if word in TRUE_WORDS or word in FALSE_WORDS:
                out.append((row[0].strip(), row[1].strip(), word in TRUE_WORDS))
            elif line > 1:  # anything but the header must be a decision
                raise ValueError(f"{path}:{line}: decision {row[2]!r} is not yes/no")
    return out


# --- metrics ---------------------------------------------------------------------------------

def roc_auc(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> float:
    """Probability that a genuine pair scores above an impostor pair (ties count half).

    >>> roc_auc([0.9, 0.8], [0.1, 0.85])
    0.75
    """
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    if not len(g) or not len(i):
        return float("nan")
    ranks = rankdata(np.concatenate([g, i]))
    return float((ranks[: len(g)].sum() - len(g) * (len(g) + 1) / 2) / (len(g) * len(i)))


def tar_at_far(genuine: npt.ArrayLike, impostor: npt.ArrayLike, far: float,
               ) -> dict[str, float | int | bool]:
    """The most permissive threshold whose false accept rate is at most ``far``.

    Accept means ``score >= threshold``. With ``k = floor(far * impostors)`` false accepts
    allowed, the threshold sits just above the (k+1)-th best impostor. ``limited`` is true
    when ``far * impostors < 1``: the set cannot measure that FAR.

    >>> r = tar_at_far([0.9, 0.7, 0.25], [0.1, 0.2, 0.3, 0.6], 0.25)
    >>> r["tar"], round(r["threshold"], 4), r["far"]
    (0.6666666666666666, 0.3, 0.25)
    """
    g, imp = np.asarray(genuine, float), np.sort(np.asarray(impostor, float))[::-1]
    if not len(g) or not len(imp):
        return {"tar": float("nan"), "threshold": float("nan"), "far": float("nan"),
                "impostors": len(imp), "limited": True}
    allowed = int(np.floor(far * len(imp) + 1e-9))
    threshold = float(imp[allowed]) + 1e-6 if allowed < len(imp) else float(imp[-1])
    return {"tar": float((g >= threshold).mean()), "threshold": threshold,
            "far": float((imp >= threshold).mean()), "impostors": len(imp),
            "limited": far * len(imp) < 1}


def verification(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> dict[str, Any]:
    """AUC and TAR at FAR 1 % / 0.1 % for one set of pair scores."""
    return {"genuine_pairs": int(np.size(genuine)), "impostor_pairs": int(np.size(impostor)),
            "auc": roc_auc(genuine, impostor),
            "far_1pct": tar_at_far(genuine, impostor, 0.01),
            "far_0.1pct": tar_at_far(genuine, impostor, 0.001)}


def all_pair_scores(embeddings: FloatArray, identities: Sequence[str],
                    ) -> tuple[FloatArray, FloatArray]:
    """Cosine scores of every unordered pair: (genuine, impostor)."""
    ids = np.asarray(identities)
    sims = embeddings @ embeddings.T
    upper = np.triu_indices(len(ids), k=1)
    same = (ids[:, None] == ids[None, :])[upper]
    return sims[upper][same], sims[upper][~same]


def identification(embeddings: FloatArray, identities: Sequence[str],
                   threshold: float) -> dict[str, Any]:
    """Gallery = the first photo of each identity, probes = the rest: rank-1 accuracy and
    the open-set hit rate (rank-1 correct and similarity >= ``threshold``)."""
    gallery: dict[str, int] = {}
    for row, identity in enumerate(identities):
        gallery.setdefault(identity, row)
    probes = [r for r in range(len(identities)) if gallery[identities[r]] != r]
    if not probes:
        return {"gallery": len(gallery), "probes": 0, "rank1": float("nan"),
                "open_set_hit_rate": float("nan")}
    names = list(gallery)
    sims = embeddings[probes] @ embeddings[[gallery[n] for n in names]].T
    best = sims.argmax(axis=1)
    correct = np.array([names[b] == identities[p] for b, p in zip(best, probes, strict=True)])
    above = sims[np.arange(len(probes)), best] >= threshold
    return {"gallery": len(gallery), "probes": len(probes), "rank1": float(correct.mean()),
            "open_set_hit_rate": float((correct & above).mean())}


def match_cost(sizes: Sequence[int], dim: int = 512, repeats: int = 5,
               seed: int = 0) -> list[dict[str, float]]:
    """ms per probe (one probe, and a batch of 16) for ``G @ q`` + argmax over N entries."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        gallery = np.empty((n, dim), np.float32)
        for start in range(0, n, 100_000):  # generate in chunks to bound the temporaries
            chunk = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
            gallery[start:start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1,
                                                                        keepdims=True)
        probes = gallery[rng.integers(0, n, 16)]
        single, batch = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            int(np.argmax(gallery @ probes[0]))
            t1 = time.perf_counter()
            (gallery @ probes.T).argmax(axis=0)
            t2 = time.perf_counter()
            single.append((t1 - t0) * 1000)
            batch.append((t2 - t1) * 1000 / 16)
        out.append({"identities": n, "ms_per_probe": float(np.median(single)),
                    "ms_per_probe_batch16": float(np.median(batch)),
                    "matrix_mb": gallery.nbytes / 2**20})
        del gallery
    return out


# --- embedding -------------------------------------------------------------------------------

@dataclass
class Embedded:
    """One photo's largest face (None if no face) and how many faces it had."""

    file: str
    embedding: npt.NDArray[np.float32] | None
    faces: int


async def _embed_triton(paths: Sequence[Path], url: str, concurrency: int) -> list[Embedded]:
    from argus.inference.faces import TritonFaces

    client = TritonFaces(url, timeout_s=120.0)
    gate = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> Embedded:
        async with gate:
            faces, _, _ = await client.infer(path.read_bytes())
        return Embedded(path.name, faces[0].embedding if faces else None, len(faces))

    try:
        return list(await asyncio.gather(*(one(p) for p in paths)))
    finally:
        await client.close()


def _embed_local(paths: Sequence[Path]) -> list[Embedded]:
    from argus.inference.faces import load_facelib, local_analyzer

    facelib = load_facelib()
    analyzer = local_analyzer(get_settings().models_dir)
    out = []
    for path in paths:
        faces = analyzer.analyze(facelib.decode_jpeg(path.read_bytes()))
        out.append(Embedded(path.name, faces[0].embedding if faces else None, len(faces)))
    return out


def embed(paths: Sequence[Path], via: str, concurrency: int = 4,
          ) -> tuple[list[Embedded], float]:
    """Embed every photo; returns the results and the wall time in seconds."""
    started = time.perf_counter()
    if via == "triton":
        results = asyncio.run(_embed_triton(paths, get_settings().triton_grpc_url, concurrency))
    else:
        results = _embed_local(paths)
    return results, time.perf_counter() - started


# --- report ----------------------------------------------------------------------------------

def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.folder)
    rows = read_identities(Path(args.identities))
    if args.max_identities:
        keep = list(dict.fromkeys(identity for _, identity in rows))[: args.max_identities]
        rows = [r for r in rows if r[1] in keep]
    results, seconds = embed([folder / f for f, _ in rows], args.via, args.concurrency)
    by_name = {Path(f).name: r.embedding for (f, _), r in zip(rows, results, strict=True)}
    found = [(f, i, r.embedding) for (f, i), r in zip(rows, results, strict=True)
             if r.embedding is not None]
    matrix = np.array([e for _, _, e in found], np.float64).reshape(-1, 512)
    identities = [i for _, i, _ in found]
    genuine, impostor = all_pair_scores(matrix, identities)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "via": args.via,
        "folder": str(folder), "photos": len(rows), "embedded": len(found),
        "no_face": [f for (f, _), r in zip(rows, results, strict=True) if r.embedding is None],
        "speed": {"seconds": seconds, "photos_per_s": len(rows) / seconds,
                  "faces": sum(r.faces for r in results),
                  "faces_per_s": sum(r.faces for r in results) / seconds,
                  "concurrency": args.concurrency},
        "all_pairs": verification(genuine, impostor),
    }
    threshold = report["all_pairs"]["far_1pct"]["threshold"]
    report["identification"] = identification(matrix, identities, threshold)
    strict = report["all_pairs"]["far_0.1pct"]["threshold"]
    report["identification"]["open_set_hit_rate_far_0.1pct"] = identification(
        matrix, identities, strict)["open_set_hit_rate"]
    if args.pairs:
        scores: dict[bool, list[float]] = {True: [], False: []}
        missing = 0
        for x, y, same in read_pairs(Path(args.pairs)):
            if Path(x).name not in by_name or Path(y).name not in by_name:
                continue  # outside the (sub)set
            a, b = by_name[Path(x).name], by_name[Path(y).name]
            if a is None or b is None:
                missing += 1  # a photo without a face: the pair is a non-match
            scores[same].append(-1.0 if a is None or b is None else float(a @ b))
        report["pairs"] = {**verification(scores[True], scores[False]),
                           "pairs_without_face": missing}
    if args.match_sizes:
        report["match_cost"] = match_cost([int(n) for n in args.match_sizes.split(",")])
    return report


def _verification_rows(name: str, v: dict[str, Any]) -> list[str]:
    rows = [f"{name}: {v['genuine_pairs']} genuine / {v['impostor_pairs']} impostor pairs",
            f"  ROC AUC                {v['auc']:.4f}"]
    for key, label in (("far_1pct", "1%"), ("far_0.1pct", "0.1%")):
        r = v[key]
        note = " (limited: too few impostors)" if r["limited"] else ""
        rows.append(f"  TAR @ FAR {label:<5}      {r['tar']:.3f}  threshold {r['threshold']:.3f}"
                    f"  measured FAR {r['far']:.4f}{note}")
    return rows


def render(report: dict[str, Any]) -> str:
    """The human-readable table."""
    speed = report["speed"]
    lines = [f"face evaluation {report['date']} on {report['machine']} via {report['via']}",
             f"photos {report['photos']}, embedded {report['embedded']}, "
             f"no face: {', '.join(report['no_face']) or 'none'}",
             *_verification_rows("all pairs", report["all_pairs"])]
    if "pairs" in report:
        lines += _verification_rows("pairs file", report["pairs"])
    ident = report["identification"]
    lines += [f"identification: gallery {ident['gallery']}, probes {ident['probes']}",
              f"  rank-1                 {ident['rank1']:.3f}",
              f"  open-set hit @ FAR 1%  {ident['open_set_hit_rate']:.3f}",
              f"  open-set hit @ FAR 0.1% {ident['open_set_hit_rate_far_0.1pct']:.3f}",
              f"chosen threshold (FAR 1%, all pairs): "
              f"{report['all_pairs']['far_1pct']['threshold']:.3f}; watchlist default "
              f"(FAR 0.1%): {report['all_pairs']['far_0.1pct']['threshold']:.3f}",
              f"speed: {speed['photos_per_s']:.1f} photos/s, {speed['faces_per_s']:.1f} faces/s "
              f"({speed['faces']} faces in {speed['seconds']:.2f} s, "
              f"concurrency {speed['concurrency']})"]
    for cost in report.get("match_cost", []):
        lines.append(f"match {cost['identities']:>9,} identities: {cost['ms_per_probe']:8.3f} "
                     f"ms/probe, {cost['ms_per_probe_batch16']:8.3f} ms/probe in batches of "
                     f"16, matrix {cost['matrix_mb']:.1f} MiB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus eval-faces", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, help="the photos")
    parser.add_argument("--identities", required=True, help="CSV file,identity")
    parser.add_argument("--pairs", help="CSV file_x,file_y,decision (optional)")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--via", choices=("triton", "local"), default="triton")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--max-identities", type=int, default=0, help="a subset (0: all)")
    parser.add_argument("--match-sizes", default="10,10000",
                        help="comma-separated enrolled counts for the match cost ('' = skip)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        report = evaluate(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
