"""Behaviour schedules in site-local time: hours windows and the site's opening hours.

>>> from argus.behaviours import Schedule, TimeWindow
>>> night = TimeWindow.model_validate({"from": "22:00", "to": "06:00"})
>>> in_window(night.days, night.start, night.end, datetime(2026, 11, 23, 23, 30))
True
>>> in_window(night.days, night.start, night.end, datetime(2026, 11, 23, 12, 0))
False
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from argus.behaviours import WEEKDAYS, Schedule, minutes
from argus.topology import Site


def in_window(days: Sequence[str], start: str, end: str, local: datetime) -> bool:
    """Is ``local`` inside ``start`` to ``end`` (``HH:MM``) on one of ``days``? An ``end`` at
    or before ``start`` runs past midnight; ``days`` names the day the window starts; an
    equal ``start`` and ``end`` is the whole day."""
    now = local.hour * 60 + local.minute + local.second / 60.0
    a, b = minutes(start), minutes(end)
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local - timedelta(days=1)).weekday()]
    if a == b:
        return today in days
    if a < b:
        return today in days and a <= now < b
    return (now >= a and today in days) or (now < b and yesterday in days)


def site_open(site: Site, ts: float) -> bool:
    """Whether the site is open at ``ts`` (a site without opening hours always is)."""
    if site.opening_hours is None:
        return True
    local = datetime.fromtimestamp(ts, ZoneInfo(site.timezone))
    return any(in_window(h.days, h.open, h.close, local) for h in site.opening_hours)


def schedule_allows(schedule: Schedule | None, site: Site, ts: float) -> bool:
    """Whether ``schedule`` allows an event at capture time ``ts`` at ``site``."""
    if schedule is None:
        return True
    if schedule.hours is not None:
        local = datetime.fromtimestamp(ts, ZoneInfo(site.timezone))
        if not any(in_window(w.days, w.start, w.end, local) for w in schedule.hours):
            return False
    if schedule.site == "open":
        return site_open(site, ts)
    if schedule.site == "closed":
        return not site_open(site, ts)
    return True
