"""Behaviour schedules in site-local time (the model and the windows: ``argus/schedule.py``).

>>> from argus.schedule import TimeWindow
>>> night = TimeWindow.model_validate({"from": "22:00", "to": "06:00"})
>>> in_any([night], datetime(2026, 11, 23, 23, 30)), in_any([night], datetime(2026, 11, 23, 12))
(True, False)
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from argus.schedule import Schedule, allows, in_any
from argus.topology import Site


def site_open(site: Site, ts: float) -> bool:
    """Whether the site is open at ``ts`` (a site without opening hours always is)."""
    if site.opening_hours is None:
        return True
    return in_any(site.opening_hours, datetime.fromtimestamp(ts, ZoneInfo(site.timezone)))


def schedule_allows(schedule: Schedule | None, site: Site, ts: float) -> bool:
    """Whether ``schedule`` allows an event at capture time ``ts`` at ``site``."""
    if schedule is None:
        return True
    local = datetime.fromtimestamp(ts, ZoneInfo(site.timezone))
    return allows(schedule.hours, schedule.site, local, lambda: site_open(site, ts))
