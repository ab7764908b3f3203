"""CTC decoding of the plate recogniser's output: the characters, their confidences, where
along the patch each was read, the runner-ups; and the trimming of a stray character at an
end of a read (an emblem, a bolt, a screw or the frame's edge read as a character).

Pure numpy, no Triton imports; loaded by ``platelib.py`` next to it (by path, so the same
file serves Triton and the application). Nothing here knows a country's plate format: a
stray character is told by where it was read, not by what it is.

>>> ctc_spans(np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.9, 0.05, 0.05],
...                     [0.1, 0.1, 0.8]]), ["", "A", "B"])
('AB', [0.9, 0.8], [(0, 1), (3, 3)])
>>> stray_ends([(0, 0), (9, 9), (12, 12), (15, 15), (18, 19), (21, 21)], gap_factor=2.0)
(1, 0)
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Span = tuple[int, int]
"""The first and last time step (column of the recogniser's output) of a character's run."""
SpannedRead = tuple[str, list[float], list[str], list[Span]]
"""Text, per-character confidences, runner-ups ("" for none) and spans of one patch."""
MIN_KEPT = 5
"""A trim never leaves fewer characters than this (a read this short is never trimmed)."""
MAX_GROUP = 2
"""At most this many characters are dropped at each end."""
UNTRIMMED = 0.9
"""The read as recognised, offered beside its trimmed variant, has its plate-likeness x
this: the trimmed variant comes first when both fit the site's format."""


def masked(probs: npt.ArrayLike, allowed: npt.NDArray[np.bool_] | None,
           ) -> npt.NDArray[np.float32]:
    """``probs`` (T x C) as float32 with the classes ``allowed`` does not allow set to
    0 (``allowed`` None: as they are): one mask per patch serves both decoders below."""
    matrix = np.asarray(probs, dtype=np.float32)
    return matrix if allowed is None else np.where(allowed[None, :], matrix, 0.0)


def ctc_spans(probs: npt.ArrayLike, charset: Sequence[str],
              allowed: npt.NDArray[np.bool_] | None = None,
              ) -> tuple[str, list[float], list[Span]]:
    """Greedy CTC decoding of one ``T x C`` probability matrix, with each character's span.

    ``charset[0]`` is the blank. ``allowed`` (bool, length C) masks the classes a read may
    contain (the blank is always allowed). Repeats collapse unless a blank separates them;
    each kept character's confidence is the highest probability over its run of steps,
    rounded to 4 places; its span is the run's first and last step.

    >>> ctc_spans([[0.1, 0.6, 0.3], [0.1, 0.3, 0.6]], ["", "A", "B"],
    ...           np.array([True, False, True]))
    ('B', [0.6], [(0, 1)])
    """
    matrix = masked(probs, allowed)
    best = matrix.argmax(axis=1)
    text: list[str] = []
    confidences: list[float] = []
    spans: list[Span] = []
    previous = 0
    for step, index in enumerate(best.tolist()):
        if index != 0 and index != previous:
            text.append(charset[index])
            confidences.append(round(float(matrix[step, index]), 4))
            spans.append((step, step))
        elif index != 0:
            confidences[-1] = max(confidences[-1], round(float(matrix[step, index]), 4))
            spans[-1] = (spans[-1][0], step)
        previous = index
    return "".join(text), confidences, spans


def ctc_decode(probs: npt.ArrayLike, charset: Sequence[str],
               allowed: npt.NDArray[np.bool_] | None = None) -> tuple[str, list[float]]:
    """:func:`ctc_spans` without the spans: the text and per-character confidences.

    >>> ctc_decode([[0.1, 0.6, 0.3], [0.1, 0.3, 0.6]], ["", "A", "B"],
    ...            np.array([True, False, True]))
    ('B', [0.6])
    """
    text, confidences, _ = ctc_spans(probs, charset, allowed)
    return text, confidences


def second_choices(probs: npt.ArrayLike, charset: Sequence[str],
                   allowed: npt.NDArray[np.bool_] | None, ratio: float = 0.1) -> list[str]:
    """For each character :func:`ctc_decode` keeps, the runner-up allowed class at that step
    when its probability is at least ``ratio`` x the winner's, else "" (``allowed``
    None: ``probs`` is already :func:`masked`)."""
    matrix = masked(probs, allowed)
    best = matrix.argmax(axis=1)
    out: list[str] = []
    previous = 0
    for step, index in enumerate(best.tolist()):
        if index != 0 and index != previous:
            row = matrix[step].copy()
            top = row[index]
            row[index] = 0.0
            row[0] = 0.0
            runner = int(row.argmax())
            out.append(charset[runner] if row[runner] >= ratio * top else "")
        previous = index
    return out


def stray_ends(spans: Sequence[Span], gap_factor: float, max_group: int = MAX_GROUP,
               ) -> tuple[int, int]:
    """How many characters to drop at the start and at the end of a read (0 to ``max_group``
    each): an end group that stands apart from the rest of the read.

    The gap between two characters is the distance between their spans' centres. An end
    group of 1..``max_group`` characters is stray when the gap that separates it from the
    rest is more than ``gap_factor`` x the read's median gap (the plate's characters are
    evenly spaced; an emblem, a bolt or the frame's edge sits apart); of the groups that
    qualify at one end, the one cut off by the widest gap. ``gap_factor`` 0: off. A trim
    keeps at least :data:`MIN_KEPT` characters; when both ends qualify but only one may go,
    the one cut off by the wider gap goes.

    >>> stray_ends([(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (14, 14)], gap_factor=2.0)
    (0, 1)
    >>> stray_ends([(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (14, 14)], gap_factor=0.0)
    (0, 0)
    >>> stray_ends([(0, 0), (2, 2), (4, 4), (6, 6), (8, 8), (9, 9), (15, 15), (17, 17)], 2.75)
    (0, 2)
    """
    count = len(spans)
    if gap_factor <= 0 or count <= MIN_KEPT:
        return 0, 0
    centres = [(first + last) / 2.0 for first, last in spans]
    gaps = [b - a for a, b in itertools.pairwise(centres)]
    limit = gap_factor * statistics.median(gaps)
    groups = range(1, min(max_group, count - MIN_KEPT) + 1)
    head = max(((gaps[k - 1], k) for k in groups if gaps[k - 1] > limit), default=(0.0, 0))
    tail = max(((gaps[-k], k) for k in groups if gaps[-k] > limit), default=(0.0, 0))
    if count - head[1] - tail[1] < MIN_KEPT:
        return (head[1], 0) if head[0] >= tail[0] else (0, tail[1])
    return head[1], tail[1]


def trim_strays(text: str, confidences: Sequence[float], alternatives: Sequence[str],
                spans: Sequence[Span], gap_factor: float,
                ) -> tuple[str, list[float], list[str]]:
    """The read less its stray end characters (:func:`stray_ends`).

    >>> trim_strays("1ABC123", [0.6] + [0.9] * 6, [""] * 7,
    ...             [(0, 0), (9, 9), (12, 12), (15, 15), (18, 18), (21, 21), (24, 24)], 2.0)
    ('ABC123', [0.9, 0.9, 0.9, 0.9, 0.9, 0.9], ['', '', '', '', '', ''])
    """
    head, tail = stray_ends(spans, gap_factor)
    end = len(text) - tail
    alts = list(alternatives) if len(alternatives) == len(text) else [""] * len(text)
    return text[head:end], list(confidences[head:end]), alts[head:end]


def trimmed_reads(reads: Sequence[SpannedRead], gap_factor: float,
                  ) -> list[tuple[str, list[float], list[str]]] | None:
    """The reads of one box, each less its stray ends (:func:`trim_strays`); None when no
    read loses a character (nothing to offer beside the reads as they are).

    >>> trimmed_reads([("ABCDE", [0.9] * 5, [""] * 5, [(0, 0), (2, 2), (4, 4), (6, 6),
    ...                                                 (8, 8)])], 2.0) is None
    True
    """
    out = [trim_strays(text, confs, alts, spans, gap_factor)
           for text, confs, alts, spans in reads]
    if all(len(new[0]) == len(old[0]) for new, old in zip(out, reads, strict=True)):
        return None
    return out
