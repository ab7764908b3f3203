"""``make bench``'s input frames: a clip shorter than the run repeats from its start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import brightness_video, level
from tools.bench import read_jpegs


@pytest.mark.parametrize(("count", "expected"), [
    (3, [0, 1, 2]),
    (5, [0, 1, 2, 3, 4]),
    (12, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]),
])
def test_read_jpegs_repeats_a_short_clip(tmp_path: Path, count: int,
                                         expected: list[int]) -> None:
    jpegs = read_jpegs(brightness_video(tmp_path / "clip.avi", 5, 10.0), count)
    assert [level(j) for j in jpegs] == expected


def test_read_jpegs_of_an_unreadable_file_is_empty(tmp_path: Path) -> None:
    (tmp_path / "none.avi").write_bytes(b"not a video")
    assert read_jpegs(tmp_path / "none.avi", 10) == []


def test_throughput_report_names_every_path_and_both_ratios() -> None:
    from tools.bench_table import format_throughput

    path = {"seconds": 2.0, "fps": 150.0, "latency_ms_p50": 900.0, "latency_ms_p95": 1500.0,
            "cpu_ms_per_frame": {"worker": 0.7, "total": 12.5}, "machine_busy_pct": 190.0}
    result = {"reid": False, "frames": 300, "pipeline": path, "pipeline_from_jpegs": path,
              "plain_loop": {"seconds": 2.5, "fps": 120.0, "fps_before": 125.0,
                             "fps_after": 115.0, "cpu_ms_per_frame": 14.0},
              "ratio_pipeline_to_plain": 1.25, "ratio_from_jpegs_to_plain": 1.25}
    text = format_throughput(result)
    lines = text.splitlines()
    assert lines[0].split() == ["path", "frames", "seconds", "fps"]
    assert lines[1].startswith("grabber→Kafka→detect(Triton)→detections ")
    assert "120.0 (before 125.0, after 115.0)" in lines[3]
    assert "ratio pipeline/plain: 1.25" in text and "from the same JPEGs: 1.25" in text
    assert "pipeline worker 0.7, total 12.5" in text and "plain loop 14.0" in text
    assert "+re-id" in format_throughput({**result, "reid": True})
