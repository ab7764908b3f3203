"""Interleaved onnxruntime timing of detector files on the same ready network inputs.

    PYTHON tools/ort_timing.py --frames FRAMES.npy [--rounds 5] [--threads 1] A.onnx B.onnx ...

Only numpy and onnxruntime (no project imports), so it runs in the application's ``.venv``
and in ``.venv-triton`` (the onnxruntime Triton serves with) alike. ``FRAMES.npy`` comes from
``python -m tools.quantize_detector frames``. Each round runs every model over all frames
(``session.run`` only: no JPEG decode, letterbox or decode), starting with a different model
each round, so that on a shared machine every model sees the same load; each model's
median of the rounds is compared with the first model's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt


def rotations(count: int, rounds: int) -> list[list[int]]:
    """The order of the models in each round: round r starts with model r mod count."""
    return [[(r + k) % count for k in range(count)] for r in range(rounds)]


def time_models(paths: list[Path], frames: npt.NDArray[np.float32], rounds: int,
                threads: int) -> list[list[float]]:
    """ms per frame of each model (rows: models, columns: rounds)."""
    import onnxruntime as ort

    sessions = []
    for path in paths:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for frame in frames[:10]:  # warm-up
            session.run(None, {name: frame[None]})
        sessions.append((session, name))
    results: list[list[float]] = [[] for _ in paths]
    for order in rotations(len(paths), rounds):
        for index in order:
            session, name = sessions[index]
            start = time.perf_counter()
            for frame in frames:
                session.run(None, {name: frame[None]})
            results[index].append(1000.0 * (time.perf_counter() - start) / len(frames))
    return results


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="the first is the reference")
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    frames = np.load(args.frames)
    results = time_models(args.models, frames, args.rounds, args.threads)
    medians = [statistics.median(row) for row in results]
    print(f"onnxruntime {ort.__version__}, {len(frames)} frames "
          f"{frames.shape[3]}x{frames.shape[2]}, threads {args.threads}, {args.rounds} rounds")
    for path, row, median in zip(args.models, results, medians, strict=True):
        print(f"{path.name:28s} {median:6.2f} ms/frame  {100 * (1 - median / medians[0]):+6.1f} %"
              f" less  rounds: {' '.join(f'{x:.2f}' for x in row)}")
    if args.json is not None:
        args.json.write_text(json.dumps({"onnxruntime": ort.__version__, "models": {
            str(p): row for p, row in zip(args.models, results, strict=True)}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
