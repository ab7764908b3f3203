"""CI smoke run of ``tools.eval_faces`` through the real Triton ``faces`` model.

A subset of the deepface set (the first three identities, 23 photos) with accuracy floors
well below what the full set measures (docs/faces.md), so the check is stable yet catches a
broken alignment, preprocessing or model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.settings import Settings
from tools import eval_faces

pytestmark = pytest.mark.integration


def test_eval_faces_subset_via_triton(stack: Settings, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    data = stack.shared / "data" / "faces" / "deepface"
    out = tmp_path / "faces.json"
    code = eval_faces.main([
        "--folder", str(data), "--identities", str(data / "identities_derived.csv"),
        "--pairs", str(data / "master.csv"), "--max-identities", "3", "--json", str(out),
        "--match-sizes", "10,1000",
    ])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["via"] == "triton" and report["photos"] == 23
    assert report["embedded"] == 23 and report["no_face"] == []
    verification = report["all_pairs"]
    assert verification["genuine_pairs"] == 28 + 28 + 21  # C(8,2) + C(8,2) + C(7,2)
    assert verification["auc"] >= 0.9
    assert verification["far_1pct"]["tar"] >= 0.6
    assert 0.4 <= verification["far_1pct"]["threshold"] <= 0.85
    assert report["identification"]["probes"] == 20
    assert report["identification"]["rank1"] >= 0.8
    assert report["pairs"]["genuine_pairs"] > 0 and report["pairs"]["auc"] >= 0.9
    assert report["speed"]["faces"] >= 23 and report["speed"]["faces_per_s"] > 0.5
    assert [c["identities"] for c in report["match_cost"]] == [10, 1000]
    table = capsys.readouterr().out
    assert "ROC AUC" in table and "rank-1" in table and "TAR @ FAR 1%" in table
