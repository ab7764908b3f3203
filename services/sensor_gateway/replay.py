"""Replay sensor logs on a compressed clock into the gateway's publisher.

A log is a sequence of :class:`LogEvent` with an offset in seconds from the first event.
:func:`replay` publishes each at wall-clock ``t0 + offset / speed`` and stamps the reading
with that time, so downstream stages see a live sensor (speed 1 = real time, 3600 = an
hour of log per second). Two formats:

* the project's CSV (:func:`iter_csv`)::

      offset_s,sensor_id,state,value
      8,pir-lobby-1,active,
      11,pir-lobby-1,inactive,

  with a header, ``#`` comment lines and blank lines allowed, ``state``/``value`` optional;
* the van Kasteren house A sensor log (:func:`iter_kasteren`): each row is one firing
  (start and end time), replayed as ``active`` at the start and ``inactive`` at the end.
"""

from __future__ import annotations

import csv
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from argus.log import get_logger
from services.sensor_gateway.gateway import BatchRejected, SensorPublisher, Submission

log = get_logger(__name__)

MAX_OUTSTANDING = 500
"""Submissions sent without waiting for their acknowledgement before the replay waits."""


@dataclass(frozen=True)
class LogEvent:
    """One event of a sensor log: when (offset from the first event), which sensor, what."""

    offset_s: float
    sensor_id: str
    state: str | None = None
    value: float | None = None
    at: datetime | None = None
    """The original time of the event, where the log has one (not used when replaying)."""


@dataclass
class ReplayStats:
    """What a replay did."""

    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    cycles: int = 0


# --- formats -------------------------------------------------------------------------


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
    if not firings:
        return
    firings.sort()
    first = firings[0][0]
    for at, _, phase, sensor in firings:
        if sensor_map is not None and sensor in sensor_map:
            name = sensor_map[sensor]
        elif sensor_map is None or keep_unmapped:
            name = f"kasteren-{sensor}"
        else:
            continue
        yield LogEvent(
            offset_s=(at - first).total_seconds(),
            sensor_id=name,
            state="inactive" if phase else "active",
            at=at,
        )


# --- replay --------------------------------------------------------------------------


def _body(event: LogEvent, ts: float) -> bytes:
    reading: dict[str, Any] = {"sensor_id": event.sensor_id, "ts": round(ts, 6)}
    if event.state is not None:
        reading["state"] = event.state
    if event.value is not None:
        reading["value"] = event.value
    return json.dumps(reading).encode()


def replay(
    readings: Iterable[LogEvent],
    publisher: SensorPublisher,
    speed: float = 1.0,
    start: float | None = None,
    loop: bool = False,
    *,
    period_s: float | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> ReplayStats:
    """Publish ``readings`` at ``start + offset / speed`` (wall clock), stamped with that time.

    ``start`` defaults to now; a start in the future waits for it, events already due are
    published at once (in order). With ``loop`` the log repeats every ``period_s`` log
    seconds (default: the last offset + 1 s) until ``stop`` is set. Rejected readings are
    dead-lettered by the publisher and counted; a Kafka failure raises ``PublishError``.
    """
    if not speed > 0 or not math.isfinite(speed):
        raise ValueError(f"speed must be a positive number, got {speed}")
    stop = stop or threading.Event()
    events: Iterable[LogEvent] = readings
    period = 0.0
    if loop:
        materialised = list(readings)
        if not materialised:
            return ReplayStats()
        events = materialised
        period = (period_s if period_s is not None
                  else max(e.offset_s for e in materialised) + 1.0)
        if not period > 0:
            raise ValueError(f"the loop period must be > 0, got {period}")
    t0 = clock() if start is None else start
    stats = ReplayStats()
    outstanding: list[Submission] = []

    def settle() -> None:
        while outstanding:
            publisher.confirm(outstanding.pop(0))

    log.info("replay.start", extra={"speed": speed, "t0": t0, "loop": loop,
                                    "topic": publisher.topic})
    while not stop.is_set():
        cycle_start = t0 + stats.cycles * period / speed
        for event in events:
            if stop.is_set():
                break
            due = cycle_start + event.offset_s / speed
            if due > clock():
                settle()  # wait for acknowledgements while there is time
                if stop.wait(max(0.0, due - clock())):
                    break
            try:
                submission = publisher.submit(_body(event, due))
            except BatchRejected as exc:
                stats.rejected += 1
                log.warning("replay.rejected", extra={"sensor": event.sensor_id,
                                                      "reason": exc.reason, "detail": str(exc)})
                continue
            stats.published += len(submission.events)
            stats.duplicates += len(submission.duplicates)
            outstanding.append(submission)
            if len(outstanding) >= MAX_OUTSTANDING:
                settle()
        else:
            stats.cycles += 1
        if not loop:
            break
    settle()
    log.info("replay.done", extra={"published": stats.published, "duplicates": stats.duplicates,
                                   "rejected": stats.rejected, "cycles": stats.cycles,
                                   "stopped": stop.is_set()})
    return stats
