"""The evaluation metrics of ``tools.eval_faces`` against hand-computed tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tools.eval_faces import (
    all_pair_scores,
    identification,
    match_cost,
    read_identities,
    read_pairs,
    roc_auc,
    tar_at_far,
)


@pytest.mark.parametrize(
    ("genuine", "impostor", "auc"),
    [
        ([0.9, 0.8], [0.1, 0.2], 1.0),
        ([0.1, 0.2], [0.9, 0.8], 0.0),
        ([0.5], [0.5], 0.5),  # a tie counts half
        ([0.9, 0.8], [0.1, 0.85], 0.75),
        ([0.3, 0.6, 0.9], [0.2, 0.4, 0.7, 0.8], 7 / 12),
    ],
)
def test_roc_auc(genuine: list[float], impostor: list[float], auc: float) -> None:
    assert roc_auc(genuine, impostor) == pytest.approx(auc)


def test_roc_auc_of_nothing_is_nan() -> None:
    assert math.isnan(roc_auc([], [0.1]))


@pytest.mark.parametrize(
    ("far", "tar", "threshold", "measured", "limited"),
    [
        (0.2, 0.8, 0.50, 0.2, False),  # 2 of 10 impostors allowed: above the 3rd best (0.5)
        (0.1, 0.5, 0.60, 0.1, False),  # 1 allowed: above 0.6
        (0.01, 0.2, 0.90, 0.0, True),  # 0 allowed, and 1 % of 10 cannot be measured
    ],
)
def test_tar_at_far(far: float, tar: float, threshold: float, measured: float,
                    limited: bool) -> None:
    genuine = [0.95, 0.92, 0.85, 0.7, 0.65, 0.55, 0.52, 0.51, 0.3, 0.2]
    impostor = [0.0, 0.1, 0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6, 0.9]
    result = tar_at_far(genuine, impostor, far)
    assert result["tar"] == pytest.approx(tar)
    assert result["threshold"] == pytest.approx(threshold, abs=1e-5)
    assert result["far"] == pytest.approx(measured)
    assert result["limited"] is limited and result["impostors"] == 10


def test_all_pair_scores_and_identification() -> None:
    e = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], np.float64)
    ids = ["a", "a", "b", "b"]
    genuine, impostor = all_pair_scores(e, ids)
    np.testing.assert_allclose(sorted(genuine), [0.8, 0.8])
    np.testing.assert_allclose(sorted(impostor), [0.0, 0.6, 0.6, 0.96])
    result = identification(e, ids, threshold=0.85)
    # probes: row 1 (a) → best gallery row 0 (0.8) vs row 2 (0.6): correct, below 0.85;
    # row 3 (b) → row 0 (0.6) vs row 2 (0.8): correct, below 0.85
    assert result == {"gallery": 2, "probes": 2, "rank1": 1.0, "open_set_hit_rate": 0.0}
    assert identification(e, ids, threshold=0.5)["open_set_hit_rate"] == 1.0


def test_read_identities_and_pairs(tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("file,identity_group\nimg1.jpg,G00\nimg2.jpg, G00\n\nimg3.jpg,G01\n")
    assert read_identities(ids) == [("img1.jpg", "G00"), ("img2.jpg", "G00"),
                                    ("img3.jpg", "G01")]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_x,file_y,Decision\na.jpg,b.jpg,Yes\na.jpg,c.jpg,No\nb,c,1\n")
    assert read_pairs(pairs) == [("a.jpg", "b.jpg", True), ("a.jpg", "c.jpg", False),
                                 ("b", "c", True)]
    pairs.write_text("file_x,file_y,Decision\na.jpg,b.jpg,maybe\n")
    with pytest.raises(ValueError, match=r"pairs\.csv:2: decision 'maybe'"):
        read_pairs(pairs)


def test_match_cost_reports_every_size() -> None:
    costs = match_cost([10, 2000], repeats=2)
    assert [c["identities"] for c in costs] == [10, 2000]
    assert costs[1]["matrix_mb"] == pytest.approx(2000 * 512 * 4 / 2**20)
    assert all(c["ms_per_probe"] > 0 for c in costs)
