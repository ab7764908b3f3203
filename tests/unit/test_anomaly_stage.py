"""Pure decisions of the anomaly stage: when a camera's smoothed score makes an event, how
frames pair up, and where the event is placed."""

from __future__ import annotations

import pytest

from argus.topology import Camera
from pipelines.stages.anomaly.agent import (
    WHOLE_VIEW,
    AnomalyTrigger,
    cell_box,
    confidence,
    pair_step,
    zone_of,
)


@pytest.mark.parametrize("min_frames, cooldown_s, frames, expected", [
    # (smoothed score, capture ts) per frame; threshold 1.0
    (3, 10.0, [(2, 0), (2, 1), (2, 2), (2, 3)], [False, False, True, False]),
    (3, 10.0, [(2, 0), (2, 1), (0.5, 2), (2, 3), (2, 4), (2, 5)],
     [False, False, False, False, False, True]),
    (1, 10.0, [(2, 0), (2, 5), (2, 10), (2, 11)], [True, False, True, False]),
    (2, 10.0, [(2, 0), (2, 1), (0, 2), (2, 3), (2, 4), (2, 12), (2, 13)],
     [False, True, False, False, False, True, False]),
    (1, 0.0, [(1.0, 0), (1.01, 1), (1.01, 2)], [False, True, True]),  # "above" is strict
])
def test_trigger(min_frames: int, cooldown_s: float, frames: list[tuple[float, float]],
                 expected: list[bool]) -> None:
    trigger = AnomalyTrigger(min_frames, cooldown_s)
    assert [trigger.update(score, 1.0, ts) for score, ts in frames] == expected


def test_trigger_remembers_when_the_run_began() -> None:
    trigger = AnomalyTrigger(2, 0.0)
    trigger.update(0.2, 1.0, 5.0)
    trigger.update(3.0, 1.0, 6.0)
    assert trigger.update(3.0, 1.0, 7.0) and trigger.since_ts == 6.0 and trigger.above == 2
    trigger.reset()
    assert (trigger.above, trigger.since_ts, trigger.last_fired_ts) == (0, None, 7.0)


@pytest.mark.parametrize("has_prev, prev_seq, prev_ts, seq, ts, expected", [
    (False, -1, 0.0, 0, 100.0, False),  # first frame of the camera
    (True, 4, 100.0, 5, 100.2, True),  # the next frame
    (True, 4, 100.0, 7, 100.6, True),  # a few frames dropped, still close in time
    (True, 4, 100.0, 5, 103.0, False),  # a gap: start again
    (True, 4, 100.0, 4, 100.0, None),  # redelivered
    (True, 4, 100.0, 3, 99.8, None),  # older
    (True, 900, 100.0, 0, 100.3, True),  # grabber restarted (seq from 0, newer time)
    (True, 4, 100.0, 6, 99.0, False),  # newer seq, older time: clock jump, start again
])
def test_pair_step(has_prev: bool, prev_seq: int, prev_ts: float, seq: int, ts: float,
                   expected: bool | None) -> None:
    assert pair_step(has_prev, prev_seq, prev_ts, seq, ts, 2.0) is expected


@pytest.mark.parametrize("index, rows, cols, box", [
    (0, 8, 12, (0.0, 0.0, 1 / 12, 0.125)),
    (95, 8, 12, (11 / 12, 0.875, 1.0, 1.0)),
    (13, 8, 12, (1 / 12, 0.125, 2 / 12, 0.25)),
    (3, 2, 2, (0.5, 0.5, 1.0, 1.0)),
])
def test_cell_box(index: int, rows: int, cols: int,
                  box: tuple[float, float, float, float]) -> None:
    got = cell_box(index, rows, cols)
    assert (got.x1, got.y1, got.x2, got.y2) == pytest.approx(box)


CAMERA = Camera.model_validate({
    "id": "cam", "site": "s", "source": "x",
    "zones": [{"id": "road", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
               "site_zone": "street"}]})


@pytest.mark.parametrize("index, expected", [(95, ("road", "street")), (0, (WHOLE_VIEW, None))])
def test_zone_of_the_most_unusual_cell(index: int, expected: tuple[str, str | None]) -> None:
    assert zone_of(CAMERA, cell_box(index, 8, 12)) == expected


@pytest.mark.parametrize("smoothed, threshold, expected", [
    (1.0, 1.0, 0.5), (3.0, 1.0, 0.75), (9.0, 1.0, 0.9), (0.0, 1.0, 0.0), (1.0, 0.0, 1.0),
])
def test_confidence(smoothed: float, threshold: float, expected: float) -> None:
    assert confidence(smoothed, threshold) == pytest.approx(expected)
