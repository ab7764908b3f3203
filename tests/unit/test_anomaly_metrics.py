"""Tables for the anomaly evaluation's metrics (tools/anomaly_metrics.py) and its split
protocol's argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tools.anomaly_metrics import (
    Pool,
    clip_row,
    delay_summary,
    event_delays,
    events,
    parse_clips,
)


@pytest.mark.parametrize(("labels", "expected"), [
    ([0, 0, 0], []),
    ([1, 1, 1], [(0, 3)]),
    ([0, 1, 1, 0, 0, 1], [(1, 3), (5, 6)]),
    ([1, 0, 1], [(0, 1), (2, 3)]),
])
def test_events(labels: list[int], expected: list[tuple[int, int]]) -> None:
    assert events(np.array(labels)) == expected


@pytest.mark.parametrize(("flagged", "labels", "expected"), [
    ([0, 1, 1, 1], [0, 1, 1, 1], [0]),  # flagged at onset
    ([0, 0, 0, 1], [0, 1, 1, 1], [2]),
    ([1, 0, 0, 0], [0, 1, 1, 1], [None]),  # a flag before the event does not count
    ([0, 0, 0, 0], [0, 1, 1, 1], [None]),
    ([0, 0, 1, 0, 0, 1], [1, 1, 1, 0, 1, 1], [2, 1]),
    ([1, 1], [0, 0], []),
])
def test_event_delays(flagged: list[int], labels: list[int],
                      expected: list[int | None]) -> None:
    assert event_delays(np.array(flagged), np.array(labels)) == expected


@pytest.mark.parametrize(("delays", "expected"), [
    ([], {"events": 0, "detected": 0, "mean_delay": None, "max_delay": None}),
    ([None], {"events": 1, "detected": 0, "mean_delay": None, "max_delay": None}),
    ([0, 4, None], {"events": 3, "detected": 2, "mean_delay": 2.0, "max_delay": 4}),
])
def test_delay_summary(delays: list[int | None], expected: dict[str, object]) -> None:
    assert delay_summary(delays) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("01,02,03", ["01", "02", "03"]),
    (" 4, 5 ,06,", ["4", "5", "06"]),
])
def test_parse_clips(text: str, expected: list[str]) -> None:
    assert parse_clips(text) == expected


@pytest.mark.parametrize("text", ["", " , "])
def test_parse_clips_rejects_empty(text: str) -> None:
    with pytest.raises(ValueError, match="no clip names"):
        parse_clips(text)


def test_clip_row_and_pool() -> None:
    # clip a: normal 0.1 0.2, abnormal 0.9 0.3 (threshold 0.5: one miss, delay 0)
    # clip b: normal 0.6 (a false alarm), abnormal 0.4 0.8 (delay 1)
    a = clip_row("a", np.array([0.1, 0.2, 0.9, 0.3]), np.array([0.1, 0.2, 0.9, 0.3]),
                 np.array([0, 0, 1, 1]), 0.5)
    b = clip_row("b", np.array([0.6, 0.4, 0.8]), np.array([0.6, 0.4, 0.8]),
                 np.array([0, 1, 1]), 0.5)
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (1, 0, 1, 2)
    assert a["auc"] == 1.0 and a["miss_rate"] == 0.5 and a["false_alarm_rate"] == 0.0
    assert a["delays"] == [0] and b["delays"] == [1]
    assert b["false_alarm_rate"] == 1.0 and b["auc"] == 0.5
    pool = Pool()
    for row, scores in ((a, [0.1, 0.2, 0.9, 0.3]), (b, [0.6, 0.4, 0.8])):
        s = np.array(scores)
        pool.add(s, s, np.array([0] * (row["frames"] - row["abnormal"]) + [1] * row["abnormal"]),
                 0.5)
    overall = pool.summary([a, b])
    assert overall["frames"] == 7 and overall["abnormal"] == 4
    assert overall["false_alarm_rate"] == pytest.approx(1 / 3)
    assert overall["miss_rate"] == pytest.approx(2 / 4)
    assert overall["mean_clip_auc"] == pytest.approx(0.75)
    # pooled: normals 0.1 0.2 0.6, abnormals 0.9 0.3 0.4 0.8 -> 10 of 12 pairs ordered
    assert overall["auc"] == pytest.approx(10 / 12)
    assert (overall["events"], overall["detected"], overall["mean_delay"]) == (2, 2, 0.5)


def test_load_clips_keeps_only_the_clips_named(tmp_path: Path) -> None:
    """``--clips``: only the named clips are loaded (a clip without labels is not read)."""
    from tools.eval_anomaly import load_clips

    for clip in ("01", "02", "03"):
        (tmp_path / clip).mkdir()
        for i in range(3):
            (tmp_path / clip / f"{i:03d}.jpg").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("clip,frame_idx0,abnormal\n" + "".join(
        f"{c},{i},{int(i == 2)}\n" for c in ("02", "03") for i in range(3)))  # no 01
    clips = load_clips(tmp_path, labels, False, ["02", "03"])
    assert [c.name for c in clips] == ["02", "03"]
    assert clips[0].labels.tolist() == [0, 0, 1] and len(clips[1].paths) == 3
    with pytest.raises(KeyError, match="01"):
        load_clips(tmp_path, labels, False, None)
    with pytest.raises(ValueError, match="unknown clips"):
        load_clips(tmp_path, labels, False, ["07"])
