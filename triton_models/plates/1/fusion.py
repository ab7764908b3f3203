"""Per-character fusion of several reads of one text box (the plate reader's test-time
variants: the same box cut a little wider, read again).

Pure Python, no Triton imports; loaded by ``platelib.py`` next to it (by path, so the same
file serves Triton and the application).

>>> fuse_reads([("AB123", [0.9, 0.4, 0.9, 0.9, 0.9], ["", "8", "", "", ""]),
...             ("A8123", [0.9, 0.7, 0.9, 0.9, 0.9], ["", "B", "", "", ""])])
('A8123', [0.9, 0.35, 0.9, 0.9, 0.9], ['', 'B', '', '', ''])
"""

from __future__ import annotations

from collections.abc import Sequence

RawRead = tuple[str, Sequence[float], Sequence[str]]
"""Text, per-character confidences and per-character runner-ups ("" for none)."""


def fuse_reads(reads: Sequence[RawRead]) -> tuple[str, list[float], list[str]]:
    """One read from several reads of the same box.

    Empty reads are ignored (none left: ``("", [], [])``); one read is returned as it is.
    The length is the one with the most confidence mass (the sum of each read's mean
    confidence; a tie goes to the longer). Among the reads of that length, each position
    goes to the character with the most summed confidence (a tie to the earlier read's);
    its confidence is that sum divided by the number of those reads, so a character only
    some variants agree on comes out less sure than any of them read it. The runner-up is
    the best character that lost there, else the first runner-up an agreeing read gave.

    >>> fuse_reads([("ABC12", [0.8] * 5, [""] * 5), ("BC12", [0.9] * 4, [""] * 4)])
    ('BC12', [0.9, 0.9, 0.9, 0.9], ['', '', '', ''])
    >>> fuse_reads([("", [], []), ("XY1", [0.5, 0.6, 0.7], ["", "V", ""])])
    ('XY1', [0.5, 0.6, 0.7], ['', 'V', ''])
    """
    usable = [(text, list(confs), list(alts)) for text, confs, alts in reads
              if text and len(confs) == len(text)]
    if not usable:
        return "", [], []
    if len(usable) == 1:
        text, confs, alts = usable[0]
        return text, confs, alts if len(alts) == len(text) else [""] * len(text)
    mass: dict[int, float] = {}
    for text, confs, _ in usable:
        mass[len(text)] = mass.get(len(text), 0.0) + sum(confs) / len(confs)
    length = max(mass, key=lambda n: (mass[n], n))
    same = [read for read in usable if len(read[0]) == length]
    chars: list[str] = []
    confidences: list[float] = []
    runners: list[str] = []
    for position in range(length):
        summed: dict[str, float] = {}
        for text, confs, _ in same:
            summed[text[position]] = summed.get(text[position], 0.0) + confs[position]
        winner = max(summed, key=lambda ch: summed[ch])  # the first read's on a tie
        chars.append(winner)
        confidences.append(round(summed[winner] / len(same), 4))
        losers = {ch: value for ch, value in summed.items() if ch != winner}
        if losers:
            runners.append(max(losers, key=lambda ch: losers[ch]))
            continue
        agreeing = [alts[position] for text, _, alts in same
                    if len(alts) == length and alts[position]]
        runners.append(agreeing[0] if agreeing else "")
    return "".join(chars), confidences, runners
