"""Sensor log readers on the real MIT PlaceLab and UCI occupancy files, and on small tables."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from argus.settings import get_settings
from services.sensor_gateway.logs import (
    LogEvent,
    detect_format,
    iter_placelab,
    iter_uci_occupancy,
    placelab_days,
    read_log,
)

IOT = get_settings().shared / "data" / "iot"
PLACELAB = IOT / "mit_placelab_tapia"
UCI = IOT / "uci_occupancy"
needs_placelab = pytest.mark.skipif(not PLACELAB.exists(), reason="PlaceLab is not mirrored")
needs_uci = pytest.mark.skipif(not UCI.exists(), reason="UCI occupancy is not mirrored")


# --- MIT PlaceLab -------------------------------------------------------------------------


@needs_placelab
@pytest.mark.parametrize(
    ("subject", "events", "sensors", "first", "last"),
    [
        # 2772 listed firings, 2620 distinct, 22 overlaps merged → 2598 firings
        ("subject1", 5196, 72,
         LogEvent(0.0, "placelab-67", "active", at=datetime(2003, 3, 27, 6, 43, 40)),
         LogEvent(1352437.0, "placelab-71", "inactive", at=datetime(2003, 4, 11, 22, 24, 17))),
        # 1962 listed, 1771 distinct, 87 overlaps merged → 1684; its "4/31" is a day of
        # its own, so its last day (labelled 5/4) is 5 May
        ("subject2", 3368, 68,
         LogEvent(0.0, "placelab-137", "active", at=datetime(2003, 4, 19, 3, 9, 1)),
         LogEvent(1451221.0, "placelab-74", "inactive", at=datetime(2003, 5, 5, 22, 16, 2))),
    ],
)
def test_placelab_subjects(subject: str, events: int, sensors: int, first: LogEvent,
                           last: LogEvent) -> None:
    log = list(iter_placelab(PLACELAB / subject))
    assert len(log) == events
    assert len({e.sensor_id for e in log}) == sensors
    assert (log[0], log[-1]) == (first, last)
    assert Counter(e.state for e in log) == {"active": events // 2, "inactive": events // 2}
    assert all(a.offset_s <= b.offset_s for a, b in pairwise(log))
    state: dict[str, str | None] = {}
    for event in log:  # every sensor alternates active / inactive
        assert state.get(event.sensor_id) != event.state
        state[event.sensor_id] = event.state


@needs_placelab
def test_placelab_first_rows_of_subject1() -> None:
    # 3/27/2003 opens with sensor 67 (06:43:40-06:43:43), then 100 (the toilet flush)
    log = list(iter_placelab(PLACELAB / "subject1" / "activities_data.csv",
                             {100: "door-lobby-1"}))
    assert log[:2] == [
        LogEvent(26.0, "door-lobby-1", "active", at=datetime(2003, 3, 27, 6, 44, 6)),
        LogEvent(log[1].offset_s, "door-lobby-1", "inactive", at=log[1].at),
    ]
    assert {e.sensor_id for e in log} == {"door-lobby-1"}  # unmapped sensors are skipped


SMALL_PLACELAB = (
    "Toileting,4/1/2003,17:30:36,17:46:41\r\n"
    "100,68\r\n"
    "Toilet Flush,Sink faucet - hot\r\n"
    "17:39:37,17:39:46\r\n"
    "18:10:57,17:39:52\r\n"
    "Bathing,4/1/2003,17:35:0,18:0:0\r\n"  # overlaps: 100 listed again, 68 overlapping
    "100,68\r\n"
    "Toilet Flush,Sink faucet - hot\r\n"
    "17:39:37,17:39:50\r\n"
    "18:10:57,17:40:1\r\n"
    "Sleeping,4/1/2003,23:50:0,23:59:59\r\n"  # a firing after midnight, one ending after it
    "108,109\r\n"
    "Light switch,Light switch\r\n"
    "0:0:10,23:59:0\r\n"
    "0:0:20,0:1:0\r\n"
)


def test_placelab_merges_repeats_and_crosses_midnight(tmp_path: Path) -> None:
    path = tmp_path / "activities_data.csv"
    path.write_text(SMALL_PLACELAB, newline="")
    got = [(e.sensor_id, e.state, e.at) for e in iter_placelab(path)]
    day, next_day = datetime(2003, 4, 1), datetime(2003, 4, 2)
    assert got == [
        ("placelab-100", "active", day.replace(hour=17, minute=39, second=37)),
        ("placelab-68", "active", day.replace(hour=17, minute=39, second=46)),
        ("placelab-68", "inactive", day.replace(hour=17, minute=40, second=1)),
        ("placelab-100", "inactive", day.replace(hour=18, minute=10, second=57)),
        ("placelab-109", "active", day.replace(hour=23, minute=59)),
        ("placelab-108", "active", next_day.replace(second=10)),
        ("placelab-108", "inactive", next_day.replace(second=20)),
        ("placelab-109", "inactive", next_day.replace(minute=1)),
    ]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({(2003, 4, 30), (2003, 5, 1)}, [date(2003, 4, 30), date(2003, 5, 1)]),
        ({(2003, 4, 30), (2003, 4, 31), (2003, 5, 1)},
         [date(2003, 4, 30), date(2003, 5, 1), date(2003, 5, 2)]),
        ({(2003, 4, 1), (2003, 4, 4)}, [date(2003, 4, 1), date(2003, 4, 4)]),  # gaps kept
        ({(2003, 12, 31), (2004, 1, 1)}, [date(2003, 12, 31), date(2004, 1, 1)]),
    ],
)
def test_placelab_days(labels: set[tuple[int, int, int]], expected: list[date]) -> None:
    assert [placelab_days(labels)[label] for label in sorted(labels)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not an activity\n", ":1: expected an activity line"),
        ("A,4/1/2003,1:0:0,2:0:0\n100,101\nx,y\n1:0:0\n1:0:5,1:0:6\n", ":1: an activity needs"),
        ("A,4/1/2003,1:0:0,2:0:0\n100\nx\n1:0:0\n1:61:0\n", ":1: sensor column 1: bad time"),
        ("A,4/1/2003,1:0:0,2:0:0\nS1\nx\n1:0:0\n1:0:5\n", ":1: sensor column 1:"),
    ],
)
def test_placelab_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "activities_data.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"activities_data\.csv") as info:
        list(iter_placelab(path))
    assert message in str(info.value)


# --- UCI occupancy -------------------------------------------------------------------------


@needs_uci
@pytest.mark.parametrize(
    ("name", "rows", "first_row", "last_at"),
    [
        ("datatraining.txt", 8143, (datetime(2015, 2, 4, 17, 51), 23.18, 27.272, 426.0, 721.25),
         datetime(2015, 2, 10, 9, 33)),
        ("datatest.txt", 2665, (datetime(2015, 2, 2, 14, 19), 23.7, 26.272, 585.2, 749.2),
         datetime(2015, 2, 4, 10, 43)),
        ("datatest2.txt", 9752,
         (datetime(2015, 2, 11, 14, 48), 21.76, 31.1333333333333, 437.333333333333,
          1029.66666666667),
         datetime(2015, 2, 18, 9, 19)),
    ],
)
def test_uci_files(name: str, rows: int, first_row: tuple[datetime, float, float, float, float],
                   last_at: datetime) -> None:
    log = list(iter_uci_occupancy(UCI / name))
    assert len(log) == 4 * rows
    at, temperature, humidity, light, co2 = first_row
    assert log[:4] == [
        LogEvent(0.0, "uci-temperature", value=temperature, at=at),
        LogEvent(0.0, "uci-humidity", value=humidity, at=at),
        LogEvent(0.0, "uci-light", value=light, at=at),
        LogEvent(0.0, "uci-co2", value=co2, at=at),
    ]
    assert log[-1].at == last_at and log[-1].sensor_id == "uci-co2"
    assert log[-1].offset_s == (last_at - at).total_seconds()
    assert Counter(e.sensor_id for e in log) == {
        f"uci-{c}": rows for c in ("temperature", "humidity", "light", "co2")}


@needs_uci
def test_uci_second_row_is_59_seconds_later_and_maps_channels() -> None:
    log = list(iter_uci_occupancy(UCI / "datatraining.txt",
                                  {"temperature": "temp-lobby-1", "co2": "gas-lobby-1"}))
    assert log[:4] == [
        LogEvent(0.0, "temp-lobby-1", value=23.18, at=datetime(2015, 2, 4, 17, 51)),
        LogEvent(0.0, "gas-lobby-1", value=721.25, at=datetime(2015, 2, 4, 17, 51)),
        LogEvent(59.0, "temp-lobby-1", value=23.15, at=datetime(2015, 2, 4, 17, 51, 59)),
        LogEvent(59.0, "gas-lobby-1", value=714.0, at=datetime(2015, 2, 4, 17, 51, 59)),
    ]
    assert len(log) == 2 * 8143


def test_uci_accepts_the_original_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "datatraining.txt"
    path.write_text('"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"\n'
                    '"1","2015-02-04 17:51:00",23.18,27.272,426,721.25,0.0047,1\n'
                    '"2","2015-02-04 17:52:00",23.15,27.2675,429.5,,0.0047,1\n')
    assert [(e.offset_s, e.sensor_id, e.value) for e in iter_uci_occupancy(path)] == [
        (0.0, "uci-temperature", 23.18), (0.0, "uci-humidity", 27.272),
        (0.0, "uci-light", 426.0), (0.0, "uci-co2", 721.25),
        (60.0, "uci-temperature", 23.15), (60.0, "uci-humidity", 27.2675),
        (60.0, "uci-light", 429.5),  # an empty cell is no reading
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ('"Temperature","CO2"\n', ":1: the header has no 'date' column"),
        ('"date","CO2"\n"2015-02-04 17:51:00"\n', ":2: expected 2 columns, got 1"),
        ('"date","CO2"\n"yesterday",700\n', ":2: time data 'yesterday'"),
        ('"date","CO2"\n"2015-02-04 17:51:00",nan\n', ":2: co2 must be a finite number"),
        ('"date","CO2"\n"2015-02-04 17:51:00",1\n"2015-02-04 17:50:00",1\n',
         ":3: time 2015-02-04 17:50:00 is before the previous row's"),
    ],
)
def test_uci_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "occupancy.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"occupancy\.txt") as info:
        list(iter_uci_occupancy(path))
    assert message in str(info.value)


# --- choosing a reader --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "fmt"),
    [
        ("mit_placelab_tapia/subject1", "placelab"),
        ("mit_placelab_tapia/subject2/activities_data.csv", "placelab"),
        ("uci_occupancy/datatraining.txt", "uci"),
        ("uci_occupancy/datatest2.txt", "uci"),
        ("kasteren_houseA/kasterenSenseData.txt", "kasteren"),
    ],
)
def test_detect_format_of_the_shared_logs(relative: str, fmt: str) -> None:
    path = IOT / relative
    if not path.exists():
        pytest.skip(f"{relative} is not mirrored")
    assert detect_format(path) == fmt


@pytest.mark.parametrize(
    ("fmt", "mapping", "message"),
    [
        ("csv", {"1": "a"}, "--map does not apply"),
        ("uci", {"pressure": "a"}, "not pressure"),
        ("kasteren", {"door": "a"}, "kasteren sensor ids are numbers, not door"),
        ("placelab", {"x1": "a"}, "placelab sensor ids are numbers"),
        ("parquet", None, "unknown log format 'parquet'"),
    ],
)
def test_read_log_refuses_maps_the_format_cannot_use(
    tmp_path: Path, fmt: str, mapping: dict[str, str] | None, message: str
) -> None:
    path = tmp_path / "log.csv"
    path.write_text("offset_s,sensor_id\n0,a\n")
    with pytest.raises(ValueError, match=message):
        read_log(path, fmt, mapping)


def test_read_log_detects_csv(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("offset_s,sensor_id,state\n0,pir-1,active\n")
    assert read_log(path) == [LogEvent(0.0, "pir-1", "active")]
