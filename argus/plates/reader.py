"""The plate reader's model code in the application: the same ``platelib.py`` Triton serves.

The evaluation (and any in-process reference loop) builds the reader from the ``plates``
model's ``config.pbtxt`` parameters and the fetched model files, so it measures exactly what
Triton runs. :func:`plate_of` applies a site's :class:`~argus.plates.text.PlateFormat` to the
reads of one vehicle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from argus.modelcode import load_module_from_path, triton_parameters
from argus.plates.text import Normalised, PlateFormat, Read, choose
from argus.settings import REPO_ROOT

MODEL = "plates"
PLATELIB_PATH = REPO_ROOT / "triton_models" / "plates" / "1" / "platelib.py"
"""The reader's code (PP-OCR post-processing, CTC, plate score): pure numpy + OpenCV."""


def load_platelib() -> ModuleType:
    """The ``plates`` model's ``platelib.py``."""
    return load_module_from_path("argus_triton_plates_lib", PLATELIB_PATH)


def local_reader(models_dir: Path, params: Mapping[str, str] | None = None,
                 threads: int | None = 1) -> Any:
    """A ``platelib.PlateReader`` in this process, configured like the Triton model
    (``params`` default: ``triton_models/plates/config.pbtxt``); ``threads`` onnxruntime
    intra-op threads (1: one core)."""
    lib = load_platelib()
    config = dict(triton_parameters(MODEL) if params is None else params)
    det = models_dir / config.get("det_model_file", "ch_PP-OCRv4_det_infer.onnx")
    rec = models_dir / config.get("rec_model_file", "PP-OCRv6_rec_small.onnx")
    for path in (det, rec):
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} is missing: run `argus models fetch`")
    return lib.PlateReader.configured(str(det), str(rec), config, threads=threads)


def reads_of(items: Iterable[Mapping[str, Any]]) -> list[Read]:
    """:class:`Read` objects from the reader's JSON-safe reads (``PlateRead.as_dict()``,
    or the Triton model's ``READS`` output)."""
    return [Read(str(item["text"]), tuple(float(c) for c in item["confidences"]),
                 float(item.get("score", 1.0)),
                 tuple(str(a) for a in item.get("alternatives", ())))
            for item in items]


def plate_of(reads: Sequence[Mapping[str, Any]], fmt: PlateFormat,
             ) -> tuple[Mapping[str, Any], Normalised] | None:
    """The read of one vehicle that fits the site's format (fewest fixes, then the most
    plate-like) and its normalised text; None when no read fits."""
    chosen = choose(reads_of(reads), fmt)
    if chosen is None:
        return None
    read, normal = chosen
    for item in reads:
        if item["text"] == read.text and float(item.get("score", 1.0)) == read.score:
            return item, normal
    raise AssertionError("chosen read not among the reads")  # pragma: no cover
