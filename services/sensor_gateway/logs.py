"""Sensor log formats for replay: each reader yields :class:`LogEvent` ordered by offset.

* the project's CSV (:func:`iter_csv`)::

      offset_s,sensor_id,state,value
      8,pir-lobby-1,active,
      11,pir-lobby-1,inactive,

  with a header, ``#`` comment lines and blank lines allowed, ``state``/``value`` optional;
* the van Kasteren house A sensor log (:func:`iter_kasteren`) and the MIT PlaceLab
  activity logs (:func:`iter_placelab`): each firing of a reed switch or contact is
  replayed as ``active`` at its start and ``inactive`` at its end;
* the UCI occupancy logs (:func:`iter_uci_occupancy`): one row a minute of temperature,
  humidity, light and CO2, replayed as one value reading per channel.

Readers name sensors after the log (``kasteren-24``, ``placelab-140``, ``uci-co2``) unless
a map gives topology ids; with a map, unmapped sensors are skipped unless
``keep_unmapped``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

K = TypeVar("K", int, str)


@dataclass(frozen=True)
class LogEvent:
    """One event of a sensor log: when (offset from the first event), which sensor, what."""

    offset_s: float
    sensor_id: str
    state: str | None = None
    value: float | None = None
    at: datetime | None = None
    """The original time of the event, where the log has one (not used when replaying)."""


def _sensor_name(key: K, prefix: str, sensor_map: Mapping[K, str] | None,
                 keep_unmapped: bool) -> str | None:
    """The replayed id of log sensor ``key``: mapped, ``<prefix>-<key>``, or None (skip)."""
    if sensor_map is not None and key in sensor_map:
        return sensor_map[key]
    if sensor_map is None or keep_unmapped:
        return f"{prefix}-{key}"
    return None


def _optional_float(text: str, what: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {text!r}")
    return number


def iter_csv(path: Path | str) -> Iterator[LogEvent]:
    """Read the project's CSV log (``offset_s,sensor_id,state,value``), ordered by offset.

    Raises ``ValueError`` naming the file and line for a missing header or a bad row.
    """
    path = Path(path)
    rows: list[tuple[int, list[str]]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            rows.append((lineno, next(csv.reader([line]))))
    if not rows:
        raise ValueError(f"{path}: empty log (expected a header offset_s,sensor_id,state,value)")
    header_line, header = rows[0]
    columns = [name.strip() for name in header]
    for required in ("offset_s", "sensor_id"):
        if required not in columns:
            raise ValueError(f"{path}:{header_line}: the header has no {required!r} column "
                             f"(expected offset_s,sensor_id,state,value)")
    events: list[LogEvent] = []
    for lineno, row in rows[1:]:
        cells = dict(zip(columns, (cell.strip() for cell in row), strict=False))
        try:
            offset = _optional_float(cells.get("offset_s", ""), "offset_s")
            if offset is None or offset < 0:
                raise ValueError(f"offset_s must be a number >= 0, got {cells.get('offset_s')!r}")
            sensor_id = cells.get("sensor_id", "")
            if not sensor_id:
                raise ValueError("sensor_id is empty")
            events.append(LogEvent(
                offset_s=offset,
                sensor_id=sensor_id,
                state=cells.get("state") or None,
                value=_optional_float(cells.get("value", ""), "value"),
            ))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
    yield from sorted(events, key=lambda e: e.offset_s)


_KASTEREN_ROW = re.compile(
    r"^\s*(\d{1,2}-[A-Za-z]{3}-\d{4} \d{1,2}:\d{2}:\d{2})\s*\t\s*"
    r"(\d{1,2}-[A-Za-z]{3}-\d{4} \d{1,2}:\d{2}:\d{2})\s*\t\s*(\d+)\s*\t\s*(\d+)\s*$"
)
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    start=1)}


def _kasteren_time(text: str) -> datetime:
    """``25-Feb-2008 09:33:41`` → datetime (locale-independent month names)."""
    day, month, rest = text.split("-", 2)
    year, clock = rest.split(" ")
    hour, minute, second = (int(x) for x in clock.split(":"))
    return datetime(int(year), _MONTHS[month.lower()], int(day), hour, minute, second)


def iter_kasteren(
    path: Path | str,
    sensor_map: Mapping[int, str] | None = None,
    keep_unmapped: bool = False,
) -> Iterator[LogEvent]:
    """Read a van Kasteren sensor log: each row yields ``active`` (start) and ``inactive`` (end).

    Events are ordered by time (a row's start before its end, earlier rows first at equal
    times); offsets are seconds from the first event. ``sensor_map`` maps the log's numeric
    ids to topology sensor ids: without a map every sensor is named ``kasteren-<id>``; with
    one, unmapped sensors are skipped unless ``keep_unmapped``. Header lines are skipped.
    """
    path = Path(path)
    firings: list[tuple[datetime, int, int, int]] = []  # (time, row, 0=start/1=end, id)
    with path.open(encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            match = _KASTEREN_ROW.match(line)
            if match is None:
                continue
            try:
                start, end = _kasteren_time(match.group(1)), _kasteren_time(match.group(2))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: bad time: {exc}") from None
            if end < start:
                raise ValueError(f"{path}:{lineno}: the end time is before the start time")
            sensor = int(match.group(3))
            firings.append((start, lineno, 0, sensor))
            firings.append((end, lineno, 1, sensor))
    yield from _firing_events(firings, "kasteren", sensor_map, keep_unmapped)


def _firing_events(
    firings: list[tuple[datetime, int, int, K]],
    prefix: str,
    sensor_map: Mapping[K, str] | None,
    keep_unmapped: bool,
) -> Iterator[LogEvent]:
    """``(time, order, 0=start/1=end, sensor)`` tuples → active/inactive events by time."""
    if not firings:
        return
    firings.sort()
    first = firings[0][0]
    for at, _, phase, sensor in firings:
        name = _sensor_name(sensor, prefix, sensor_map, keep_unmapped)
        if name is not None:
            yield LogEvent(
                offset_s=(at - first).total_seconds(),
                sensor_id=name,
                state="inactive" if phase else "active",
                at=at,
            )


# --- MIT PlaceLab (Munguia Tapia 2003) ---------------------------------------------------

PLACELAB_DATA = "activities_data.csv"
_PLACELAB_HEADER = re.compile(r"^[^,]+,(\d{1,2})/(\d{1,2})/(\d{4}),(\d{1,2}:\d{1,2}:\d{1,2}),")
_HALF_DAY = timedelta(hours=12)


def _clock(text: str) -> timedelta:
    """``21:5:3`` → 21 h 5 min 3 s (PlaceLab times are not zero-padded)."""
    hour, minute, second = (int(x) for x in text.strip().split(":"))
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
        raise ValueError(f"bad time of day {text!r}")
    return timedelta(hours=hour, minutes=minute, seconds=second)


def placelab_days(dates: set[tuple[int, int, int]]) -> dict[tuple[int, int, int], date]:
    """Map the log's ``(year, month, day)`` labels to consecutive calendar days.

    Subject 2's log has a day ``4/31/2003`` between 4/30 and 5/1 (the recorder's calendar
    gave April 31 days), so labels are taken as a sequence: each distinct label is at least
    one day after the previous one, real gaps are kept.
    """
    days: dict[tuple[int, int, int], date] = {}
    previous: tuple[date, date] | None = None  # (lenient date, assigned day)
    for year, month, day in sorted(dates):
        lenient = date(year, month, 1) + timedelta(days=day - 1)
        assigned = lenient if previous is None else previous[1] + timedelta(
            days=max(1, (lenient - previous[0]).days))
        days[(year, month, day)] = assigned
        previous = (lenient, assigned)
    return days


def _merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Union of overlapping or touching intervals, sorted."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def iter_placelab(
    path: Path | str,
    sensor_map: Mapping[int, str] | None = None,
    keep_unmapped: bool = False,
) -> Iterator[LogEvent]:
    """Read a PlaceLab ``activities_data.csv`` (or a subject folder holding one).

    The file is blocks of five lines per labelled activity: ``label,m/d/yyyy,start,end``,
    then the sensor ids, their objects, their activation and their deactivation times.
    A firing listed under two overlapping activities is replayed once, and overlapping
    firings of one sensor are merged, so each sensor alternates ``active``/``inactive``.
    A firing's day is its activity's, moved by a day where its time is more than 12 h from
    the activity's start (midnight); an end before its start is on the next day.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PLACELAB_DATA
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    blocks: list[tuple[int, tuple[int, int, int], timedelta, list[list[str]]]] = []
    lineno = 0
    while lineno < len(lines):
        match = _PLACELAB_HEADER.match(lines[lineno])
        if match is None:
            if lines[lineno].strip():
                raise ValueError(f"{path}:{lineno + 1}: expected an activity line "
                                 f"'label,m/d/yyyy,start,end', got {lines[lineno][:60]!r}")
            lineno += 1
            continue
        rows = [line.split(",") for line in lines[lineno + 1:lineno + 5]]
        if len(rows) < 4 or len({len(row) for row in rows}) != 1:
            raise ValueError(f"{path}:{lineno + 1}: an activity needs four lines of sensor "
                             f"ids, objects, activations and deactivations of equal length")
        month, day, year = (int(match.group(i)) for i in (1, 2, 3))
        try:
            blocks.append((lineno + 1, (year, month, day), _clock(match.group(4)), rows))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno + 1}: {exc}") from None
        lineno += 5
    days = placelab_days({label for _, label, _, _ in blocks})
    intervals: dict[int, set[tuple[datetime, datetime]]] = {}
    for header_line, label, activity_start, (ids, _, starts, ends) in blocks:
        midnight = datetime.combine(days[label], datetime.min.time())
        for column, (sensor, start_text, end_text) in enumerate(zip(ids, starts, ends,
                                                                    strict=True)):
            try:
                start, end = _clock(start_text), _clock(end_text)
                sensor_id = int(sensor)
            except ValueError as exc:
                raise ValueError(f"{path}:{header_line}: sensor column {column + 1}: "
                                 f"{exc}") from None
            if start - activity_start > _HALF_DAY:
                start -= timedelta(days=1)
            elif activity_start - start > _HALF_DAY:
                start += timedelta(days=1)
            while end < start:
                end += timedelta(days=1)
            intervals.setdefault(sensor_id, set()).add((midnight + start, midnight + end))
    firings: list[tuple[datetime, int, int, int]] = []
    for sensor_id, spans in intervals.items():
        for start_at, end_at in _merge(list(spans)):
            firings.append((start_at, 0, 0, sensor_id))
            firings.append((end_at, 0, 1, sensor_id))
    yield from _firing_events(firings, "placelab", sensor_map, keep_unmapped)


# --- UCI occupancy detection (Candanedo & Feldheim 2016) --------------------------------

UCI_CHANNELS: dict[str, str] = {
    "temperature": "temperature", "humidity": "humidity", "light": "light", "co2": "co2"}
"""Column (lower case) → channel name; ``HumidityRatio`` is derived and ``Occupancy`` is the
ground-truth label, so neither is replayed."""


def iter_uci_occupancy(
    path: Path | str,
    sensor_map: Mapping[str, str] | None = None,
    keep_unmapped: bool = False,
) -> Iterator[LogEvent]:
    """Read a UCI occupancy file (``datatraining.txt``, ``datatest.txt``, ``datatest2.txt``).

    Each row (``"date","Temperature","Humidity","Light","CO2",...``, one a minute) yields a
    value reading per channel (``uci-temperature`` in °C, ``uci-humidity`` in %RH,
    ``uci-light`` in lux, ``uci-co2`` in ppm; ``sensor_map`` maps channel names to
    topology ids). Rows with a leading row number (the original UCI files) are accepted.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty file (expected a UCI occupancy header)")
    header = [name.strip().lower() for name in rows[0]]
    if "date" not in header:
        raise ValueError(f"{path}:1: the header has no 'date' column")
    channels = [(header.index(column), channel) for column, channel in UCI_CHANNELS.items()
                if column in header]
    names = {channel: _sensor_name(channel, "uci", sensor_map, keep_unmapped)
             for _, channel in channels}
    first: datetime | None = None
    previous: datetime | None = None
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        cells = row[1:] if len(row) == len(header) + 1 else row
        try:
            if len(cells) != len(header):
                raise ValueError(f"expected {len(header)} columns, got {len(cells)}")
            at = datetime.strptime(cells[header.index("date")].strip(), "%Y-%m-%d %H:%M:%S")
            if previous is not None and at < previous:
                raise ValueError(f"time {at} is before the previous row's {previous}")
            first, previous = first or at, at
            for column, channel in channels:
                value = _optional_float(cells[column], channel)
                name = names[channel]
                if name is not None and value is not None:
                    yield LogEvent(offset_s=(at - first).total_seconds(), sensor_id=name,
                                   value=value, at=at)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None


# --- choosing a reader -------------------------------------------------------------------

FORMATS = ("csv", "kasteren", "placelab", "uci")


def detect_format(path: Path | str) -> str:
    """Guess a log's format: a PlaceLab folder or ``activities_data.csv``, a UCI file (its
    header names Temperature and CO2), another ``*.csv`` (the project's), else van Kasteren."""
    path = Path(path)
    if path.is_dir() or path.name == PLACELAB_DATA:
        return "placelab"
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline().lower()
    if "temperature" in first and "co2" in first:
        return "uci"
    return "csv" if path.suffix.lower() == ".csv" else "kasteren"


def read_log(path: Path | str, fmt: str | None = None,
             sensor_map: Mapping[str, str] | None = None,
             keep_unmapped: bool = False) -> list[LogEvent]:
    """Read a log in ``fmt`` (default: :func:`detect_format`). ``sensor_map`` maps the log's
    sensor names (numbers for kasteren and placelab, channels for uci) to topology ids;
    raises ``ValueError`` for a map the format cannot use."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "csv":
        if sensor_map:
            raise ValueError("csv logs name topology sensors already: --map does not apply")
        return list(iter_csv(path))
    if fmt == "uci":
        unknown = sorted(set(sensor_map or ()) - set(UCI_CHANNELS.values()))
        if unknown:
            raise ValueError(f"uci channels are {', '.join(UCI_CHANNELS.values())}; "
                             f"not {', '.join(unknown)}")
        return list(iter_uci_occupancy(path, sensor_map, keep_unmapped))
    numbers: dict[int, str] | None = None
    if sensor_map is not None:
        bad = [key for key in sensor_map if not key.isdigit()]
        if bad:
            raise ValueError(f"{fmt} sensor ids are numbers, not {', '.join(bad)}")
        numbers = {int(key): name for key, name in sensor_map.items()}
    reader = iter_kasteren if fmt == "kasteren" else iter_placelab
    return list(reader(path, numbers, keep_unmapped))
