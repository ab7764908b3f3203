"""Zone geometry shared by the stages (zones, behaviours, anomaly, counting).

Zones are polygons in normalised image coordinates. An object is inside a zone when
its box's bottom centre (where a person stands) lies inside the polygon.

>>> point_in_polygon((0.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
True
>>> point_in_polygon((1.5, 0.5), [(0, 0), (1, 0), (1, 1), (0, 1)])
False
"""

from __future__ import annotations

from collections.abc import Sequence

from argus.topology import CameraZone
from schemas.detections import Detection

Point = tuple[float, float]


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
