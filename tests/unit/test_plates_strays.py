"""Stray characters at the ends of a plate read (``triton_models/plates/1/ctc.py``) as tables:
CTC decoding with each character's span of time steps, which end groups stand apart from the
rest, the trimmed reads, and the reader offering the trimmed variant first."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from argus.plates.reader import load_platelib, plate_of
from argus.plates.text import PlateFormat

CHARSET = ["", "A", "B", "1"]


@pytest.fixture(scope="module")
def lib() -> ModuleType:
    return load_platelib()


def _probs(steps: str) -> np.ndarray:
    """A T x C matrix from one character per step ("." = blank), 0.8 on it."""
    matrix = np.full((len(steps), len(CHARSET)), 0.2 / (len(CHARSET) - 1), dtype=np.float32)
    for step, char in enumerate(steps):
        matrix[step, CHARSET.index("" if char == "." else char)] = 0.8
    return matrix


@pytest.mark.parametrize(("steps", "text", "spans"), [
    ("", "", []),
    ("...", "", []),
    ("A.B", "AB", [(0, 0), (2, 2)]),
    ("AA..B", "AB", [(0, 1), (4, 4)]),           # a run of two steps
    ("A.A", "AA", [(0, 0), (2, 2)]),             # a blank separates a double letter
    (".1..AAA.B.", "1AB", [(1, 1), (4, 6), (8, 8)]),
])
def test_ctc_spans(lib: ModuleType, steps: str, text: str, spans: list[tuple[int, int]],
                   ) -> None:
    read, confidences, found = lib.ctc_spans(_probs(steps).reshape(len(steps), len(CHARSET)),
                                             CHARSET)
    assert (read, found) == (text, spans)
    assert confidences == pytest.approx([0.8] * len(text))
    assert lib.ctc_decode(_probs(steps).reshape(len(steps), len(CHARSET)), CHARSET) == (
        read, confidences)


def _even(count: int, start: int = 0, step: int = 2) -> list[tuple[int, int]]:
    return [(start + step * i, start + step * i) for i in range(count)]


@pytest.mark.parametrize(("spans", "gap", "expected"), [
    (_even(7), 2.0, (0, 0)),                                    # evenly spaced: whole
    ([(0, 0), *_even(6, 8)], 2.0, (1, 0)),                      # one apart at the start
    ([*_even(6), (18, 18)], 2.0, (0, 1)),                       # one apart at the end
    ([*_even(6), (18, 18)], 4.0, (0, 0)),                       # 4 x the median: not enough
    ([*_even(6), (18, 18)], 0.0, (0, 0)),                       # 0: off
    ([(0, 0), (2, 2), *_even(6, 10)], 2.0, (2, 0)),             # a group of two at the start
    ([(0, 0), *_even(5, 8), (26, 26)], 2.0, (1, 1)),            # one at each end
    ([(0, 0), (2, 2), (4, 4), *_even(5, 14)], 2.0, (0, 0)),     # three apart: not an end
    ([(0, 0), *_even(4, 8)], 2.0, (0, 0)),                      # would leave 4: too short
    ([(0, 0), (2, 2), *_even(4, 10)], 2.0, (0, 0)),             # CC2881: would leave 4
    ([(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (9, 9), (15, 15), (17, 17)], 2.75,
     (0, 2)),                                                   # CDK57513: the read's steps
    ([(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (9, 9), (15, 15), (17, 17)], 3.0,
     (0, 0)),                                                   # 3 x exactly: not more
    ([(0, 1), (4, 4), (6, 6), (8, 9), (11, 11), (13, 13)], 2.0, (0, 0)),  # runs: centres
])
def test_stray_ends(lib: ModuleType, spans: list[tuple[int, int]], gap: float,
                    expected: tuple[int, int]) -> None:
    assert lib.ctc.stray_ends(spans, gap) == expected


@pytest.mark.parametrize(("text", "spans", "expected"), [
    ("1AB1AB1", [(0, 0), *_even(6, 8)], "AB1AB1"),
    ("AB1AB1B", [*_even(6), (18, 18)], "AB1AB1"),
    ("AB1AB1", _even(6), "AB1AB1"),
])
def test_trim_strays(lib: ModuleType, text: str, spans: list[tuple[int, int]],
                     expected: str) -> None:
    confidences = [0.5 + 0.05 * i for i in range(len(text))]
    alternatives = ["8" if char == "B" else "" for char in text]
    trimmed, confs, alts = lib.ctc.trim_strays(text, confidences, alternatives, spans, 2.0)
    start = text.index(expected)
    assert trimmed == expected
    assert confs == confidences[start:start + len(expected)]
    assert alts == alternatives[start:start + len(expected)]


def test_trimmed_reads(lib: ModuleType) -> None:
    even = ("AB1AB1", [0.9] * 6, [""] * 6, _even(6))
    stray = ("AB1AB1B", [0.9] * 7, [""] * 7, [*_even(6), (18, 18)])
    assert lib.trimmed_reads([even], 2.0) is None
    assert lib.trimmed_reads([even, stray], 2.0) == [even[:3], ("AB1AB1", [0.9] * 6, [""] * 6)]
    assert lib.trimmed_reads([stray], 0.0) is None


@pytest.mark.parametrize(("gap", "expected"), [
    (0.0, [("CDK57513", 0.9)]),                          # off: the read as recognised
    (2.75, [("CDK575", 0.9), ("CDK57513", 0.81)]),       # the trimmed variant first
    (3.0, [("CDK57513", 0.9)]),
])
def test_read_offers_the_trimmed_variant_first(lib: ModuleType, gap: float,
                                               expected: list[tuple[str, float]]) -> None:
    reader = object.__new__(lib.PlateReader)
    reader.top_k, reader.rec_variants, reader.no_digit = 3, (0.0,), 1.0
    reader.low_weight, reader.centre_weight, reader.height_band = 0.0, 0.0, None
    reader.stray_gap = gap
    plate = np.array([[80, 76], [120, 76], [120, 88], [80, 88]], np.float32)
    reader.detect = lambda crop, top=None: [(plate, 0.8)]
    spans = [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (9, 9), (15, 15), (17, 17)]
    reader.recognise_spans = lambda patches: [("CDK57513", [0.9] * 8, [""] * 8, spans)]
    reads = reader.read(np.zeros((100, 200, 3), np.uint8), vehicle=False)
    assert [(r.text, r.score) for r in reads] == expected
    assert all(r.box == reads[0].box for r in reads)


@pytest.mark.parametrize(("text", "spans", "pattern", "expected"), [
    # CDK57513: both fit the US pattern: the trimmed variant, offered first, wins
    ("CDK57513", [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (9, 9), (15, 15), (17, 17)],
     r"[A-Z0-9]{5,8}", "CDK575"),
    # a site whose plates have 8 characters: the read as recognised still fits and wins
    ("CDK57513", [(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (9, 9), (15, 15), (17, 17)],
     r"[A-Z0-9]{8}", "CDK57513"),
    # a 6-character read with a stray last character: only the trimmed 5 fit [A-Z]{3}[0-9]{2}
    ("ABC12X", [*_even(5), (16, 16)], r"[A-Z]{3}[0-9]{2}", "ABC12"),
])
def test_the_format_chooses_between_a_read_and_its_trimmed_variant(
        lib: ModuleType, text: str, spans: list[tuple[int, int]], pattern: str,
        expected: str) -> None:
    reader = object.__new__(lib.PlateReader)
    reader.top_k, reader.rec_variants, reader.no_digit = 3, (0.0,), 1.0
    reader.low_weight, reader.centre_weight, reader.height_band = 0.0, 0.0, None
    reader.stray_gap = 2.5
    plate = np.array([[80, 76], [120, 76], [120, 88], [80, 88]], np.float32)
    reader.detect = lambda crop, top=None: [(plate, 0.8)]
    reader.recognise_spans = lambda patches: [(text, [0.9] * len(text), [""] * len(text),
                                               spans)]
    reads = [r.as_dict() for r in reader.read(np.zeros((100, 200, 3), np.uint8))]
    picked = plate_of(reads, PlateFormat(pattern=pattern, max_fixes=0))
    assert picked is not None and picked[1].text == expected
