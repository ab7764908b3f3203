"""Time windows in site-local time: the one schedule model and its one implementation,
behind behaviour schedules (``argus/behaviours.py``), rule schedules (the rules'
``schedule:``) and sites' opening hours (``argus/topology.py:OpeningHours``).

A window runs from ``start`` to ``end`` on ``days``; an ``end`` at or before ``start`` runs
past midnight (``days`` names the day the window starts), and ``start == end`` is the whole
day. In YAML a window is ``{from: "22:00", to: "06:00", days: [fri, sat]}`` (a
:class:`TimeWindow`); a :class:`Schedule` is ``hours`` (windows) and/or ``site:
open|closed``. Clocks are ``"HH:MM"`` (``"24:00"`` allowed, seconds optional), a
``datetime.time``, or whole minutes (YAML 1.1 reads an unquoted 22:00 as 1320).

>>> night = TimeWindow.model_validate({"from": 1320, "to": "06:00"})
>>> night.start, night.end, in_any([night], datetime(2026, 11, 23, 23, 30))
('22:00', '06:00', True)
>>> in_window(night.days, night.start, night.end, datetime(2026, 11, 23, 12))
False
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"(\d{1,2})(:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)")


def clock(value: Any) -> str:
    """A clock time as ``"HH:MM"`` (``"HH:MM:SS"`` when it has seconds): from ``"HH:MM"``,
    ``"H:MM"``, ``"HH:MM:SS[.ffffff]"``, ``"24:00"``, a naive ``datetime.time`` or whole
    minutes 0..1440 (YAML 1.1 reads an unquoted 22:00 as 1320, base 60).

    >>> clock(1320), clock("6:30"), clock(" 24:00 "), clock(time(6, 0, 30)), clock(1440)
    ('22:00', '06:30', '24:00', '06:00:30', '24:00')
    >>> clock("25:00")
    Traceback (most recent call last):
    ValueError: a clock time must be HH:MM from 00:00 to 24:00 (site-local), got '25:00'
    """
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError(f"a clock time is site-local, without a UTC offset: got {value}")
        return value.isoformat("minutes" if not (value.second or value.microsecond) else "auto")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 24 * 60:
        return "24:00" if value == 24 * 60 else clock(time(value // 60, value % 60))
    text = value.strip() if isinstance(value, str) else None
    if text in ("24:00", "24:00:00"):
        return "24:00"
    match = _CLOCK.fullmatch(text or "")
    if match is not None:
        try:
            return clock(time.fromisoformat(match[1].zfill(2) + match[2]))
        except ValueError:
            pass  # 23:60, 25:00
    got = repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        got += f" (YAML 1.1 reads an unquoted {value // 60}:{value % 60:02d} as {value})"
    raise ValueError(f"a clock time must be HH:MM from 00:00 to 24:00 (site-local), got {got}")


Clock = Annotated[str, BeforeValidator(clock)]
"""A validated site-local clock time, ``"HH:MM"`` or ``"HH:MM:SS"`` (see :func:`clock`)."""


class Window(Protocol):
    """What :func:`in_any` and :func:`allows` read: a :class:`TimeWindow`, or a site's
    ``OpeningHours`` (YAML ``open``/``close``, read as ``start``/``end``)."""

    @property
    def days(self) -> Sequence[str]: ...
    @property
    def start(self) -> time | str: ...
    @property
    def end(self) -> time | str: ...


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def every_day() -> list[Weekday]:
    return list(WEEKDAYS)


class TimeWindow(_Frozen):
    """Site-local ``from`` to ``to`` on ``days``; ``to`` at or before ``from`` runs past
    midnight (``days`` names the day the window starts), ``from == to`` is the whole day."""

    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")
    days: list[Weekday] = Field(default_factory=every_day, min_length=1)


class Schedule(_Frozen):
    """When a behaviour may emit events or a rule may fire, in the site's timezone: inside
    any of ``hours`` and/or while the site is ``open``/``closed`` by its opening hours. Both
    given: both must hold."""

    hours: list[TimeWindow] | None = Field(default=None, min_length=1)
    site: Literal["open", "closed"] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Schedule:
        if self.hours is None and self.site is None:
            raise ValueError("a schedule needs hours or site")
        return self


def clock_minutes(value: time | str) -> float:
    """Minutes since midnight.

    >>> clock_minutes("22:30"), clock_minutes("24:00"), clock_minutes("06:00:30")
    (1350.0, 1440.0, 360.5)
    >>> clock_minutes(time(6, 0, 30))
    360.5
    """
    if isinstance(value, time):
        return value.hour * 60 + value.minute + value.second / 60.0
    hours, mins, *secs = value.split(":")
    return int(hours) * 60 + int(mins) + (float(secs[0]) / 60.0 if secs else 0.0)


def in_window(days: Sequence[str], start: time | str, end: time | str,
              local: datetime) -> bool:
    """Is the site-local ``local`` inside the window?"""
    now = local.hour * 60 + local.minute + local.second / 60.0
    a, b = clock_minutes(start), clock_minutes(end)
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local - timedelta(days=1)).weekday()]
    if a == b:
        return today in days
    if a < b:
        return today in days and a <= now < b
    return (now >= a and today in days) or (now < b and yesterday in days)


def in_any(windows: Iterable[Window], local: datetime) -> bool:
    """Is the site-local ``local`` inside any of ``windows``?"""
    return any(in_window(w.days, w.start, w.end, local) for w in windows)


def allows(hours: Iterable[Window] | None, site: Literal["open", "closed"] | None,
           local: datetime, is_open: Callable[[], bool]) -> bool:
    """A schedule's verdict at ``local``: inside any of ``hours`` (when given) and the site
    ``open``/``closed`` as asked (when given)."""
    if hours is not None and not in_any(hours, local):
        return False
    if site == "open":
        return is_open()
    if site == "closed":
        return not is_open()
    return True
