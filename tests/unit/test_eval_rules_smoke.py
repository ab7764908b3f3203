"""The measured rule replays on a slice (the full run is ``python -m tools.eval_rules``),
and their scoring as a table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.stages.correlate.rules import AlertChange, ChangeKind
from schemas.alerts import Alert, Severity
from tools.eval_rules import main
from tools.eval_rules_fire import T0, SmokeRow, episodes_of, read_smoke, score_fire


def test_replay_slice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    # rows 49000-51999 hold the end of one labelled fire and a whole one with smoke
    assert main(["--start", "49000", "--limit", "3000", "--kasteren-limit", "300",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    fire = report["fire"]
    assert (fire["rows"], fire["fire_rows"]) == (3000, 2111)
    combined, smoke_only, heat_only, always = fire["variants"]
    assert always["rule"] == "baseline: always alerting" and always["open"]["recall"] == 1.0
    assert combined["rule"].startswith("fire (smoke + temperature rise)")
    assert combined["alerts"] >= 1 and combined["alerts_on_fire"] == combined["alerts"]
    assert combined["open"]["precision"] >= 0.8
    assert 0.3 <= combined["open"]["recall"] <= 0.7
    assert heat_only["open"]["recall"] > combined["open"]["recall"]
    assert smoke_only["alerts"] >= 1
    after = report["after_hours"]
    assert (after["events"], after["days"]) == (300, 2)
    assert [d["day"] for d in after["per_day"]] == ["2008-02-25", "2008-02-26"]
    assert sum(d["events"] for d in after["per_day"]) == 300
    assert 0 < after["alerts"] < after["triggers"]  # the cool-down de-duplicates
    printed = capsys.readouterr().out
    assert "fire rule on 3000 smoke-detection rows" in printed
    assert json.loads(printed.strip().splitlines()[-1]) == report


def test_header_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "smoke.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected columns"):
        read_smoke(bad)


def _rows(labels: str) -> list[SmokeRow]:
    return [SmokeRow(i, 20.0, 50.0, 400.0, c == "1") for i, c in enumerate(labels)]


def _change(first: float, last: float) -> AlertChange:
    alert = Alert(alert_id=f"a{first}", rule="fire", title="t", severity=Severity.HIGH,
                  site_id="lab", zone_id="room", lat=0, lon=0, first_seen=T0 + first,
                  last_seen=T0 + last, evidence=[], created_at=0)
    return AlertChange(change=ChangeKind.OPENED, alert=alert, actions=[])


@pytest.mark.parametrize(
    ("labels", "spans", "precision", "recall", "alerts_on_fire", "episodes", "delay"),
    [
        # 4 windows of 2 s: fire, fire, calm, calm
        ("11110000", [(0, 3)], 1.0, 1.0, 1, "1/1", 0.0),
        ("11110000", [(2, 5)], 0.5, 0.5, 1, "1/1", 2.0),
        ("11110000", [(6, 7)], 0.0, 0.0, 0, "0/1", None),
        ("11110000", [], 0.0, 0.0, 0, "0/1", None),
        ("00000011", [(0, 0), (6, 6)], 0.5, 1.0, 1, "1/1", 0.0),
    ],
)
def test_scoring(labels: str, spans: list[tuple[float, float]], precision: float,
                 recall: float, alerts_on_fire: int, episodes: str, delay: float | None
                 ) -> None:
    rows = _rows(labels)
    score = score_fire(rows, [_change(a, b) for a, b in spans], window_s=2)
    assert (score["open"]["precision"], score["open"]["recall"]) == (precision, recall)
    assert score["alerts_on_fire"] == alerts_on_fire
    assert f"{score['episodes_detected']}/{score['episodes']}" == episodes
    assert score["median_delay_s"] == delay
    assert episodes_of(_rows("0110111"), min_s=3) == [(T0 + 4, T0 + 6)]
