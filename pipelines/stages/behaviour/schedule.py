"""Behaviour schedules in site-local time (the windows themselves: ``argus/schedule.py``).

>>> from argus.behaviours import Schedule, TimeWindow
>>> night = TimeWindow.model_validate({"from": "22:00", "to": "06:00"})
>>> in_window(night.days, night.start, night.end, datetime(2026, 11, 23, 23, 30))
True
>>> in_window(night.days, night.start, night.end, datetime(2026, 11, 23, 12, 0))
False
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from argus.behaviours import Schedule
from argus.schedule import allows, in_window
from argus.topology import Site


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
    local = datetime.fromtimestamp(ts, ZoneInfo(site.timezone))
    return allows(schedule.hours, schedule.site, local, lambda: site_open(site, ts))
