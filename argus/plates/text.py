"""Plate strings: format normalisation, OCR confusions, choosing a read, voting across frames.

Pure logic shared by the plate stage, the hotlists and the evaluation (no models, no I/O).

A site's plate format is data, not code (:class:`PlateFormat`): a regular expression over the
cleaned string (upper case, only ``A-Z0-9``) and a ``fold`` map applied before it (a country
whose plates never use the letter O folds ``O`` to ``0``). A read that does not match is
repaired with the fewest substitutions (at most ``max_fixes``) among the classic OCR confusions
(:data:`CONFUSIONS`) and the recogniser's own runner-up characters; a read that cannot be
repaired is rejected.

>>> fmt = PlateFormat(pattern=r"[A-Z]{2}[0-9]{2}[A-Z]{3}")
>>> normalise("ab 12-c0e", fmt)
Normalised(text='AB12COE', fixes=1)
>>> normalise("AB12", fmt) is None
True
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONFUSIONS: Mapping[str, str] = {
    "0": "OD", "O": "0D", "D": "0O", "Q": "0O",
    "1": "I", "I": "1", "L": "1",
    "8": "B", "B": "8",
    "5": "S", "S": "5",
    "2": "Z", "Z": "2",
    "6": "G", "G": "6",
}
"""Characters an OCR model confuses (read → what it may really be)."""


class PlateFormat(BaseModel):
    """A plate format: a full-match regex over the cleaned string, a fold map applied first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str = r"[A-Z0-9]{2,10}"
    """Full-match regular expression (the default accepts any 2-10 characters)."""
    fold: dict[str, str] = Field(default_factory=dict)
    """Single characters replaced before matching, e.g. ``{"O": "0"}``."""
    max_fixes: int = Field(default=2, ge=0, le=4)
    """At most this many confusion substitutions to make a read match."""
    drop_below: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Characters read with a confidence below this are dropped first (a separator emblem
    or a bolt read as a character); 0: none."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad plate pattern {value!r}: {exc}") from None
        return value

    @field_validator("fold")
    @classmethod
    def _single_characters(cls, value: dict[str, str]) -> dict[str, str]:
        for key, target in value.items():
            if len(key) != 1 or len(target) != 1:
                raise ValueError(f"fold maps one character to one, got {key!r}: {target!r}")
        return value

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return re.compile(self.pattern)

    @staticmethod
    def parse_fold(text: str) -> dict[str, str]:
        """``"O=0,I=1"`` → ``{"O": "0", "I": "1"}`` (empty text: no folding).

        >>> PlateFormat.parse_fold("O=0, I=1")
        {'O': '0', 'I': '1'}
        """
        fold: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or len(key.strip()) != 1 or len(value.strip()) != 1:
                raise ValueError(f"fold entries are C=D (one character each), got {part!r}")
            fold[key.strip().upper()] = value.strip().upper()
        return fold


@dataclass(frozen=True)
class Normalised:
    """A read in a site's format."""

    text: str
    fixes: int
    """Confusion substitutions it took to match the format."""


def clean(text: str, fold: Mapping[str, str] | None = None) -> str:
    """Upper case, only ``A-Z0-9``, then ``fold`` applied.

    >>> clean("ab-1 2o", {"O": "0"})
    'AB120'
    """
    kept = "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())
    if fold:
        kept = "".join(fold.get(ch, ch) for ch in kept)
    return kept


def normalise(text: str, fmt: PlateFormat, alternatives: Sequence[str] = (),
              confidences: Sequence[float] = ()) -> Normalised | None:
    """The read in ``fmt`` with the fewest substitutions, or None when none fits.

    ``alternatives`` (per character of ``text`` as read, "" for none) are the recogniser's
    runner-ups; they are tried along with :data:`CONFUSIONS`. Ties go to the first
    substitution positions from the left. With ``confidences`` (per character), characters
    below ``fmt.drop_below`` are dropped first.
    """
    if fmt.drop_below > 0 and len(confidences) == len(text):
        keep = [i for i, conf in enumerate(confidences) if conf >= fmt.drop_below]
        text = "".join(text[i] for i in keep)
        if len(alternatives) == len(confidences):
            alternatives = [alternatives[i] for i in keep]
    raw = "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())
    cleaned = clean(raw, fmt.fold)
    if fmt.regex.fullmatch(cleaned):
        return Normalised(cleaned, 0)
    if len(alternatives) != len(text):
        alternatives = [""] * len(raw)
    else:
        alternatives = [a for ch, a in zip(text.upper(), alternatives, strict=True)
                        if ch.isascii() and ch.isalnum()]
    options: list[str] = []
    for index, char in enumerate(cleaned):
        extra = clean(CONFUSIONS.get(raw[index], "") + alternatives[index].upper(), fmt.fold)
        options.append("".join(dict.fromkeys(c for c in extra if c != char)))
    for fixes in range(1, fmt.max_fixes + 1):
        for positions in itertools.combinations(
                [i for i, opts in enumerate(options) if opts], fixes):
            for choice in itertools.product(*(options[i] for i in positions)):
                candidate = list(cleaned)
                for position, char in zip(positions, choice, strict=True):
                    candidate[position] = char
                joined = "".join(candidate)
                if fmt.regex.fullmatch(joined):
                    return Normalised(joined, fixes)
    return None


def confusable_key(text: str) -> str:
    """``text`` with every confusable character mapped to one representative, so reads that
    differ only by confusions share a key (0/O/D/Q → 0, 1/I/L → 1, 8/B → 8, 5/S → 5, 2/Z → 2,
    6/G → 6).

    >>> confusable_key("B0SI") == confusable_key("8O51")
    True
    """
    table = {"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2",
             "G": "6"}
    return "".join(table.get(ch, ch) for ch in text.upper())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance.

    >>> edit_distance("AB123", "A8123"), edit_distance("AB123", "AB12")
    (1, 1)
    """
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class Read:
    """One plate read (one frame), as the recogniser gave it."""

    text: str
    confidences: tuple[float, ...]
    score: float = 1.0
    """Plate-likeness (the reader's score), used to rank reads of one crop."""
    alternatives: tuple[str, ...] = ()


def choose(reads: Sequence[Read], fmt: PlateFormat) -> tuple[Read, Normalised] | None:
    """The best read of one crop that fits ``fmt``: fewest fixes, then highest score."""
    fitting = []
    for read in reads:
        normal = normalise(read.text, fmt, read.alternatives, read.confidences)
        if normal is not None:
            fitting.append((normal.fixes, -read.score, read, normal))
    if not fitting:
        return None
    fitting.sort(key=lambda item: (item[0], item[1]))
    return fitting[0][2], fitting[0][3]


@dataclass(frozen=True)
class Vote:
    """Reads of one plate combined across frames."""

    text: str
    confidences: tuple[float, ...]
    """Per character: the winner's share of the confidence mass at that position (0..1)."""
    support: int
    """Reads of the winning length that agree with the text exactly."""
    reads: int
    """Reads voted (all lengths)."""

    @property
    def confidence(self) -> float:
        """The lowest per-character share."""
        return min(self.confidences) if self.confidences else 0.0

    def stable(self, min_reads: int = 2, min_share: float = 0.6) -> bool:
        """Enough reads, and every position won by at least ``min_share`` of its mass."""
        return self.reads >= min_reads and self.confidence >= min_share


def vote(reads: Sequence[tuple[str, Sequence[float]]]) -> Vote | None:
    """Per-character voting over reads ``(text, per-character confidences)``.

    The length is the one with the most confidence mass (sum of mean confidences); among
    reads of that length each position goes to the character with the most summed
    confidence. None when there is no non-empty read.

    >>> v = vote([("AB123", [0.9] * 5), ("A8123", [0.5] * 5), ("AB12", [0.9] * 4)])
    >>> v.text, v.support, v.reads, round(v.confidence, 3)
    ('AB123', 1, 3, 0.643)
    """
    usable = [(text, list(confs)) for text, confs in reads
              if text and len(confs) == len(text)]
    if not usable:
        return None
    by_length: dict[int, float] = defaultdict(float)
    for text, confs in usable:
        by_length[len(text)] += sum(confs) / len(confs)
    length = max(by_length, key=lambda n: (by_length[n], n))
    same = [(text, confs) for text, confs in usable if len(text) == length]
    chars: list[str] = []
    shares: list[float] = []
    for position in range(length):
        mass: dict[str, float] = defaultdict(float)
        for text, confs in same:
            mass[text[position]] += max(confs[position], 1e-6)
        winner = max(mass, key=lambda ch: (mass[ch], ch))
        chars.append(winner)
        shares.append(round(mass[winner] / sum(mass.values()), 4))
    text = "".join(chars)
    return Vote(text, tuple(shares), sum(1 for t, _ in same if t == text), len(usable))
