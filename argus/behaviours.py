"""Configuration of the rule-based behaviours, as they appear in the topology YAML.

Lines (tripwires) belong to a camera; the other behaviours to a camera zone::

    cameras:
      - id: cam-1
        lines:
          - id: door
            points: [[0.5, 0.2], [0.5, 0.9]]   # normalised image coordinates
            site_zone: lobby
        zones:
          - id: floor
            polygon: [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]
            behaviours:
              loitering: {dwell_s: 60, schedule: {hours: [{from: "22:00", to: "06:00"}]}}
              running: {speed: 1.8, frames: 5}

Every behaviour may carry a ``schedule`` (site-local time: ``hours`` and/or ``site:
open|closed`` by the site's opening hours; the ``Schedule`` of ``argus/schedule.py``, as
rules have) and ``enabled: false``. Speeds and distances are in *box heights* (of the
object itself), so one threshold works near and far from the camera. The models are
frozen and strict (unknown keys are errors); the topology loader reports errors with file,
line and field. docs/behaviours.md has every parameter.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

from argus.classes import BAG_CLASSES, PERSON_CLASSES, VEHICLE_CLASSES
from argus.schedule import Schedule

Point = tuple[float, float]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _normalised(point: Point) -> Point:
    x, y = point
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"point ({x}, {y}) is outside 0..1 (use normalised coords)")
    return point


class _Behaviour(_Frozen):
    enabled: bool = True
    schedule: Schedule | None = None
    classes: list[str] = Field(default_factory=lambda: list(PERSON_CLASSES), min_length=1)


class Line(_Behaviour):
    """A tripwire: a segment from ``points[0]`` (end *a*) to ``points[1]``. Side A is on
    the left of a walker going from the first point to the second as seen on screen (for a
    line drawn left to right, A is above it), side B on the right. A track's foot point
    (box bottom centre) crossing from A to B is ``a_to_b``."""

    id: str = Field(min_length=1, max_length=64)
    points: tuple[Point, Point]
    site_zone: str | None = None
    margin: float = Field(
        default=0.01, ge=0.0, le=0.2,
        description="distance (normalised) from the line a foot point must reach to count "
                    "as being on a side: jitter on the line is not a crossing")

    @field_validator("points")
    @classmethod
    def _valid(cls, points: tuple[Point, Point]) -> tuple[Point, Point]:
        a, b = (_normalised(p) for p in points)
        if math.dist(a, b) < 0.01:
            raise ValueError("the line's two points must be at least 0.01 apart")
        return a, b


class Loitering(_Behaviour):
    """A track stays in the zone ``dwell_s`` seconds. Presence tolerates gaps: a track not
    seen in the zone (lost, occluded, stepping out) keeps its dwell for ``grace_s``; a new
    track id appearing within ``handover`` box heights of a track that vanished less than
    ``grace_s`` ago continues that track's dwell (an id switch is not a new visit)."""

    dwell_s: float = Field(gt=0)
    grace_s: float = Field(default=5.0, ge=0)
    handover: float = Field(default=1.0, ge=0, description="box heights; 0 turns it off")


class Running(_Behaviour):
    """Speed above ``speed`` box heights per second for ``frames`` consecutive frames
    (walking is ~0.6-1.0 box heights/s, running 2-4)."""

    speed: float = Field(default=1.8, gt=0)
    frames: int = Field(default=5, ge=1)
    min_height: float = Field(default=0.03, ge=0, le=1,
                              description="ignore boxes smaller than this (normalised height)")


class Crowd(_Behaviour):
    """``count`` people or more in the zone (or, with ``radius``, in one group whose
    members stand within ``radius`` box heights of a neighbour) for ``hold_s``. With
    ``within_s``: only a gathering, i.e. the count rose by at least ``rise`` (default half
    of ``count``) within ``within_s`` seconds; a place that is always busy does not fire."""

    count: int = Field(ge=2)
    hold_s: float = Field(default=1.0, ge=0)
    radius: float | None = Field(default=None, gt=0)
    within_s: float | None = Field(default=None, gt=0)
    rise: int | None = Field(default=None, ge=1)

    def needed_rise(self) -> int:
        """The rise a gathering needs (``rise``, else half of ``count`` rounded up)."""
        return self.rise if self.rise is not None else math.ceil(self.count / 2)


class WrongWay(_Behaviour):
    """Movement against ``direction`` (a vector in normalised image coordinates, e.g.
    ``[1, 0]`` = left to right on screen): the velocity is more than ``max_angle_deg``
    away from it, faster than ``min_speed`` box heights/s, for ``frames`` frames."""

    direction: tuple[float, float]
    max_angle_deg: float = Field(default=120.0, gt=90, le=180)
    min_speed: float = Field(default=0.3, gt=0)
    frames: int = Field(default=5, ge=1)

    @field_validator("direction")
    @classmethod
    def _non_zero(cls, value: tuple[float, float]) -> tuple[float, float]:
        if math.hypot(*value) < 1e-9:
            raise ValueError("direction must be a non-zero vector, e.g. [1, 0]")
        return value


class AbandonedObject(_Behaviour):
    """A bag that stays still for ``still_s`` seconds after its owner left. The owner is
    the nearest person within ``owner_radius`` (person box heights) when the bag is first
    seen; they have left when they are gone or further than ``leave_radius``. A bag seen
    with no one near is unattended from the start. Still: the bag's centre stays within
    ``tolerance`` of its own box height from where it settled."""

    classes: list[str] = Field(default_factory=lambda: list(BAG_CLASSES), min_length=1)
    still_s: float = Field(default=30.0, gt=0)
    owner_radius: float = Field(default=1.5, gt=0)
    leave_radius: float = Field(default=3.0, gt=0)
    tolerance: float = Field(default=0.5, gt=0)
    grace_s: float = Field(default=5.0, ge=0)


class VehicleStopped(_Behaviour):
    """A vehicle whose centre stays within ``tolerance`` of its box height from where it
    stopped, inside the zone, for ``stopped_s`` seconds (a no-parking zone)."""

    classes: list[str] = Field(default_factory=lambda: list(VEHICLE_CLASSES), min_length=1)
    stopped_s: float = Field(default=60.0, gt=0)
    tolerance: float = Field(default=0.3, gt=0)
    grace_s: float = Field(default=5.0, ge=0)


class ZoneBehaviours(_Frozen):
    """The behaviours watched in one camera zone (each at most once)."""

    loitering: Loitering | None = None
    running: Running | None = None
    crowd: Crowd | None = None
    wrong_way: WrongWay | None = None
    abandoned_object: AbandonedObject | None = None
    vehicle_stopped: VehicleStopped | None = None


def check_lines(lines: list[Line], zone_ids: list[str]) -> None:
    """Line ids are unique within a camera and distinct from its zone ids (an event's
    ``zone_id`` names either)."""
    seen = set(zone_ids)
    for line in lines:
        if line.id in seen:
            raise ValueError(f"line id {line.id!r} repeats a zone or line id of the camera")
        seen.add(line.id)


class FallConfig(_Frozen):
    """Person-down detection on a camera (``fall:`` on the camera;
    pipelines/stages/behaviour/fall.py): when a box history is a fall, and how it is
    confirmed with the pose model."""

    enabled: bool = True
    classes: list[str] = Field(default_factory=lambda: ["person"])
    standing_aspect: float = Field(default=0.8, gt=0, description="w/h below: standing")
    lying_aspect: float = Field(default=1.0, gt=0, description="w/h above: lying")
    drop_ratio: float = Field(default=0.4, gt=0, le=1,
                              description="box top drop, as a fraction of the standing height")
    window_s: float = Field(default=1.5, gt=0, description="standing → down within this")
    min_box_height: float = Field(default=0.05, ge=0, le=1,
                                  description="normalised; smaller standing boxes are ignored")
    persistence_frames: int = Field(default=3, ge=1,
                                    description="down (or unmatched) frames before confirming")
    confirm_with_pose: bool = True
    min_confidence: float = Field(default=0.55, ge=0, le=1)
    pose_min_score: float = Field(default=0.25, ge=0, le=1,
                                  description="keypoints below this score are not visible")
    max_pose_checks: int = Field(default=4, ge=1)
    pose_interval_s: float = Field(default=0.2, ge=0,
                                   description="at least this between pose checks of a track")
    confirm_timeout_s: float = Field(default=3.0, gt=0)
    emit_without_frame: bool = Field(
        default=False, description="no cached frame: emit on the geometry alone")
    rearm_frames: int = Field(default=5, ge=1, description="standing frames to re-arm")
    forget_s: float = Field(default=10.0, gt=0, description="forget tracks unseen this long")
