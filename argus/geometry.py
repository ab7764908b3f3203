"""Zone and line geometry shared by the stages (zones, behaviours, anomaly, counting).

Zones are polygons in normalised image coordinates. An object is inside a zone when
its box's bottom centre (where a person stands) lies inside the polygon. Lines
(tripwires) are segments: :func:`side_of` and :func:`crosses_segment` decide a crossing
and its direction (side A is left of a walker going from the first point to the second
as seen on screen, side B right).

>>> point_in_polygon((0.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
True
>>> point_in_polygon((1.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from argus.topology import CameraZone
from schemas.detections import Detection

Point = tuple[float, float]
Segment = tuple[Point, Point]


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd ray casting; points on the boundary count as inside."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        # on the edge (collinear and within the segment's bounding box)
        cross = (x - x1) * (y2 - y1) - (y - y1) * (x2 - x1)
        if abs(cross) < 1e-12 and min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(
                y1, y2):
            return True
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


def objects_in_zone(detections: Sequence[Detection], zone: CameraZone) -> list[Detection]:
    """The detections of the zone's classes, above its score, standing inside it."""
    return [
        d for d in detections
        if d.class_name in zone.classes and d.score >= zone.min_score
        and point_in_polygon(d.box.bottom_centre, zone.polygon)
    ]


def signed_distance(p: Point, line: Segment) -> float:
    """Distance of ``p`` from the infinite line, negative on side A (normalised units)."""
    (ax, ay), (bx, by) = line
    dx, dy = bx - ax, by - ay
    return (dx * (p[1] - ay) - dy * (p[0] - ax)) / math.hypot(dx, dy)


def side_of(p: Point, line: Segment, margin: float) -> str | None:
    """``"a"``, ``"b"``, or None within ``margin`` of the line.

    >>> side_of((0.5, 0.4), ((0.0, 0.5), (1.0, 0.5)), 0.01), side_of((0.5, 0.505),
    ...     ((0.0, 0.5), (1.0, 0.5)), 0.01)
    ('a', None)
    """
    d = signed_distance(p, line)
    if abs(d) < margin:
        return None
    return "a" if d < 0 else "b"


def crosses_segment(p: Point, q: Point, line: Segment, slack: float = 0.0) -> bool:
    """Does the move ``p → q`` (whose ends lie on opposite sides of the infinite line) pass
    through the segment itself, extended by ``slack`` (normalised) at both ends?

    >>> crosses_segment((0.5, 0.4), (0.5, 0.6), ((0.0, 0.5), (1.0, 0.5)))
    True
    >>> crosses_segment((1.2, 0.4), (1.2, 0.6), ((0.0, 0.5), (1.0, 0.5)))
    False
    """
    (ax, ay), (bx, by) = line
    dp, dq = signed_distance(p, line), signed_distance(q, line)
    if dp == dq:
        return False
    t = dp / (dp - dq)
    x, y = p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])
    length2 = (bx - ax) ** 2 + (by - ay) ** 2
    u = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length2
    pad = slack / math.sqrt(length2)
    return -pad <= u <= 1.0 + pad


def distance_to_boundary(point: Point, polygon: Sequence[Point]) -> float:
    """The distance from ``point`` to the nearest edge of ``polygon`` (normalised units).

    >>> round(distance_to_boundary((0.5, 0.4), [(0, 0), (1, 0), (1, 1), (0, 1)]), 3)
    0.4
    """
    best = math.inf
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        dx, dy = x2 - x1, y2 - y1
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((point[0] - x1) * dx
                                                        + (point[1] - y1) * dy) / length2))
        best = min(best, math.hypot(point[0] - (x1 + t * dx), point[1] - (y1 + t * dy)))
    return best
