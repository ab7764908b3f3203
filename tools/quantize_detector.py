"""A static int8 copy of the YOLOX detector, for measurements (not shipped: see
docs/benchmarks.md, "Tried and dropped").

    python -m tools.quantize_detector quantize OUT.onnx [--frames-per-clip 32]
        [--format qdq|qoperator] [--no-per-channel] [--activation u8|s8]
        [--calibration minmax|percentile] [--keep-head-fp32] [--keep-stem-fp32]
    python -m tools.quantize_detector frames OUT.npy [--video CLIP] [--count 300]
    python -m tools.quantize_detector fp32 OUT.onnx   # the fp32 model as the runner loads it
    .venv-triton/bin/python tools/ort_timing.py --frames OUT.npy FP32.onnx INT8.onnx ...

Deterministic: the same fp32 file and clips give the same int8 file. Steps:

1. the fp32 model's input height and width are freed (as ``letterbox fit`` does at load) and
   its opset raised to 13 (per-channel weights need ``DequantizeLinear``'s ``axis``);
2. ``onnxruntime.quantization.shape_inference.quant_pre_process`` (shape inference and
   graph clean-up);
3. ``quantize_static`` calibrated on frames of the Intel sample clips
   (``<shared>/data/videos/*.mp4``, ``--frames-per-clip`` evenly spaced frames of each, in
   file-name order), letterboxed exactly as the detector does (``yolox.letterbox``, the
   ``config.pbtxt`` input size and letterbox mode); weights int8, activations uint8 by
   default (no ``reduce_range``: VNNI CPUs do not need it).

Calibration never sees the evaluation clip (PETS), which
``argus eval mot --offline --detector-param model_file=/abs/OUT.onnx`` scores. ``frames``
writes the letterboxed network inputs of a clip's first frames for ``tools/ort_timing.py``,
which needs only numpy and onnxruntime (so it runs in both environments).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from argus.modelcode import load_yolox_module, triton_parameters
from argus.settings import get_settings

DEFAULT_SOURCE = "yolox_nano.onnx"
TIMING_CLIP = "person-bicycle-car-detection.mp4"
TARGET_OPSET = 13
HEAD_PREFIXES: tuple[str, ...] = ("head.cls_preds.", "head.reg_preds.", "head.obj_preds.")
"""Weight-name prefixes of YOLOX's prediction convs (the last conv of each head branch)."""
FORMATS: tuple[str, ...] = ("qdq", "qoperator")
CALIBRATIONS: tuple[str, ...] = ("minmax", "percentile")


@dataclass(frozen=True)
class QuantSettings:
    """The choices of one quantised variant (defaults: QDQ, per-channel int8 weights, uint8
    activations, min/max calibration, 32 frames of each clip)."""

    fmt: str = "qdq"
    per_channel: bool = True
    activation: str = "u8"
    keep_head_fp32: bool = False
    frames_per_clip: int = 32
    calibration: str = "minmax"
    keep_stem_fp32: bool = False


def spaced_indices(count: int, wanted: int) -> list[int]:
    """``wanted`` frame indices spread evenly over ``count`` frames (centre of each
    stretch), ascending and distinct; all of them when there are fewer frames."""
    if count <= 0 or wanted <= 0:
        return []
    if wanted >= count:
        return list(range(count))
    return [int((k + 0.5) * count / wanted) for k in range(wanted)]


def head_tail_nodes(nodes: Sequence[Any]) -> list[str]:
    """Names of YOLOX's prediction convs (weight ``head.{cls,reg,obj}_preds.N.weight``) and of
    every node downstream of them (sigmoids, the concats of box offsets with probabilities,
    reshapes, transpose), in graph order: ``--keep-head-fp32`` leaves these in fp32. One
    int8 scale for a concat of box offsets (-10..10) and probabilities (0..1) would leave
    the scores only a few steps."""
    produced: set[str] = set()
    names: list[str] = []
    for node in nodes:  # ONNX graphs are topologically sorted
        is_pred = (node.op_type == "Conv" and len(node.input) > 1
                   and str(node.input[1]).startswith(HEAD_PREFIXES))
        if is_pred or any(str(name) in produced for name in node.input):
            names.append(str(node.name))
            produced.update(str(name) for name in node.output)
    return names


def stem_nodes(nodes: Sequence[Any]) -> list[str]:
    """The first Conv of the graph (YOLOX's stem, after the Focus slicing: it sees the 0-255
    image) and its SiLU (the Sigmoid and Mul reading its output): ``--keep-stem-fp32``."""
    first = next((node for node in nodes if node.op_type == "Conv"), None)
    if first is None:
        return []
    outputs = {str(name) for name in first.output}
    names = [str(first.name)]
    for node in nodes:
        if node.op_type in ("Sigmoid", "Mul") and outputs & {str(i) for i in node.input}:
            names.append(str(node.name))
            if node.op_type == "Sigmoid":
                outputs |= {str(name) for name in node.output}
    return names


def clip_frames(videos: Sequence[Path], per_clip: int) -> Iterator[npt.NDArray[np.uint8]]:
    """``per_clip`` evenly spaced BGR frames of each video, in the order given."""
    for video in videos:
        cap = cv2.VideoCapture(str(video))
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            wanted = set(spaced_indices(count, per_clip))
            index = 0
            while wanted:
                ok, image = cap.read()
                if not ok:
                    break
                if index in wanted:
                    wanted.discard(index)
                    yield np.asarray(image, dtype=np.uint8)
                index += 1
        finally:
            cap.release()


def calibration_tensors(videos: Sequence[Path], per_clip: int, params: dict[str, str],
                        ) -> list[npt.NDArray[np.float32]]:
    """The network inputs of the calibration frames, letterboxed as the detector does."""
    yolox = load_yolox_module()
    size = int(params.get("input_size", "416"))
    fit = params.get("letterbox", "square") == "fit"
    return [yolox.letterbox(image, size, fit)[0] for image in clip_frames(videos, per_clip)]


class _Reader:
    """``CalibrationDataReader`` over ready tensors (duck-typed: ``get_next``/``rewind``)."""

    def __init__(self, input_name: str, tensors: list[npt.NDArray[np.float32]]) -> None:
        self.input_name, self.tensors, self.position = input_name, tensors, 0

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        if self.position >= len(self.tensors):
            return None
        self.position += 1
        return {self.input_name: self.tensors[self.position - 1]}

    def rewind(self) -> None:
        self.position = 0


def prepare_fp32(source: Path, work: Path) -> Path:
    """``source`` with free input height/width at opset 13, pre-processed for quantisation."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    freed, _ = load_yolox_module().free_input_size(str(source))
    model = onnx.load_from_string(freed) if freed is not None else onnx.load(str(source))
    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < TARGET_OPSET:
        model = version_converter.convert_version(model, TARGET_OPSET)
    converted = work / "opset13.onnx"
    onnx.save(model, str(converted))
    prepared = work / "prepared.onnx"
    # onnx shape inference is enough for this plain CNN (symbolic inference needs sympy)
    quant_pre_process(str(converted), str(prepared), skip_symbolic_shape=True)
    return prepared


def quantize(source: Path, output: Path, videos: Sequence[Path], settings: QuantSettings,
             params: dict[str, str] | None = None) -> int:
    """Write the int8 model to ``output``; returns the number of calibration frames."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if settings.fmt not in FORMATS:
        raise ValueError(f"unknown format {settings.fmt!r} (one of {', '.join(FORMATS)})")
    if settings.calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {settings.calibration!r}")
    if not videos:
        raise ValueError("no calibration clips")
    params = params if params is not None else triton_parameters("detector")
    tensors = calibration_tensors(videos, settings.frames_per_clip, params)
    with tempfile.TemporaryDirectory(prefix="argus-quant-") as tmp:
        prepared = prepare_fp32(source, Path(tmp))
        model = onnx.load(str(prepared))
        exclude = head_tail_nodes(model.graph.node) if settings.keep_head_fp32 else []
        exclude += stem_nodes(model.graph.node) if settings.keep_stem_fp32 else []
        quantize_static(
            str(prepared), str(output), _Reader(model.graph.input[0].name, tensors),
            quant_format=QuantFormat.QDQ if settings.fmt == "qdq" else QuantFormat.QOperator,
            per_channel=settings.per_channel, reduce_range=False,
            activation_type=QuantType.QUInt8 if settings.activation == "u8" else QuantType.QInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
            calibrate_method=(CalibrationMethod.MinMax if settings.calibration == "minmax"
                              else CalibrationMethod.Percentile),
            extra_options={"ActivationSymmetric": settings.activation == "s8"})
    return len(tensors)


def clip_tensors(video: Path, count: int, params: dict[str, str]) -> npt.NDArray[np.float32]:
    """The letterboxed network inputs of ``video``'s first ``count`` frames, N x 3 x H x W."""
    yolox = load_yolox_module()
    size = int(params.get("input_size", "416"))
    fit = params.get("letterbox", "square") == "fit"
    cap = cv2.VideoCapture(str(video))
    tensors: list[npt.NDArray[np.float32]] = []
    try:
        while len(tensors) < count:
            ok, image = cap.read()
            if not ok:
                break
            tensors.append(yolox.letterbox(np.asarray(image, dtype=np.uint8), size, fit)[0])
    finally:
        cap.release()
    if not tensors:
        raise ValueError(f"{video}: no frames")
    return np.concatenate(tensors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.quantize_detector",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    q = sub.add_parser("quantize", help="write an int8 copy of the fp32 detector")
    q.add_argument("output", type=Path)
    q.add_argument("--source", default=DEFAULT_SOURCE, help="fp32 file in the model cache")
    q.add_argument("--frames-per-clip", type=int, default=QuantSettings.frames_per_clip)
    q.add_argument("--format", dest="fmt", choices=FORMATS, default=QuantSettings.fmt)
    q.add_argument("--no-per-channel", dest="per_channel", action="store_false")
    q.add_argument("--activation", choices=("u8", "s8"), default=QuantSettings.activation)
    q.add_argument("--calibration", choices=CALIBRATIONS, default=QuantSettings.calibration)
    q.add_argument("--keep-head-fp32", action="store_true",
                   help="leave the prediction convs of the head and all after them in fp32")
    q.add_argument("--keep-stem-fp32", action="store_true",
                   help="leave the first conv and its SiLU in fp32")
    f = sub.add_parser("frames", help="letterboxed network inputs of a clip, for ort_timing")
    f.add_argument("output", type=Path)
    f.add_argument("--video", type=Path, default=None, help=f"default: <shared>/data/videos/"
                                                            f"{TIMING_CLIP}")
    f.add_argument("--count", type=int, default=300)
    r = sub.add_parser("fp32", help="the fp32 model with free height/width, as the runner "
                                    "loads it with letterbox fit (the timing reference)")
    r.add_argument("output", type=Path)
    r.add_argument("--source", default=DEFAULT_SOURCE, help="fp32 file in the model cache")
    args = parser.parse_args(argv)
    base = get_settings()
    clips = base.shared / "data" / "videos"
    if args.action == "frames":
        frames = clip_tensors(args.video or clips / TIMING_CLIP, args.count,
                              triton_parameters("detector"))
        np.save(args.output, frames)
        print(f"{args.output} ({len(frames)} frames, {frames.shape[2]}x{frames.shape[3]})")
        return 0
    if args.action == "fp32":
        freed, _ = load_yolox_module().free_input_size(str(base.models_dir / args.source))
        if freed is None:
            shutil.copyfile(base.models_dir / args.source, args.output)
        else:
            args.output.write_bytes(freed)
        print(args.output)
        return 0
    videos = sorted(clips.glob("*.mp4"))
    settings = QuantSettings(args.fmt, args.per_channel, args.activation, args.keep_head_fp32,
                             args.frames_per_clip, args.calibration, args.keep_stem_fp32)
    count = quantize(base.models_dir / args.source, args.output, videos, settings)
    print(f"{args.output} ({count} calibration frames from {len(videos)} clips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
