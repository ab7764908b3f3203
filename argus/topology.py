"""The topology: sites, cameras (with zones) and sensors, from one YAML file.

Validated with pydantic; an error names the file, the line and the field::

    config/topology.yaml:14: cameras[0].fps: Input should be greater than 0

Strings may use ``${VAR}`` / ``${VAR:-default}``; ``${ARGUS_SHARED}`` defaults to the
shared data folder from the settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from argus.behaviours import FallConfig, Line, ZoneBehaviours, check_lines
from argus.plates.text import PlateFormat
from argus.redact import redact_url
from argus.schedule import Clock, Weekday, every_day
from argus.sources import parse_source
from schemas.sensors import SensorType


class TopologyError(ValueError):
    """A topology file that cannot be used; the message names file, line and field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SiteZone(_Frozen):
    id: str = Field(min_length=1)
    name: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class OpeningHours(_Frozen):
    """Open from ``open`` to ``close`` (site local time) on ``days``; a ``close`` at or
    before ``open`` runs past midnight. The window of ``argus/schedule.py`` (a
    :class:`~argus.schedule.Window`: ``start``/``end`` read ``open``/``close``), under the
    keys sites have always used."""

    days: list[Weekday] = Field(default_factory=every_day, min_length=1)
    open: Clock
    close: Clock

    @property
    def start(self) -> str:
        return self.open

    @property
    def end(self) -> str:
        return self.close


class SitePlateFormat(PlateFormat):
    """A site's plate format, named (``events.plate`` says which one a plate matched)."""

    id: str = Field(default="any", pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")


class SitePlates(_Frozen):
    """How a site's plates are read and listed (docs/plates.md)."""

    formats: list[SitePlateFormat] = Field(
        default_factory=lambda: [SitePlateFormat()], min_length=1,
        description="Plate formats tried in order (the default accepts any 2-10 A-Z0-9)")
    allow_lists: list[str] = Field(
        default_factory=list,
        description="Allow lists that apply here: a plate on none of them at a gate is "
                    "unauthorised (rule unauthorised_vehicle)")


class Site(_Frozen):
    id: str = Field(min_length=1)
    name: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timezone: str = "UTC"
    opening_hours: list[OpeningHours] | None = Field(
        default=None, description="None = always open (after-hours rules never fire)")
    zones: list[SiteZone] = Field(default_factory=list)
    plates: SitePlates = Field(default_factory=SitePlates,
                               description="Plate formats and allow lists of the site")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name, e.g. Europe/London)") from None
        return value


Point = tuple[float, float]


class CameraZone(_Frozen):
    """A polygon in normalised image coordinates (0..1), mapped to a site zone."""

    id: str = Field(min_length=1)
    polygon: list[Point] = Field(min_length=3)
    site_zone: str | None = None
    classes: list[str] = Field(default_factory=lambda: ["person"])
    min_score: float = Field(default=0.4, ge=0.0, le=1.0)
    intrusion: bool = Field(
        default=True, description="Emit zone_intrusion events (false: a zone only for "
                                  "behaviours, e.g. loitering in a public square)")
    behaviours: ZoneBehaviours | None = Field(
        default=None, description="Track behaviours watched here (argus/behaviours.py)")

    @field_validator("polygon")
    @classmethod
    def _normalised(cls, polygon: list[Point]) -> list[Point]:
        for x, y in polygon:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"polygon point ({x}, {y}) is outside 0..1 (use normalised coords)")
        return polygon


class CameraPlates(_Frozen):
    """Read licence plates of the vehicles this camera sees (docs/plates.md)."""

    mode: Literal["video", "stills"] = Field(
        default="video",
        description="video: vote over a few frames of each confirmed vehicle track; stills: "
                    "every frame is a different photo (an ANPR camera sending stills), each "
                    "vehicle read on its own")
    min_width_px: int = Field(default=60, ge=8, description="Narrower vehicles are not read")
    whole_photo: bool | None = Field(
        default=None,
        description="stills only: a photo with no vehicle box to read (no car, motorcycle, "
                    "bus or truck seen in it at least min_width_px wide; a close-up of the "
                    "plate or the rear of one car) is read whole, as one region. None: on for "
                    "stills, off for video")

    @model_validator(mode="after")
    def _whole_photo_on_stills(self) -> CameraPlates:
        if self.whole_photo and self.mode != "stills":
            raise ValueError("whole_photo needs mode: stills (a video camera reads vehicle "
                             "tracks only)")
        return self

    @property
    def reads_whole_photo(self) -> bool:
        """Whether a photo with no vehicle to read is read whole (the default: on stills)."""
        return self.mode == "stills" if self.whole_photo is None else self.whole_photo


class CameraTracking(_Frozen):
    """This camera's tracker thresholds, over the worker's ``ARGUS_TRACK_*`` (e.g. a camera
    scored by the object anomaly method, whose model was trained with 0.3 / 0.1:
    docs/anomaly.md)."""

    default_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    new_track_margin: float | None = Field(default=None, ge=0.0)

    def overrides(self) -> dict[str, float]:
        """The thresholds set here (None: the worker's)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Camera(_Frozen):
    id: str = Field(min_length=1, max_length=128)
    site: str
    source: str = Field(
        min_length=1, description="File path, rtsp:// or http:// URL, or webcam index")
    fps: float = Field(default=5.0, gt=0, le=60)
    loop: bool = False
    realtime: bool = True
    clock: Literal["wall", "media"] = Field(
        default="wall",
        description="Capture times from the wall clock, or (files only) from the file's own "
                    "timeline: timed behaviours stay right in a fast replay (realtime: false)")
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    max_width: int | None = Field(default=None, gt=0, description="Downscale wider frames")
    decode_threads: int = Field(
        default=1, ge=0, le=16,
        description="FFmpeg decoding threads of this camera's video (0: FFmpeg's choice, one "
                    "per core); one per camera costs the least CPU with many cameras")
    zones: list[CameraZone] = Field(default_factory=list)
    lines: list[Line] = Field(default_factory=list, description="Tripwires (line crossing)")
    fall: FallConfig | None = Field(
        default=None,
        description="Person-down detection confirmed with pose (docs/behaviours-fall.md)")
    plates: CameraPlates | None = Field(
        default=None, description="Read licence plates on vehicle tracks (None: off)")
    tracking: CameraTracking | None = Field(
        default=None, description="Tracker thresholds of this camera (None: the worker's)")

    @model_validator(mode="after")
    def _line_ids(self) -> Camera:
        check_lines(self.lines, [z.id for z in self.zones])
        return self

    @model_validator(mode="after")
    def _media_clock_needs_a_file(self) -> Camera:
        if self.clock == "media" and parse_source(self.source).kind.live:
            raise ValueError("clock: media needs a video file source (a live camera has no "
                             "timeline of its own); use clock: wall")
        return self


class Sensor(_Frozen):
    id: str = Field(min_length=1, max_length=128)
    site: str
    zone: str
    type: SensorType
    name: str | None = None


class Topology(_Frozen):
    sites: list[Site] = Field(min_length=1)
    cameras: list[Camera] = Field(default_factory=list)
    sensors: list[Sensor] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Topology:
        sites = {s.id: s for s in self.sites}
        _unique("sites", [s.id for s in self.sites])
        _unique("cameras", [c.id for c in self.cameras])
        _unique("sensors", [s.id for s in self.sensors])
        for cam in self.cameras:
            if cam.site not in sites:
                raise ValueError(f"camera {cam.id!r}: unknown site {cam.site!r}")
            zone_ids = {z.id for z in sites[cam.site].zones}
            for zone in cam.zones:
                if zone.site_zone is not None and zone.site_zone not in zone_ids:
                    raise ValueError(
                        f"camera {cam.id!r} zone {zone.id!r}: unknown site zone {zone.site_zone!r}"
                    )
            for line in cam.lines:
                if line.site_zone is not None and line.site_zone not in zone_ids:
                    raise ValueError(
                        f"camera {cam.id!r} line {line.id!r}: unknown site zone {line.site_zone!r}")
        for sensor in self.sensors:
            if sensor.site not in sites:
                raise ValueError(f"sensor {sensor.id!r}: unknown site {sensor.site!r}")
            if sensor.zone not in {z.id for z in sites[sensor.site].zones}:
                raise ValueError(f"sensor {sensor.id!r}: unknown zone {sensor.zone!r}")
        return self

    def site(self, site_id: str) -> Site:
        return next(s for s in self.sites if s.id == site_id)

    def camera(self, camera_id: str) -> Camera | None:
        return next((c for c in self.cameras if c.id == camera_id), None)

    def sensor(self, sensor_id: str) -> Sensor | None:
        return next((s for s in self.sensors if s.id == sensor_id), None)


def _unique(what: str, ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what}: duplicate id {item!r}")
        seen.add(item)


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand(text: str, defaults: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from the environment.

    >>> expand("${NOPE_UNSET:-a}/b")
    'a/b'
    """
    env = {**(defaults or {}), **os.environ}

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise TopologyError(f"environment variable {name} is not set")

    return _VAR.sub(sub, text)


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _field(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_topology(text: str, source: str = "<string>", defaults: dict[str, str] | None = None
                   ) -> Topology:
    """Parse and validate topology YAML; raises ``TopologyError`` naming file, line and field."""
    try:
        expanded = expand(text, defaults)
        node = yaml.compose(expanded)
        data: Any = yaml.safe_load(expanded)
    except yaml.YAMLError as exc:
        # the message quotes the offending line, which may hold a camera URL's password
        raise TopologyError(redact_url(f"{source}: invalid YAML: {exc}")) from None
    if not isinstance(data, dict):
        raise TopologyError(f"{source}:1: the topology must be a mapping with 'sites'")
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            line = _line_of(node, loc)
            lines.append(f"{source}:{line or 1}: {_field(loc)}: {err['msg']}")
        raise TopologyError("\n".join(lines)) from None


def load_topology(path: Path, shared: Path | None = None) -> Topology:
    """Read a topology file; ``${ARGUS_SHARED}`` defaults to ``shared``."""
    if not path.exists():
        raise TopologyError(f"{path}: topology file not found (set ARGUS_TOPOLOGY)")
    defaults = {"ARGUS_SHARED": str(shared)} if shared is not None else None
    return parse_topology(path.read_text(), str(path), defaults)
