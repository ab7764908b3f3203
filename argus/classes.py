"""The groups of detector (COCO) class names that stages, rules and tools share.

One definition each: behaviours' defaults (loitering, abandoned objects, parking), the
plate stage and the plate evaluation all name their classes from here.
"""

from __future__ import annotations

PERSON_CLASSES: tuple[str, ...] = ("person",)
BAG_CLASSES: tuple[str, ...] = ("backpack", "handbag", "suitcase")
VEHICLE_CLASSES: tuple[str, ...] = ("car", "motorcycle", "bus", "truck")
"""Road vehicles: parked-vehicle behaviours watch them and the plate stage reads their plates."""
