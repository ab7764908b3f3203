"""``make bench`` in smoke mode: it runs and prints sane figures (not a timing assertion)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.settings import Settings
from tools.bench import main

pytestmark = pytest.mark.integration


def test_bench_smoke(stack: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--frames", "20", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 20
    assert result["pipeline"]["frames"] == 20 and result["pipeline"]["fps"] > 0
    assert result["pipeline_from_jpegs"]["frames"] == 20
    assert result["pipeline_from_jpegs"]["cpu_ms_per_frame"]["bench (publisher)"] >= 0
    assert result["plain_loop"]["fps"] > 0 and result["ratio_pipeline_to_plain"] > 0
    assert result["ratio_from_jpegs_to_plain"] > 0
    assert "ratio pipeline/plain" in capsys.readouterr().out
