"""Time windows in site-local time: the one implementation behind behaviour schedules,
rule schedules and sites' opening hours (``argus/behaviours.py``, the rules' ``schedule:``,
``argus/topology.py:OpeningHours``).

A window runs from ``start`` to ``end`` on ``days``; an ``end`` at or before ``start`` runs
past midnight (``days`` names the day the window starts), and ``start == end`` is the whole
day. Clocks are ``datetime.time`` or ``"HH:MM"`` (``"24:00"`` allowed).

>>> night = (["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "22:00", "06:00")
>>> in_window(*night, datetime(2026, 11, 23, 23, 30)), in_window(*night, datetime(2026, 11, 23, 12))
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import Literal, Protocol

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Window(Protocol):
    @property
    def days(self) -> Sequence[str]: ...
    @property
    def start(self) -> time | str: ...
    @property
    def end(self) -> time | str: ...


def clock_minutes(value: time | str) -> float:
    """Minutes since midnight.

    >>> clock_minutes("22:30"), clock_minutes("24:00"), clock_minutes(time(6, 0, 30))
    (1350.0, 1440.0, 360.5)
    """
    if isinstance(value, time):
        return value.hour * 60 + value.minute + value.second / 60.0
    hours, _, mins = value.partition(":")
    return float(int(hours) * 60 + int(mins))


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


def allows(hours: Sequence[Window] | None, site: Literal["open", "closed"] | None,
           local: datetime, is_open: Callable[[], bool]) -> bool:
    """A schedule's verdict at ``local``: inside any of ``hours`` (when given) and the site
    ``open``/``closed`` as asked (when given)."""
    if hours is not None and not any(in_window(w.days, w.start, w.end, local) for w in hours):
        return False
    if site == "open":
        return is_open()
    if site == "closed":
        return not is_open()
    return True
