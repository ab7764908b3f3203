"""Plate strings as tables: cleaning, format normalisation with confusion repair, choosing a
read of one crop, per-character voting across frames, edit distance."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from argus.plates.text import (
    PlateFormat,
    Read,
    choose,
    clean,
    confusable_key,
    edit_distance,
    normalise,
    vote,
)

UK = PlateFormat(pattern=r"[A-Z]{2}[0-9]{2}[A-Z]{3}")
US = PlateFormat(pattern=r"[A-Z0-9]{5,8}", fold={"O": "0"})
DE = PlateFormat(pattern=r"[A-Z]{1,3}[A-Z]{1,2}[0-9]{1,4}")


@pytest.mark.parametrize(("text", "fold", "expected"), [
    ("ab-12 cde", None, "AB12CDE"),
    ("ÄB12", None, "B12"),
    ("o0O", {"O": "0"}, "000"),
    ("", None, ""),
])
def test_clean(text: str, fold: dict[str, str] | None, expected: str) -> None:
    assert clean(text, fold) == expected


@pytest.mark.parametrize(("text", "fmt", "alternatives", "expected"), [
    ("AB12CDE", UK, (), ("AB12CDE", 0)),
    ("A812CDE", UK, (), ("AB12CDE", 1)),            # 8 -> B where a letter must be
    ("AB1ZCDE", UK, (), ("AB12CDE", 1)),            # Z -> 2 where a digit must be
    ("A81ZCDE", UK, (), ("AB12CDE", 2)),
    ("A81Z5DE", UK, (), None),                      # 3 fixes needed, at most 2 allowed
    ("AB12CD", UK, (), None),                       # too short: no substitution helps
    ("ABI2CDE", UK, ("", "", "T", "", "", "", ""), ("AB12CDE", 1)),  # via CONFUSIONS I -> 1
    ("ABX2CDE", UK, ("", "", "7", "", "", "", ""), ("AB72CDE", 1)),  # via the runner-up
    ("8OL4O6", US, (), ("80L406", 0)),              # fold O -> 0 first; L stays
    ("ABC", US, (), None),
    ("M AB 123", DE, (), ("MAB123", 0)),
])
def test_normalise(text: str, fmt: PlateFormat, alternatives: tuple[str, ...],
                   expected: tuple[str, int] | None) -> None:
    result = normalise(text, fmt, alternatives)
    assert (None if result is None else (result.text, result.fixes)) == expected


DROP = PlateFormat(pattern=r"[A-Z0-9]{5,8}", fold={"O": "0"}, drop_below=0.4)


@pytest.mark.parametrize(("text", "confidences", "expected"), [
    ("DK2Z5S", (0.9,) * 6, ("DK2Z5S", 0)),
    ("SH0LR7X", (0.99, 0.99, 0.97, 0.35, 0.99, 0.89, 0.98), ("SH0R7X", 0)),  # emblem dropped
    ("AC0O0M7V", (0.99, 0.99, 0.83, 0.2, 0.34, 0.97, 0.87, 0.99), ("AC0M7V", 0)),
    ("AB1", (0.9, 0.9, 0.3), None),           # what remains is too short
    ("AB123", (), ("AB123", 0)),               # no confidences: nothing dropped
])
def test_normalise_drops_unsure_characters(text: str, confidences: tuple[float, ...],
                                           expected: tuple[str, int] | None) -> None:
    result = normalise(text, DROP, (), confidences)
    assert (None if result is None else (result.text, result.fixes)) == expected


@pytest.mark.parametrize(("fields", "message"), [
    ({"pattern": "[A-Z"}, "bad plate pattern"),
    ({"fold": {"OO": "0"}}, "one character to one"),
    ({"max_fixes": 9}, "less than or equal to 4"),
])
def test_format_rejects_bad_settings(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PlateFormat.model_validate(fields)


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}), ("O=0", {"O": "0"}), ("o=0, i=1", {"O": "0", "I": "1"}),
])
def test_parse_fold(text: str, expected: dict[str, str]) -> None:
    assert PlateFormat.parse_fold(text) == expected


def test_parse_fold_rejects_bad_entries() -> None:
    with pytest.raises(ValueError, match="C=D"):
        PlateFormat.parse_fold("OO=0")


WITH_DIGIT = PlateFormat(pattern=r"(?=.*[0-9])[A-Z0-9]{5,8}")


@pytest.mark.parametrize(("reads", "fmt", "expected"), [
    ([], US, None),
    # a dealer's name fits a loose format and, read more confidently, wins ...
    ([Read("SUNTRUP", (0.99,) * 7, 0.9), Read("YG9X2G", (0.9,) * 6, 0.8)], US,
     ("SUNTRUP", 0)),
    # ... a format that wants a digit keeps the plate
    ([Read("SUNTRUP", (0.99,) * 7, 0.9), Read("YG9X2G", (0.9,) * 6, 0.8)], WITH_DIGIT,
     ("YG9X2G", 0)),
    # both fit: fewer fixes wins over a higher score
    ([Read("A812CDE", (0.9,) * 7, 0.95), Read("AB12CDE", (0.8,) * 7, 0.7)], UK,
     ("AB12CDE", 0)),
    # equal fixes: the higher score
    ([Read("AB12CDE", (0.9,) * 7, 0.6), Read("XY34ZZZ", (0.9,) * 7, 0.7)], UK,
     ("XY34ZZZ", 0)),
    ([Read("TEXAS", (0.9,) * 5, 0.9)], UK, None),
])
def test_choose(reads: list[Read], fmt: PlateFormat, expected: tuple[str, int] | None) -> None:
    result = choose(reads, fmt)
    assert (None if result is None else (result[1].text, result[1].fixes)) == expected


@pytest.mark.parametrize(("reads", "text", "support", "count", "stable"), [
    ([], None, 0, 0, False),
    ([("", [])], None, 0, 0, False),
    ([("AB123", [0.9] * 5)], "AB123", 1, 1, False),             # one read is never stable
    ([("AB123", [0.9] * 5), ("AB123", [0.8] * 5)], "AB123", 2, 2, True),
    # per-character: each position won by the most confidence, even if no read has it all
    ([("AB12X", [0.9] * 5), ("A8123", [0.6] * 5), ("AB123", [0.5] * 5)],
     "AB123", 1, 3, False),
    # the length with the most mass wins; the short read still counts as voted
    ([("AB123", [0.9] * 5), ("AB123", [0.9] * 5), ("B123", [0.99] * 4)],
     "AB123", 2, 3, True),
    # a split vote is unstable
    ([("AB123", [0.9] * 5), ("AB128", [0.9] * 5)], "AB128", 1, 2, False),
])
def test_vote(reads: list[tuple[str, list[float]]], text: str | None, support: int,
              count: int, stable: bool) -> None:
    result = vote(reads)
    if text is None:
        assert result is None
        return
    assert result is not None
    assert (result.text, result.support, result.reads, result.stable()) == \
        (text, support, count, stable)
    assert len(result.confidences) == len(text)
    assert all(0.0 < share <= 1.0 for share in result.confidences)


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("", "", 0), ("ABC", "", 3), ("ABC", "ABC", 0), ("ABC", "A8C", 1), ("ABC", "AC", 1),
    ("AB12CDE", "AB12CD", 1), ("KITTEN", "SITTING", 3),
])
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance == edit_distance(b, a)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("B0S1", "8O51", True), ("AB12", "A812", True), ("AB12", "AB13", False),
    ("Z2G6", "2Z6G", True),
])
def test_confusable_key(a: str, b: str, same: bool) -> None:
    assert (confusable_key(a) == confusable_key(b)) is same
