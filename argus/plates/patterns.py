"""Plate search patterns: wildcards, fuzzy matching, redaction (pure logic, no I/O).

A pattern is a plate with optional wildcards: ``*`` any run of characters (also none), ``?``
exactly one. Case and separators (space, ``-``, ``.``) are ignored, as in
:func:`argus.plates.text.clean`. A pattern needs at least :data:`MIN_LITERALS` plate
characters, so that no search lists every plate seen.

A *fuzzy* search also accepts plates one edit (substitution, insertion, deletion) from a
string the pattern matches, and plates that differ from one only by OCR confusions (0/O/D/Q,
1/I/L, 8/B, 5/S, 2/Z, 6/G, any number of them: the same :func:`confusable_key`).

>>> p = PlatePattern.parse("ab12*")
>>> p.text, p.literal, p.match("AB12CDE"), p.match("A812CDE"), p.match("A812CDE", fuzzy=True)
('AB12*', False, 0, None, 1)
>>> p.shape
'AA99*'
"""

from __future__ import annotations

from dataclasses import dataclass

from argus.plates.text import confusable_key

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WILDCARDS = "*?"
SEPARATORS = " -."
MIN_LITERALS = 2
MAX_LENGTH = 16
MAX_PLATE = 12


class PatternError(ValueError):
    """A search pattern that cannot be used (the message says why)."""


@dataclass(frozen=True)
class PlatePattern:
    """A normalised search pattern (``A-Z0-9``, ``?``, ``*``; no ``**``)."""

    text: str

    @classmethod
    def parse(cls, raw: str) -> PlatePattern:
        """Normalise ``raw``; :class:`PatternError` naming what is wrong."""
        text = "".join(ch for ch in raw.upper() if ch not in SEPARATORS)
        bad = sorted({ch for ch in text if ch not in ALPHABET and ch not in WILDCARDS})
        if bad:
            raise PatternError("a plate pattern has only A-Z, 0-9 and the wildcards * "
                               f"(any run) and ? (one character); not {''.join(bad)!r}")
        while "**" in text:
            text = text.replace("**", "*")
        literals = sum(ch in ALPHABET for ch in text)
        if literals < MIN_LITERALS:
            raise PatternError(f"a plate pattern needs at least {MIN_LITERALS} plate "
                               f"characters besides wildcards, got {literals}")
        if len(text) > MAX_LENGTH:
            raise PatternError(f"a plate pattern has at most {MAX_LENGTH} characters, "
                               f"got {len(text)}")
        if "*" not in text and len(text) > MAX_PLATE:
            raise PatternError(f"a plate has at most {MAX_PLATE} characters, got {len(text)}")
        return cls(text)

    @property
    def literal(self) -> bool:
        """No wildcards: one exact plate."""
        return not any(ch in WILDCARDS for ch in self.text)

    @property
    def shape(self) -> str:
        """The pattern with every letter shown as ``A`` and every digit as ``9``: what an
        audit entry or a log line may say about it.

        >>> PlatePattern.parse("KX70 ?B*").shape
        'AA99?A*'
        """
        return "".join("9" if ch.isdigit() else "A" if ch.isalpha() else ch
                       for ch in self.text)

    def distance(self, plate: str, confusions_free: bool = False) -> int:
        """Fewest edits turning ``plate`` into a string the pattern matches (``?`` and ``*``
        cost nothing); with ``confusions_free``, substituting a confusable character costs
        nothing either."""
        pattern = self.text
        m = len(plate)
        previous = list(range(m + 1))  # the empty pattern against plate[:j]
        for token in pattern:
            current = [previous[0] + (0 if token == "*" else 1)]
            for j in range(1, m + 1):
                if token == "*":
                    current.append(min(previous[j], current[j - 1]))
                    continue
                char = plate[j - 1]
                same = token in ("?", char) or (
                    confusions_free and confusable_key(token) == confusable_key(char))
                current.append(min(previous[j - 1] + (0 if same else 1),
                                   previous[j] + 1, current[j - 1] + 1))
            previous = current
        return previous[m]

    def match(self, plate: str, fuzzy: bool = False) -> int | None:
        """The edit distance of a matching plate (0: an exact match of the pattern), or
        None when it does not match."""
        plain = self.distance(plate)
        if plain == 0 or (fuzzy and plain <= 1):
            return plain
        if fuzzy and self.distance(plate, confusions_free=True) == 0:
            return plain
        return None


def neighbours(plate: str) -> set[str]:
    """Every plate (``A-Z0-9``, 1-12 characters) one substitution, insertion or deletion
    from ``plate``.

    >>> sorted(n for n in neighbours("AB") if n.startswith("A"))[:4]
    ['A', 'A0', 'A0B', 'A1']
    >>> len(neighbours("AB12CDE"))
    533
    """
    out: set[str] = set()
    for i in range(len(plate) + 1):
        for ch in ALPHABET:
            out.add(plate[:i] + ch + plate[i:])
    for i in range(len(plate)):
        out.add(plate[:i] + plate[i + 1:])
        for ch in ALPHABET:
            out.add(plate[:i] + ch + plate[i + 1:])
    out.discard(plate)
    return {n for n in out if 1 <= len(n) <= MAX_PLATE}
