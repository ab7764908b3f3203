"""Licence-plate reading on a vehicle crop: the single source of truth for the ``plates`` model.

Pure numpy + OpenCV (onnxruntime only inside :class:`PlateReader`), no Triton imports, so the
same file runs inside the Triton python backend (``model.py`` next to it; numpy 1.26, OpenCV
4.10) and in the application environment (numpy 2), loaded by file path for the evaluation.

Models: PP-OCRv4 text detection (DB, ``ch_PP-OCRv4_det_infer.onnx``: ``x`` 1x3xHxW, RGB order
as read by OpenCV (BGR) normalised (v/255-0.5)/0.5, H and W multiples of 32 → ``1x1xHxW``
text probability) and a PP-OCR CTC recogniser (``rec_model_file``: PP-OCRv4 mobile,
``ch_PP-OCRv4_rec_infer.onnx``, or PP-OCRv6 small, ``PP-OCRv6_rec_small.onnx``: ``x``
Nx3x48xW, the same normalisation → ``NxTxC`` softmax over blank + the dictionary in the
model's ``character`` metadata + space; C = 6625 and 18710).

The path, per vehicle crop (parameters from ``../config.pbtxt``; steps 1-2 and the warp live
in ``textboxes.py`` next to this file, with the vehicle crop):

1. the lower ``search_top``..1 part of the crop (plates sit low on a vehicle) is scaled so that
   its width is ``det_width`` (a multiple of 32), its contrast equalised (CLAHE,
   ``det_clahe``) and run through the text detector;
2. the probability map is thresholded; each connected region becomes a rotated rectangle,
   grown by the DB "unclip" distance (area x ratio / perimeter), scored by the mean
   probability inside (:func:`text_boxes`); boxes continuing one line are joined
   (:func:`merge_lines`: a plate's character groups found apart);
3. the ``top_k`` boxes with a plate-like shape are cut out (perspective warp) and
   recognised at height 48 and ``rec_widen`` x their aspect width, with CTC restricted to the
   plate alphabet (:func:`ctc_decode`, ``ctc.py``: every other dictionary entry is masked before the
   argmax, so a plate never reads as a Chinese character or punctuation); with
   ``rec_variants`` each box is cut once per listed widening (0: as found, 0.06: 6 % wider,
   :func:`widen_quad`), all in one recogniser batch, and the reads of one box are fused per
   character (:func:`fuse_reads`, ``fusion.py``); with ``stray_gap`` a read whose end group
   of 1-2 characters stands apart (``ctc.py``: :func:`trimmed_reads`, from the time step
   each character was read at) is offered trimmed, first, and as recognised, second;
4. each read gets a plate-likeness score (``scoring.py``: :func:`plate_score`, confidence,
   length, aspect, height on the vehicle (``low_weight``), ``no_digit_factor`` for a read
   without a digit; on a vehicle box also :func:`vehicle_prior`, the distance from the
   vehicle's middle (``centre_weight``) and the height against the vehicle's width
   (``height_band``)); the caller chooses (the stage and the evaluation also apply the
   site's format).

>>> ctc_decode(np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.9, 0.05, 0.05],
...                      [0.1, 0.1, 0.8]]), ["", "A", "B"])
('AB', [0.9, 0.8])
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]
Quad = npt.NDArray[np.float32]
"""Four corners (4 x 2, pixels): top-left, top-right, bottom-right, bottom-left."""


def _sibling(name: str) -> ModuleType:
    """A module next to this file, loaded by path (Triton and the application alike)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"argus_plates_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


textboxes = _sibling("textboxes")
text_boxes = textboxes.text_boxes
merge_lines = textboxes.merge_lines
equalise = textboxes.equalise
warp_quad = textboxes.warp_quad
widen_quad = textboxes.widen_quad
order_quad = textboxes.order_quad
vehicle_crop = textboxes.vehicle_crop
to_image_box = textboxes.to_image_box
fusion = _sibling("fusion")
fuse_reads = fusion.fuse_reads
scoring = _sibling("scoring")
plate_score = scoring.plate_score
vehicle_prior = scoring.vehicle_prior
parse_band = scoring.parse_band
ctc = _sibling("ctc")
ctc_decode = ctc.ctc_decode
ctc_spans = ctc.ctc_spans
second_choices = ctc.second_choices
trimmed_reads = ctc.trimmed_reads

PLATE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""The characters a plate read may contain (recognition is restricted to them)."""
REC_HEIGHT = 48
"""The recogniser's input height."""
TOP_EDGE_PX = 2
"""A vehicle box starting this close to the top of the image is cut off by it."""


def decode_jpeg(jpeg_bytes: bytes) -> ImageArray:
    """Decode JPEG (or any OpenCV-readable image) bytes to HxWx3 BGR.

    Raises ``ValueError("cannot decode JPEG ...")`` when OpenCV cannot decode them.
    """
    if not jpeg_bytes:
        raise ValueError("cannot decode JPEG (0 bytes)")
    buffer = np.frombuffer(jpeg_bytes, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes): {exc}") from exc
    if image is None or image.size == 0:
        raise ValueError(f"cannot decode JPEG ({len(jpeg_bytes)} bytes)")
    return np.asarray(image, dtype=np.uint8)


def alphabet_mask(charset: Sequence[str], alphabet: str = PLATE_ALPHABET,
                  ) -> npt.NDArray[np.bool_]:
    """Which dictionary entries a plate may contain: the blank and ``alphabet``.

    >>> alphabet_mask(["", "A", "x", "1", " "], "A1").tolist()
    [True, True, False, True, False]
    """
    wanted = set(alphabet)
    mask = np.array([char in wanted for char in charset], dtype=bool)
    mask[0] = True
    return mask


def recogniser_charset(metadata_characters: str) -> list[str]:
    """The recogniser's classes: blank, the model's ``character`` metadata lines, space."""
    return ["", *metadata_characters.splitlines(), " "]


def rec_input(patches: Sequence[ImageArray], min_width: int = 4 * REC_HEIGHT,
              widen: float = 1.0) -> FloatArray:
    """N x 3 x 48 x W recogniser input: each patch resized to height 48 and ``widen`` x its
    aspect width (plate characters are narrower than the text the recogniser learnt on),
    normalised (v/255-0.5)/0.5 and zero-padded on the right to the widest (at least
    ``min_width``)."""
    widths = [max(1, math.ceil(REC_HEIGHT * widen * p.shape[1] / max(1, p.shape[0])))
              for p in patches]
    batch_width = max([min_width, *widths])
    batch = np.zeros((len(patches), 3, REC_HEIGHT, batch_width), dtype=np.float32)
    for index, (patch, width) in enumerate(zip(patches, widths, strict=True)):
        resized = cv2.resize(patch, (width, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
        batch[index, :, :, :width] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return batch


@dataclass
class PlateRead:
    """One text box read on a vehicle crop."""

    text: str
    """Characters of :data:`PLATE_ALPHABET`, as recognised (no format applied)."""
    confidences: list[float]
    """Per character."""
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 normalised to the vehicle crop."""
    det_score: float
    score: float
    """:func:`plate_score`."""
    alternatives: list[str] = field(default_factory=list)
    """Per character, the second most likely allowed character ("" when none is close)."""

    @property
    def confidence(self) -> float:
        """The lowest character confidence (0 for an empty read)."""
        return min(self.confidences) if self.confidences else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"text": self.text, "confidence": round(self.confidence, 4),
                "confidences": self.confidences, "box": [round(v, 4) for v in self.box],
                "det_score": self.det_score, "score": self.score,
                "alternatives": self.alternatives}


def parse_variants(text: str) -> tuple[float, ...]:
    """``rec_variants``: comma-separated widenings of each text box (0: as found).

    >>> parse_variants("0, 0.06"), parse_variants("")
    ((0.0, 0.06), (0.0,))
    """
    values = tuple(float(part) for part in text.split(",") if part.strip())
    return values or (0.0,)


class Parameters(Protocol):
    """What :meth:`PlateReader.configured` reads (Triton's parameters, or a dict)."""

    def get(self, key: str, default: str, /) -> str: ...


class PlateReader:
    """PP-OCR det + rec in onnxruntime sessions: vehicle crop → plate reads, best first."""

    @classmethod
    def configured(cls, det_path: str, rec_path: str, params: Parameters,
                   threads: int | None = None) -> PlateReader:
        """The reader ``config.pbtxt``'s ``parameters`` describe (``det_width``,
        ``search_top``, ``top_k``, ``box_thresh``, ``unclip_ratio``, ``rec_widen``,
        ``det_clahe``, ``rec_variants``, ``no_digit_factor``, ``low_weight``,
        ``centre_weight``, ``height_band``, ``stray_gap``): one reading for the Triton model and the
        evaluation."""
        return cls(det_path, rec_path, threads=threads,
                   det_width=int(params.get("det_width", "640")),
                   search_top=float(params.get("search_top", "0.3")),
                   top_k=int(params.get("top_k", "3")),
                   box_thresh=float(params.get("box_thresh", "0.4")),
                   unclip_ratio=float(params.get("unclip_ratio", "1.6")),
                   rec_widen=float(params.get("rec_widen", "1.0")),
                   det_clahe=float(params.get("det_clahe", "0")),
                   rec_variants=parse_variants(params.get("rec_variants", "0")),
                   no_digit=float(params.get("no_digit_factor", "1.0")),
                   low_weight=float(params.get("low_weight", "0.2")),
                   centre_weight=float(params.get("centre_weight", "0")),
                   height_band=parse_band(params.get("height_band", "0")),
                   stray_gap=float(params.get("stray_gap", "0")))

    def __init__(self, det_path: str, rec_path: str, threads: int | None = None,
                 providers: Sequence[str] | None = None, det_width: int = 320,
                 search_top: float = 0.3, top_k: int = 3, alphabet: str = PLATE_ALPHABET,
                 box_thresh: float = 0.5, unclip_ratio: float = 1.6,
                 rec_widen: float = 1.0, det_clahe: float = 0.0,
                 rec_variants: Sequence[float] = (0.0,), no_digit: float = 1.0,
                 low_weight: float = 0.2, centre_weight: float = 0.0,
                 height_band: tuple[float, float] | None = None,
                 stray_gap: float = 0.0) -> None:
        import onnxruntime as ort  # local: keeps the pure functions importable without it

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in available]
        self.det: Any = ort.InferenceSession(str(det_path), options, providers=list(providers))
        self.rec: Any = ort.InferenceSession(str(rec_path), options, providers=list(providers))
        meta = self.rec.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ValueError(f"{rec_path}: no 'character' dictionary in the model metadata")
        self.charset = recogniser_charset(meta["character"])
        self.allowed = alphabet_mask(self.charset, alphabet)
        self.det_width = max(32, round(det_width / 32) * 32)
        self.search_top = search_top
        self.top_k = top_k
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.rec_widen = rec_widen
        self.det_clahe = det_clahe
        self.rec_variants = tuple(rec_variants) or (0.0,)
        self.no_digit = no_digit
        self.low_weight = low_weight
        self.centre_weight = centre_weight
        self.height_band = height_band
        self.stray_gap = stray_gap

    def detect(self, crop: ImageArray, search_top: float | None = None,
               ) -> list[tuple[Quad, float]]:
        """Text boxes in the search region of a vehicle crop (from ``search_top``, default
        the reader's, of its height down), in crop pixels, best first."""
        height, width = crop.shape[:2]
        top = int(height * (self.search_top if search_top is None else search_top))
        region = crop[top:]
        scale = self.det_width / max(1, region.shape[1])
        det_h = max(32, round(region.shape[0] * scale / 32) * 32)
        resized = cv2.resize(region, (self.det_width, det_h), interpolation=cv2.INTER_AREA
                             if scale < 1 else cv2.INTER_LINEAR)
        if self.det_clahe > 0:
            resized = equalise(resized, self.det_clahe)
        tensor = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        prob = self.det.run(None, {"x": tensor})[0][0, 0]
        boxes = merge_lines(text_boxes(prob, box_thresh=self.box_thresh,
                                       unclip_ratio=self.unclip_ratio))
        factor = np.array([region.shape[1] / self.det_width, region.shape[0] / det_h],
                          dtype=np.float32)
        out = []
        for quad, score in boxes:
            mapped = quad * factor + np.array([0, top], dtype=np.float32)
            mapped[:, 0] = np.clip(mapped[:, 0], 0, width - 1)
            mapped[:, 1] = np.clip(mapped[:, 1], 0, height - 1)
            out.append((mapped, score))
        return out

    def recognise(self, patches: Sequence[ImageArray]) -> list[tuple[str, list[float], list[str]]]:
        """Text, per-character confidences and runner-up characters of each patch."""
        return [(text, confs, alts) for text, confs, alts, _ in self.recognise_spans(patches)]

    def recognise_spans(self, patches: Sequence[ImageArray]) -> list[Any]:
        """:meth:`recognise` with each character's span of time steps (``ctc.SpannedRead``)."""
        if not patches:
            return []
        probs = self.rec.run(None, {"x": rec_input(patches, widen=self.rec_widen)})[0]
        out = []
        for matrix in probs:
            plate = ctc.masked(matrix, self.allowed)  # one mask for both decoders
            text, confs, spans = ctc_spans(plate, self.charset)
            out.append((text, confs, second_choices(plate, self.charset, None), spans))
        return out

    def read(self, crop: ImageArray, search_top: float | None = None,
             vehicle: bool = True) -> list[PlateRead]:
        """Plate reads of a vehicle crop (BGR), the most plate-like first; [] when no text.
        ``search_top`` 0 searches the whole crop; ``vehicle`` False: the crop is not a
        vehicle (a whole photo, a plate crop), no :func:`vehicle_prior`."""
        height, width = crop.shape[:2]
        candidates = []
        for quad, det_score in self.detect(crop, search_top):
            w = float(np.linalg.norm(quad[0] - quad[1]))
            h = float(np.linalg.norm(quad[0] - quad[3]))
            if h < 4 or w < 8 or not 1.2 <= w / h <= 10.0:
                continue
            candidates.append((quad, det_score, w / h))
            if len(candidates) == self.top_k:
                break
        reads = []
        raw = self.recognise_spans([warp_quad(crop, widen_quad(quad, grow) if grow else quad)
                                    for grow in self.rec_variants for quad, _, _ in candidates])
        count = len(candidates)
        for index, (quad, det_score, aspect) in enumerate(candidates):
            mine = raw[index::count]
            # the reads as recognised; with stray_gap, first their variant less stray ends
            trimmed = trimmed_reads(mine, self.stray_gap) if self.stray_gap > 0 else None
            as_read = fuse_reads([r[:3] for r in mine])
            variants = ([(as_read, 1.0)] if trimmed is None else
                        [(fuse_reads(trimmed), 1.0), (as_read, ctc.UNTRIMMED)])
            x1, y1 = float(quad[:, 0].min()), float(quad[:, 1].min())
            x2, y2 = float(quad[:, 0].max()), float(quad[:, 1].max())
            box = (x1 / width, y1 / height, x2 / width, y2 / height)
            for (text, confs, alts), factor in variants:
                score = plate_score(text, confs, aspect, (y1 + y2) / 2.0 / height,
                                    no_digit=self.no_digit, low_weight=self.low_weight)
                if vehicle and score > 0:
                    score *= vehicle_prior(box, height / width, self.centre_weight,
                                           self.height_band)
                reads.append(PlateRead(text, confs, box, det_score, round(score * factor, 4),
                                       alts))
        reads.sort(key=lambda r: -r.score)
        return reads

    def read_image(self, image: ImageArray, box: Sequence[float] | None,
                   search_top: float | None = None) -> list[PlateRead]:
        """:meth:`read` on the vehicle ``box`` (normalised; None: the whole image) of an
        image, with the plate boxes normalised to the whole image. A box cut off by the top
        of the image is searched whole (its lower part is not the vehicle's: a car leaving
        the view shows its rear, plate and all, at the top edge). The vehicle prior
        (:func:`vehicle_prior`) applies to a vehicle box: ``box`` given and no ``search_top``
        of the caller's (None: a whole photo; a caller's ``search_top``: a plate crop)."""
        crop, region = vehicle_crop(image, box)
        height, width = image.shape[:2]
        vehicle = box is not None and search_top is None
        if search_top is None and region[1] <= TOP_EDGE_PX:
            search_top = 0.0
        reads = self.read(crop, search_top, vehicle=vehicle)
        for read in reads:
            read.box = to_image_box(read.box, region, width, height)
        return reads
