"""The one schedule model (``argus/schedule.py``) as tables: every clock the behaviours',
the rules' and the opening hours' validators accepted still validates, bad ones are
refused with one clear message, and the models are strict and frozen."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest
from pydantic import ValidationError

from argus.schedule import Schedule, TimeWindow, allows, in_any
from argus.topology import OpeningHours


@pytest.mark.parametrize(("value", "expected"), [
    ("22:00", "22:00"),
    ("06:30", "06:30"),
    ("6:30", "06:30"),
    ("24:00", "24:00"),
    (" 24:00 ", "24:00"),
    ("24:00:00", "24:00"),
    ("22:00:00", "22:00"),
    ("22:00:30", "22:00:30"),
    ("22:00:00.5", "22:00:00.500000"),
    (1320, "22:00"),          # YAML 1.1: an unquoted 22:00 is 1320 (base 60)
    (0, "00:00"),
    (1440, "24:00"),
    (time(22, 0), "22:00"),
    (time(6, 0, 30), "06:00:30"),
])
def test_accepted_clocks(value: Any, expected: str) -> None:
    window = TimeWindow.model_validate({"from": value, "to": value})
    assert (window.start, window.end) == (expected, expected)
    hours = OpeningHours.model_validate({"open": value, "close": value})
    assert (hours.open, hours.close) == (expected, expected)


@pytest.mark.parametrize(("value", "message"), [
    ("25:00", "a clock time must be HH:MM from 00:00 to 24:00 (site-local), got '25:00'"),
    ("23:60", "got '23:60'"),
    ("24:30", "got '24:30'"),
    ("2200", "got '2200'"),
    ("22:00+01:00", "got '22:00+01:00'"),
    ("", "got ''"),
    (1500, "got 1500 (YAML 1.1 reads an unquoted 25:00 as 1500)"),
    (-1, "got -1"),
    (True, "got True"),
    (22.5, "got 22.5"),
    (None, "got None"),
    (time(22, 0, tzinfo=UTC), "site-local, without a UTC offset"),
])
def test_refused_clocks(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match="from\n  Value error, a clock time") as err:
        TimeWindow.model_validate({"from": value, "to": "06:00"})
    assert message in str(err.value)


@pytest.mark.parametrize(("model", "data", "message"), [
    (TimeWindow, {"from": "22:00", "to": "06:00", "day": ["mon"]}, "day\n  Extra inputs"),
    (TimeWindow, {"from": "22:00", "to": "06:00", "days": []}, "at least 1 item"),
    (TimeWindow, {"from": "22:00", "to": "06:00", "days": ["monday"]}, "Input should be"),
    (TimeWindow, {"from": "22:00"}, "to\n  Field required"),
    (Schedule, {}, "a schedule needs hours or site"),
    (Schedule, {"hours": []}, "at least 1 item"),
    (Schedule, {"site": "shut"}, "Input should be 'open' or 'closed'"),
    (Schedule, {"site": "open", "when": "now"}, "when\n  Extra inputs"),
    (OpeningHours, {"open": "08:00", "close": "18:00", "from": "08:00"}, "Extra inputs"),
])
def test_strict_models(model: type[Any], data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(data)


def test_frozen_and_by_name() -> None:
    window = TimeWindow(start="22:00", end="06:00")
    assert window == TimeWindow.model_validate({"from": "22:00", "to": "06:00"})
    assert window.days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    with pytest.raises(ValidationError, match="frozen"):
        window.start = "23:00"  # type: ignore[misc]
    assert window.model_dump(by_alias=True) == {"from": "22:00", "to": "06:00",
                                                "days": window.days}


MONDAY_NIGHT = datetime(2026, 11, 23, 23, 30)  # a Monday


@pytest.mark.parametrize(("hours", "site", "site_open", "allowed"), [
    ([TimeWindow(start="22:00", end="06:00")], None, True, True),
    ([TimeWindow(start="22:00", end="06:00", days=["tue"])], None, True, False),
    ([OpeningHours(open="08:00", close="18:00")], None, True, False),
    ([OpeningHours(open="18:00", close="24:00", days=["mon"])], None, True, True),
    (None, "closed", False, True),
    (None, "open", False, False),
    ([TimeWindow(start="23:00", end="23:00")], "closed", True, False),
])
def test_windows_and_opening_hours_read_alike(hours: list[Any] | None, site: Any,
                                              site_open: bool, allowed: bool) -> None:
    assert allows(hours, site, MONDAY_NIGHT, lambda: site_open) is allowed


def test_a_window_starting_at_24_00_is_the_next_day() -> None:
    """``from: "24:00"`` on mon is Tuesday from midnight (the rules' validator used to read
    it as 00:00 of mon; behaviours always read it as here)."""
    window = TimeWindow(start="24:00", end="06:00", days=["mon"])
    assert not in_any([window], datetime(2026, 11, 23, 1, 0))
    assert in_any([window], datetime(2026, 11, 24, 1, 0))
