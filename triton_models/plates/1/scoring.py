"""Plate-likeness of one read on a vehicle: what ranks a vehicle's text boxes.

Pure Python, no Triton imports; loaded by ``platelib.py`` next to it (by path, so the same
file serves Triton and the application). Nothing here knows a country's plate format: the
rules are about text on a vehicle (plates carry digits, sit low and near the middle of the
vehicle's width, and are a certain size against it), each weighted by a ``config.pbtxt``
parameter with an off value.

>>> plate_score("ABC123", [0.9] * 6, 3.0, 0.8) * vehicle_prior((0.4, 0.7, 0.6, 0.76), 0.8,
...                                                            centre_weight=0.2)
0.864
"""

from __future__ import annotations

from collections.abc import Sequence


def plate_score(text: str, confidences: Sequence[float], aspect: float, centre_y: float,
                lengths: tuple[int, int] = (4, 8), no_digit: float = 1.0,
                low_weight: float = 0.2) -> float:
    """How plate-like a read is, 0..1: the mean character confidence, halved for a length
    outside ``lengths``, for a patch aspect (width / height) outside 1.5..8, times
    ``no_digit`` when it has no digit (a state, dealer or make name), and times
    ``1 - low_weight + low_weight x centre_y``: lowered the higher the patch sits on the
    vehicle (``centre_y`` 0 top .. 1 bottom; ``low_weight`` 0: off).

    >>> plate_score("ABC123", [0.9] * 6, 3.0, 0.8)
    0.864
    >>> plate_score("AB", [0.9] * 2, 3.0, 0.8)
    0.432
    >>> plate_score("TEXAS", [0.9] * 5, 3.0, 0.8, no_digit=0.5)
    0.432
    >>> plate_score("ABC123", [0.9] * 6, 3.0, 0.5, low_weight=0.4)
    0.72
    """
    if not text:
        return 0.0
    score = sum(confidences) / len(confidences)
    if not lengths[0] <= len(text) <= lengths[1]:
        score *= 0.5
    if not 1.5 <= aspect <= 8.0:
        score *= 0.5
    if not any(char.isdigit() for char in text):
        score *= no_digit
    score *= 1.0 - low_weight + low_weight * min(max(centre_y, 0.0), 1.0)
    return round(score, 4)


def vehicle_prior(box: Sequence[float], crop_aspect: float, centre_weight: float = 0.0,
                  height_band: tuple[float, float] | None = None) -> float:
    """Where a text box sits on the vehicle, as a factor 0..1 of its plate-likeness.

    ``box``: x1, y1, x2, y2 normalised to the vehicle crop; ``crop_aspect``: the crop's
    height / width. ``1 - centre_weight x (2 |centre_x - 0.5|)²`` (a plate is mounted near
    the middle of the vehicle's width: a box at the crop's side edge loses ``centre_weight``,
    one a quarter in from it a quarter of that; stickers, badges and a neighbour's plate sit
    off to the side), halved when the box's height relative to the vehicle's **width** is
    outside ``height_band`` (None: off). Only for a vehicle box, not for a whole photo or a
    plate crop (there the image is not a vehicle).

    >>> vehicle_prior((0.4, 0.7, 0.6, 0.76), 0.8, centre_weight=0.2)
    1.0
    >>> vehicle_prior((0.85, 0.9, 0.95, 0.95), 0.8, centre_weight=0.2)
    0.872
    >>> vehicle_prior((0.4, 0.7, 0.6, 0.72), 0.8, height_band=(0.02, 0.15))  # 0.016 tall
    0.5
    """
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    off = min(1.0, 2.0 * abs((x1 + x2) / 2.0 - 0.5))
    factor = 1.0 - centre_weight * off * off
    if height_band is not None:
        height = (y2 - y1) * crop_aspect
        if not height_band[0] <= height <= height_band[1]:
            factor *= 0.5
    return round(max(0.0, factor), 4)


def parse_band(text: str) -> tuple[float, float] | None:
    """``height_band``: "LOW,HIGH" (a box's height relative to the vehicle's width), or
    "" / "0": off.

    >>> parse_band("0.02, 0.15"), parse_band(""), parse_band("0")
    ((0.02, 0.15), None, None)
    """
    parts = [float(part) for part in text.split(",") if part.strip()]
    if not parts or parts == [0.0]:
        return None
    if len(parts) != 2 or not 0.0 <= parts[0] < parts[1]:
        raise ValueError(f"height_band is LOW,HIGH with 0 <= LOW < HIGH, got {text!r}")
    return parts[0], parts[1]
