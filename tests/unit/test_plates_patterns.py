"""Plate search patterns: parsing, wildcard and fuzzy matching, redaction, one-edit
neighbours (pure logic)."""

from __future__ import annotations

import pytest

from argus.plates.patterns import PatternError, PlatePattern, neighbours
from argus.plates.text import edit_distance


@pytest.mark.parametrize(("raw", "text", "literal", "shape"), [
    ("AB12CDE", "AB12CDE", True, "AA99AAA"),
    ("ab 12-cde", "AB12CDE", True, "AA99AAA"),
    ("ab12*", "AB12*", False, "AA99*"),
    ("*123", "*123", False, "*999"),
    ("A?C", "A?C", False, "A?A"),
    ("A**1*", "A*1*", False, "A*9*"),
    ("k.x 7 0", "KX70", True, "AA99"),
])
def test_parse(raw: str, text: str, literal: bool, shape: str) -> None:
    pattern = PlatePattern.parse(raw)
    assert (pattern.text, pattern.literal, pattern.shape) == (text, literal, shape)


@pytest.mark.parametrize(("raw", "message"), [
    ("", "at least 2 plate characters"),
    ("*", "at least 2 plate characters"),
    ("A*?", "at least 2 plate characters"),
    ("AB_12", "not '_'"),
    ("AB12%", "not '%'"),
    ("ÄB12", "not 'Ä'"),
    ("A" * 13, "at most 12 characters"),
    ("A*" * 9, "at most 16 characters"),
])
def test_refused(raw: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        PlatePattern.parse(raw)


@pytest.mark.parametrize(("pattern", "plate", "exact", "fuzzy"), [
    # exact plates
    ("AB12CDE", "AB12CDE", 0, 0),
    ("AB12CDE", "AB12CDF", None, 1),        # one substitution
    ("AB12CDE", "AB12CD", None, 1),         # one deletion
    ("AB12CDE", "AB123CDE", None, 1),       # one insertion
    ("AB12CDE", "A812CDE", None, 1),        # one OCR confusion
    ("AB12CDE", "A812C0E", None, 2),        # two confusions: same confusion class
    ("AB12CDE", "A812CDF", None, None),     # a confusion and another edit
    ("AB12CDE", "XY34ZZZ", None, None),
    # wildcards
    ("AB12*", "AB12CDE", 0, 0),
    ("AB12*", "AB12", 0, 0),                # * matches nothing too
    ("AB12*", "XAB12CDE", None, 1),
    ("AB12*", "A812CDE", None, 1),
    ("AB12*", "A8I2CDE", None, 2),          # two confusions before the *
    ("AB12*", "XY12CDE", None, None),
    ("*123", "XYZ123", 0, 0),
    ("*123", "XYZ1234", None, 1),
    ("*123", "XYZ12", None, 1),
    ("A?C", "ABC", 0, 0),
    ("A?C", "AC", None, 1),                 # ? needs one character
    ("A?C", "ABBC", None, 1),
    ("A?C", "XBC", None, 1),
    ("A?C", "XBD", None, None),
    ("A*C*E", "ABBCDDE", 0, 0),
    ("A*C*E", "ABBGDDE", None, 1),
    ("A*C*E", "ABBGDDF", None, None),
])
def test_match(pattern: str, plate: str, exact: int | None, fuzzy: int | None) -> None:
    parsed = PlatePattern.parse(pattern)
    assert parsed.match(plate) == exact
    assert parsed.match(plate, fuzzy=True) == fuzzy


@pytest.mark.parametrize("plate", ["AB", "AB12CDE", "0O1I", "A" * 12])
def test_neighbours_are_every_plate_one_edit_away(plate: str) -> None:
    found = neighbours(plate)
    assert plate not in found
    assert all(edit_distance(plate, other) == 1 and 1 <= len(other) <= 12 for other in found)
    pattern = PlatePattern.parse(plate)
    assert all(pattern.match(other, fuzzy=True) == 1 for other in found)
    assert (plate[:-1] in found) and (plate + "Z" in found) == (len(plate) < 12)
