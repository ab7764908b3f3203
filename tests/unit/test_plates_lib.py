"""The plate model's pure code (``triton_models/plates/1/platelib.py`` and ``textboxes.py``)
as tables: CTC decoding with the plate alphabet, the DB box post-processing, the recogniser
input, the plate-likeness score, the vehicle crop and its mapping back to the image; and the
recognisers ``rec_model_file`` may name (each one's dictionary against its outputs, clean
rendered plate strings)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from argus.modelcode import triton_parameters
from argus.plates.reader import load_platelib, local_reader
from argus.settings import get_settings

CHARSET = ["", "A", "B", "8", "中", "-", " "]


@pytest.fixture(scope="module")
def lib() -> ModuleType:
    return load_platelib()


def _probs(steps: list[str]) -> np.ndarray:
    """A T x C matrix: 0.7 on each step's class ("" = blank), the rest spread evenly."""
    matrix = np.full((len(steps), len(CHARSET)), 0.3 / (len(CHARSET) - 1), dtype=np.float32)
    for step, char in enumerate(steps):
        matrix[step, CHARSET.index(char)] = 0.7
    return matrix


@pytest.mark.parametrize(("steps", "expected"), [
    ([], ""),
    (["", "", ""], ""),
    (["A", "A", "", "B"], "AB"),         # a repeat collapses
    (["A", "", "A"], "AA"),              # a blank separates a double letter
    (["8", "8", "8", "", "B"], "8B"),
    (["A", "中", "B"], "AB"),             # outside the plate alphabet: masked
    (["A", "-", " ", "B"], "AB"),
])
def test_ctc_decode_with_the_plate_alphabet(lib: ModuleType, steps: list[str],
                                            expected: str) -> None:
    mask = lib.alphabet_mask(CHARSET, "AB8")
    text, confidences = lib.ctc_decode(_probs(steps).reshape(len(steps), len(CHARSET)),
                                       CHARSET, mask)
    assert text == expected
    assert len(confidences) == len(text)
    if "中" not in steps and "-" not in steps:
        assert all(c == pytest.approx(0.7) for c in confidences)


def test_masked_step_falls_back_to_the_best_allowed_class(lib: ModuleType) -> None:
    probs = np.array([[0.05, 0.1, 0.05, 0.02, 0.7, 0.05, 0.03]], dtype=np.float32)
    assert lib.ctc_decode(probs, CHARSET, lib.alphabet_mask(CHARSET, "AB8")) == ("A", [0.1])
    assert lib.ctc_decode(probs, CHARSET) == ("中", [0.7])  # no mask: as the model says


def test_second_choices(lib: ModuleType) -> None:
    probs = np.array([[0.0, 0.6, 0.0, 0.35, 0.0, 0.05, 0.0],   # A, 8 close behind
                      [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                      [0.0, 0.01, 0.98, 0.01, 0.0, 0.0, 0.0]], dtype=np.float32)
    mask = lib.alphabet_mask(CHARSET, "AB8")
    assert lib.ctc_decode(probs, CHARSET, mask)[0] == "AB"
    assert lib.second_choices(probs, CHARSET, mask) == ["8", ""]


def test_recogniser_charset(lib: ModuleType) -> None:
    assert lib.recogniser_charset("a\nb\n1") == ["", "a", "b", "1", " "]


@pytest.mark.parametrize(("rects", "expected_count"), [
    ([], 0),
    ([(10, 10, 50, 20)], 1),
    ([(10, 10, 50, 20), (10, 40, 30, 50)], 2),
    ([(10, 10, 11, 11)], 0),                      # smaller than min_side
])
def test_text_boxes_find_each_region(lib: ModuleType, rects: list[tuple[int, int, int, int]],
                                     expected_count: int) -> None:
    prob = np.zeros((64, 96), dtype=np.float32)
    for x1, y1, x2, y2 in rects:
        prob[y1:y2, x1:x2] = 0.9
    boxes = lib.text_boxes(prob)
    assert len(boxes) == expected_count
    if not expected_count:
        return
    for (quad, score), (x1, y1, x2, y2) in zip(
            sorted(boxes, key=lambda b: float(b[0][0, 1])), sorted(rects, key=lambda r: r[1]),
            strict=True):
        assert 0.75 <= score <= 0.9  # the 2x2 dilation takes in a rim of zeros
        # the region grows on every side by area * 1.6 / perimeter (the DB unclip)
        w, h = x2 - x1, y2 - y1
        grow = w * h * 1.6 / (2 * (w + h))
        assert quad[0, 0] == pytest.approx(x1 - grow, abs=1.5)
        assert quad[2, 0] == pytest.approx(x2 + grow, abs=1.5)
        assert quad[0, 1] == pytest.approx(y1 - grow, abs=1.5)
        assert quad[2, 1] == pytest.approx(y2 + grow, abs=1.5)


def test_text_boxes_drop_weak_regions(lib: ModuleType) -> None:
    prob = np.zeros((32, 64), dtype=np.float32)
    prob[5:15, 5:40] = 0.35  # above the 0.3 binarisation, below the 0.5 box threshold
    assert lib.text_boxes(prob) == []
    assert len(lib.text_boxes(prob, box_thresh=0.3)) == 1


def test_order_quad_and_warp(lib: ModuleType) -> None:
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[10:20, 10:50] = 255
    quad = lib.order_quad([[50, 20], [10, 10], [50, 10], [10, 20]])
    assert quad.tolist() == [[10, 10], [50, 10], [50, 20], [10, 20]]
    patch = lib.warp_quad(image, quad)
    assert patch.shape == (10, 40, 3) and patch.mean() > 200
    tall = lib.warp_quad(image, lib.order_quad([[10, 0], [20, 0], [20, 30], [10, 30]]))
    assert tall.shape[:2] == (10, 30)  # vertical text turned a quarter


def test_rec_input_shapes_and_values(lib: ModuleType) -> None:
    white = np.full((24, 96, 3), 255, dtype=np.uint8)
    small = np.zeros((10, 10, 3), dtype=np.uint8)
    batch = lib.rec_input([white, small])
    assert batch.shape == (2, 3, 48, 192)  # 96 x 48/24 = 192 = the minimum width
    assert batch[0].max() == pytest.approx(1.0) and batch[0].min() == pytest.approx(1.0)
    assert batch[1, :, :, :48].max() == pytest.approx(-1.0)  # black, then zero padding
    assert not batch[1, :, :, 48:].any()


@pytest.mark.parametrize(("text", "aspect", "centre_y", "expected"), [
    ("ABC123", 3.0, 1.0, 0.9),
    ("ABC123", 3.0, 0.0, 0.72),
    ("AB", 3.0, 1.0, 0.45),                # too short
    ("ABC123", 12.0, 1.0, 0.45),           # too long and thin
    ("", 3.0, 1.0, 0.0),
])
def test_plate_score(lib: ModuleType, text: str, aspect: float, centre_y: float,
                     expected: float) -> None:
    assert lib.plate_score(text, [0.9] * len(text), aspect, centre_y) == \
        pytest.approx(expected)


@pytest.mark.parametrize(("box", "crop_shape", "region"), [
    (None, (100, 200, 3), (0, 0, 200, 100)),
    ((0.0, 0.0, 0.0, 0.0), (100, 200, 3), (0, 0, 200, 100)),     # degenerate: whole image
    ((0.25, 0.5, 0.75, 1.0), (50, 100, 3), (50, 50, 150, 100)),
    ((-0.5, 0.5, 0.5, 2.0), (50, 100, 3), (0, 50, 100, 100)),     # clipped to the image
])
def test_vehicle_crop(lib: ModuleType, box: tuple[float, ...] | None,
                      crop_shape: tuple[int, ...], region: tuple[int, ...]) -> None:
    crop, got = lib.vehicle_crop(np.zeros((100, 200, 3), np.uint8), box)
    assert (crop.shape, got) == (crop_shape, region)
    full = lib.to_image_box((0.0, 0.0, 1.0, 1.0), got, 200, 100)
    assert full == pytest.approx((region[0] / 200, region[1] / 100, region[2] / 200,
                                  region[3] / 100))


def test_decode_jpeg_rejects_bad_bytes(lib: ModuleType) -> None:
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        lib.decode_jpeg(b"")
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        lib.decode_jpeg(b"not a jpeg at all")


def test_platelib_examples(lib: ModuleType) -> None:
    """The docstring examples of platelib.py (outside pytest's doctest paths)."""
    import doctest

    result = doctest.testmod(lib, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0
    decoding = doctest.testmod(lib.ctc, optionflags=doctest.ELLIPSIS)
    assert decoding.attempted >= 8 and decoding.failed == 0
    scores = doctest.testmod(lib.scoring, optionflags=doctest.ELLIPSIS)
    assert scores.attempted >= 5 and scores.failed == 0
    boxes = doctest.testmod(lib.textboxes, optionflags=doctest.ELLIPSIS)
    assert boxes.attempted >= 2 and boxes.failed == 0


@pytest.mark.parametrize(("box", "search_top", "expected"), [
    ((0.1, 0.3, 0.5, 0.9), None, None),        # the reader's own lower-part search
    ((0.1, 0.0, 0.5, 0.4), None, 0.0),         # cut off by the top edge: search it whole
    ((0.1, 0.3, 0.5, 0.9), 0.0, 0.0),          # the caller's choice wins
])
def test_read_image_searches_a_top_cut_box_whole(lib: ModuleType, box: tuple[float, ...],
                                                 search_top: float | None,
                                                 expected: float | None) -> None:
    reader = object.__new__(lib.PlateReader)
    seen: list[tuple[tuple[int, ...], float | None, bool]] = []

    def fake_read(crop: np.ndarray, top: float | None = None,
                  vehicle: bool = True) -> list[object]:
        seen.append((crop.shape, top, vehicle))
        return [lib.PlateRead("AB123", [0.9] * 5, (0.0, 0.5, 1.0, 1.0), 0.9, 0.8)]

    reader.read = fake_read
    reads = reader.read_image(np.zeros((100, 200, 3), np.uint8), box, search_top)
    assert seen[0][1] == expected
    assert seen[0][2] == (search_top is None)   # a caller's search_top: a plate crop
    x1, y1, x2, y2 = box
    assert reads[0].box == pytest.approx((x1, y1 + 0.5 * (y2 - y1), x2, y2), abs=0.01)


RECOGNISERS = {
    "configured": {},  # config.pbtxt as it is (PP-OCRv6 small)
    "ppocr_v4_mobile": {"rec_model_file": "ch_PP-OCRv4_rec_infer.onnx", "rec_widen": "1.25"},
    "ppocr_v6_small": {"rec_model_file": "PP-OCRv6_rec_small.onnx", "rec_widen": "1.0"},
    "ppocr_v6_small_variants": {"rec_model_file": "PP-OCRv6_rec_small.onnx",
                                "rec_widen": "1.0", "rec_variants": "0,0.06"},
}
"""The recognisers ``rec_model_file`` may name (ops/models.yaml), with their parameters."""


@pytest.fixture(scope="module", params=sorted(RECOGNISERS))
def recogniser(request: pytest.FixtureRequest) -> Any:
    """A reader configured like the Triton model, with each recogniser."""
    params = {**triton_parameters("plates"), **RECOGNISERS[request.param]}
    return local_reader(get_settings().models_dir, params)


def test_each_recogniser_has_the_plate_alphabet(lib: ModuleType, recogniser: Any) -> None:
    assert recogniser.rec.get_inputs()[0].shape[1] == 3  # BGR; height 48 (rec_input)
    # blank + the `character` metadata + space: one class per output of the model
    batch = np.zeros((1, 3, 48, 192), dtype=np.float32)
    assert recogniser.rec.run(None, {"x": batch})[0].shape[-1] == len(recogniser.charset)
    assert recogniser.charset[0] == "" and recogniser.charset[-1] == " "
    assert set(lib.PLATE_ALPHABET) <= set(recogniser.charset)
    assert int(recogniser.allowed.sum()) == len(lib.PLATE_ALPHABET) + 1  # and the blank


@pytest.mark.parametrize("text", ["AB12CD", "7XYZ049", "KP3J8Q"])
def test_each_recogniser_reads_a_clean_plate_string(recogniser: Any, text: str) -> None:
    """Dark characters on white, as on a plate: exact, every character confident."""
    patch = np.full((60, 260, 3), 255, dtype=np.uint8)
    cv2.putText(patch, text, (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3,
                cv2.LINE_AA)
    [(read, confidences, alternatives)] = recogniser.recognise([patch])
    assert read == text
    assert len(confidences) == len(alternatives) == len(text)
    assert min(confidences) > 0.8


@pytest.mark.parametrize(("reads", "expected"), [
    ([], ("", [], [])),
    ([("", [], []), ("", [], [])], ("", [], [])),
    ([("AB12", [0.9, 0.8, 0.7, 0.6], ["", "8", "", ""])],            # one read: as it is
     ("AB12", [0.9, 0.8, 0.7, 0.6], ["", "8", "", ""])),
    ([("AB12", [0.9] * 4, [""] * 4), ("AB12", [0.7] * 4, [""] * 4)],  # agreeing: the mean
     ("AB12", [0.8] * 4, [""] * 4)),
    ([("AB12", [0.9, 0.4, 0.9, 0.9], [""] * 4),                       # a position disputed:
      ("A812", [0.9, 0.7, 0.9, 0.9], [""] * 4)],                      # the surer wins, with
     ("A812", [0.9, 0.35, 0.9, 0.9], ["", "B", "", ""])),             # half its confidence
    ([("AB12", [0.9, 0.5, 0.9, 0.9], [""] * 4),                       # a tie: the first read
      ("A812", [0.9, 0.5, 0.9, 0.9], [""] * 4)],
     ("AB12", [0.9, 0.25, 0.9, 0.9], ["", "8", "", ""])),
    ([("FK2X2Z", [0.9] * 6, [""] * 6), ("K2X2Z", [0.8] * 5, [""] * 5)],  # length: more mass
     ("FK2X2Z", [0.9] * 6, [""] * 6)),
    ([("AB12", [0.6] * 4, [""] * 4), ("AB123", [0.6] * 5, [""] * 5)],  # equal mass: longer
     ("AB123", [0.6] * 5, [""] * 5)),
    ([("AB12", [0.8] * 4, ["", "", "Z", ""]), ("AB12", [0.6] * 4, [""] * 4),
      ("XB12", [0.5] * 4, [""] * 4)],
     ("AB12", [0.4667, 0.6333, 0.6333, 0.6333], ["X", "", "Z", ""])),
])
def test_fuse_reads(lib: ModuleType, reads: list[tuple[str, list[float], list[str]]],
                    expected: tuple[str, list[float], list[str]]) -> None:
    text, confidences, alternatives = lib.fuse_reads(reads)
    assert (text, alternatives) == (expected[0], expected[2])
    assert confidences == pytest.approx(expected[1], abs=1e-4)


def test_widen_quad_grows_along_the_box(lib: ModuleType) -> None:
    quad = np.array([[10, 10], [50, 10], [50, 20], [10, 20]], np.float32)
    assert lib.widen_quad(quad, 0.0).tolist() == quad.tolist()
    assert lib.widen_quad(quad, 0.5).tolist() == [[0, 10], [60, 10], [60, 20], [0, 20]]
    tilted = lib.order_quad([[0, 0], [40, 30], [34, 38], [-6, 8]])  # 50 x 10, rotated
    grown = lib.widen_quad(tilted, 0.2)
    assert float(np.linalg.norm(grown[1] - grown[0])) == pytest.approx(60.0, abs=0.01)
    assert float(np.linalg.norm(grown[3] - grown[0])) == pytest.approx(10.0, abs=0.01)


@pytest.mark.parametrize(("text", "no_digit", "expected"), [
    ("ABC123", 0.5, 0.9),      # a digit: unchanged
    ("TEXAS", 0.5, 0.45),      # no digit: a state or dealer name
    ("TEXAS", 1.0, 0.9),       # off
])
def test_plate_score_without_a_digit(lib: ModuleType, text: str, no_digit: float,
                                     expected: float) -> None:
    assert lib.plate_score(text, [0.9] * len(text), 3.0, 1.0, no_digit=no_digit) == \
        pytest.approx(expected)


def test_read_fuses_the_variants_of_each_box(lib: ModuleType) -> None:
    """``rec_variants``: every box cut once per widening, in one recogniser batch, the reads
    of one box fused per character; ``no_digit_factor`` ranks a word below the plate."""
    reader = object.__new__(lib.PlateReader)
    reader.top_k, reader.rec_variants, reader.no_digit = 3, (0.0, 0.06), 0.5
    reader.low_weight, reader.centre_weight, reader.height_band = 0.2, 0.0, None
    plate = np.array([[20, 60], [80, 60], [80, 80], [20, 80]], np.float32)
    word = np.array([[20, 30], [100, 30], [100, 50], [20, 50]], np.float32)
    reader.detect = lambda crop, top=None: [(word, 0.9), (plate, 0.8)]
    batches: list[list[tuple[int, ...]]] = []

    reader.stray_gap = 0.0
    spans = [(step, step) for step in range(0, 10, 2)]

    def fake_recognise(patches: list[np.ndarray]) -> list[tuple[Any, ...]]:
        batches.append([p.shape for p in patches])
        return [("TEXAS", [0.99] * 5, [""] * 5, spans),                 # as found
                ("AB1Z3", [0.8] * 5, [""] * 5, spans),
                ("TEXAS", [0.99] * 5, [""] * 5, spans),                 # 6 % wider
                ("AB123", [0.9] * 5, [""] * 5, spans)]

    reader.recognise_spans = fake_recognise
    reads = reader.read(np.zeros((100, 120, 3), np.uint8))
    assert len(batches) == 1 and len(batches[0]) == 4          # one batch: 2 boxes x 2 cuts
    assert batches[0][2][1] > batches[0][0][1]                 # the second cut is wider
    assert [r.text for r in reads] == ["AB123", "TEXAS"]
    assert reads[0].confidences == pytest.approx([0.85, 0.85, 0.85, 0.45, 0.85])
    assert reads[0].alternatives == ["", "", "", "Z", ""]
    assert lib.parse_variants("0,0.06") == (0.0, 0.06) and lib.parse_variants(" ") == (0.0,)


@pytest.mark.parametrize(("box", "crop_aspect", "centre", "band", "expected"), [
    ((0.4, 0.7, 0.6, 0.76), 0.8, 0.0, None, 1.0),               # off
    ((0.4, 0.7, 0.6, 0.76), 0.8, 0.2, None, 1.0),               # in the middle
    ((0.8, 0.9, 1.0, 0.95), 0.8, 0.2, None, 0.872),             # near the side edge
    ((0.05, 0.9, 0.45, 0.95), 0.8, 0.2, None, 0.95),            # a quarter in from it
    ((0.4, 0.7, 0.6, 0.76), 0.8, 0.0, (0.02, 0.15), 1.0),       # 0.048 of the width tall
    ((0.4, 0.7, 0.6, 0.72), 0.8, 0.0, (0.02, 0.15), 0.5),       # 0.016: too small
    ((0.4, 0.5, 0.6, 0.8), 0.8, 0.0, (0.02, 0.15), 0.5),        # 0.24: too large
    ((0.8, 0.7, 1.0, 0.72), 0.8, 0.2, (0.02, 0.15), 0.436),     # both
])
def test_vehicle_prior(lib: ModuleType, box: tuple[float, ...], crop_aspect: float,
                       centre: float, band: tuple[float, float] | None,
                       expected: float) -> None:
    assert lib.vehicle_prior(box, crop_aspect, centre, band) == pytest.approx(expected)


def test_height_band_parsing(lib: ModuleType) -> None:
    assert lib.parse_band("0.02,0.15") == (0.02, 0.15)
    assert lib.parse_band("0") is None and lib.parse_band("") is None
    for bad in ("0.1", "0.2,0.1", "0.1,0.2,0.3"):
        with pytest.raises(ValueError, match="height_band"):
            lib.parse_band(bad)


@pytest.mark.parametrize(("centre", "vehicle", "expected"), [
    (0.0, True, ["2014051", "N359973"]),    # off: the surer sticker wins
    (0.2, True, ["N359973", "2014051"]),    # the plate near the middle wins
    (0.2, False, ["2014051", "N359973"]),   # not a vehicle (a whole photo): no prior
])
def test_read_ranks_by_the_position_on_the_vehicle(lib: ModuleType, centre: float,
                                                   vehicle: bool, expected: list[str]) -> None:
    """``centre_weight``: a registration sticker at the vehicle's side edge, read surer than
    the plate in the middle, ranks below it on a vehicle box."""
    reader = object.__new__(lib.PlateReader)
    reader.top_k, reader.rec_variants, reader.no_digit = 3, (0.0,), 0.5
    reader.low_weight, reader.centre_weight, reader.height_band = 0.2, centre, None
    reader.stray_gap = 0.0
    sticker = np.array([[170, 88], [196, 88], [196, 96], [170, 96]], np.float32)
    plate = np.array([[80, 76], [120, 76], [120, 88], [80, 88]], np.float32)
    reader.detect = lambda crop, top=None: [(sticker, 0.9), (plate, 0.8)]
    spans = [(step, step) for step in range(0, 14, 2)]
    reader.recognise_spans = lambda patches: [("2014051", [0.99] * 7, [""] * 7, spans),
                                              ("N359973", [0.97] * 7, [""] * 7, spans)]
    reads = reader.read(np.zeros((100, 200, 3), np.uint8), vehicle=vehicle)
    assert [r.text for r in reads] == expected


def test_whole_photo_has_no_vehicle_prior(lib: ModuleType) -> None:
    reader = object.__new__(lib.PlateReader)
    seen: list[bool] = []

    def fake_read(crop: np.ndarray, top: float | None = None,
                  vehicle: bool = True) -> list[object]:
        seen.append(vehicle)
        return []

    reader.read = fake_read
    reader.read_image(np.zeros((100, 200, 3), np.uint8), None)
    reader.read_image(np.zeros((100, 200, 3), np.uint8), (0.1, 0.3, 0.5, 0.9))
    assert seen == [False, True]
