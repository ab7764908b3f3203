"""The fire replay of ``tools.eval_rules`` (see its module doc): the smoke-detection
readings (``data/iot/smoke_detection_subset``) as a smoke and a temperature sensor in one
zone, run through the shipped ``fire`` rule, its halves and a threshold sweep, scored
against the ``Fire Alarm`` label over windows, alerts and episodes. Also the replay helper
(:func:`run`) both replays use.
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argus.topology import Topology
from pipelines.stages.correlate.rules import AlertChange, ChangeKind, Rule, RuleEngine
from schemas.alerts import Alert, Severity
from schemas.sensors import SensorEvent, SensorType

SMOKE_CSV = "data/iot/smoke_detection_subset/smoke_detection_iot_4col.csv"
SMOKE_COLUMNS = ("", "Temperature[C]", "Humidity[%]", "eCO2[ppm]", "Fire Alarm")
T0 = 1_700_000_000.0
"""Replay origin of the smoke readings (UTC); row i is at T0 + i seconds."""


# --- replay --------------------------------------------------------------------------


def run(engine: RuleEngine, events: Iterable[SensorEvent]
        ) -> tuple[dict[str, Alert], list[AlertChange]]:
    """Feed events in order (``now`` = event time): the final state of every alert, and
    every change."""
    state: dict[str, Any] = {}
    changes = [c for event in events for c in engine.observe(state, event, event.ts)]
    return {c.alert.alert_id: c.alert for c in changes}, changes


# --- fire ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeRow:
    index: int
    temperature: float
    humidity: float
    eco2: float
    fire: bool


def read_smoke(path: Path, limit: int | None = None, start: int = 0) -> list[SmokeRow]:
    """The smoke-detection rows from row ``start`` (checks the header's columns)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader))
        if header != SMOKE_COLUMNS:
            raise ValueError(f"{path}: expected columns {SMOKE_COLUMNS}, got {header}")
        rows: list[SmokeRow] = []
        for lineno, cells in enumerate(reader, start=2):
            if lineno - 2 < start:
                continue
            if limit is not None and len(rows) >= limit:
                break
            try:
                rows.append(SmokeRow(int(cells[0]), float(cells[1]), float(cells[2]),
                                     float(cells[3]), cells[4].strip() == "1"))
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: bad row: {exc}") from None
    return rows


def smoke_events(rows: Sequence[SmokeRow]) -> Iterator[SensorEvent]:
    """Each row: the smoke sensor (eCO2 ppm) and the temperature sensor, at T0 + row s."""
    for row in rows:
        ts = T0 + row.index
        yield SensorEvent(event_id=f"lab-smoke:{row.index}", sensor_id="lab-smoke",
                          site_id="lab", zone_id="room", type=SensorType.SMOKE,
                          value=row.eco2, ts=ts)
        yield SensorEvent(event_id=f"lab-temp:{row.index}", sensor_id="lab-temp",
                          site_id="lab", zone_id="room", type=SensorType.TEMPERATURE,
                          value=row.temperature, ts=ts)


LAB = Topology.model_validate({
    "sites": [{"id": "lab", "name": "Smoke lab", "lat": 0.0, "lon": 0.0,
               "zones": [{"id": "room"}]}],
    "sensors": [{"id": "lab-smoke", "site": "lab", "zone": "room", "type": "smoke"},
                {"id": "lab-temp", "site": "lab", "zone": "room", "type": "temperature"}],
})


def episodes_of(rows: Sequence[SmokeRow], min_s: float) -> list[tuple[float, float]]:
    """Labelled fire episodes (runs of fire rows at least ``min_s`` long) as (start, end)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for row in [*rows, SmokeRow(rows[-1].index + 1, 0.0, 0.0, 0.0, False)] if rows else []:
        ts = T0 + row.index
        if row.fire and start is None:
            start = ts
        if not row.fire and start is not None:
            if ts - start >= min_s:
                out.append((start, ts - 1))
            start = None
    return out


def _window_scores(windows: dict[int, list[bool]], window_s: float,
                   spans: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Precision/recall over windows: a window is alerted when a span overlaps it."""
    tp = fp = fn = 0
    for w, labels in windows.items():
        lo, hi = T0 + w * window_s, T0 + (w + 1) * window_s
        truth = 2 * sum(labels) > len(labels)
        alerted = any(first < hi and last >= lo for first, last in spans)
        tp, fp, fn = tp + (truth and alerted), fp + (alerted and not truth), fn + (
            truth and not alerted)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "alerted_windows": tp + fp}


def score_fire(rows: Sequence[SmokeRow], changes: Sequence[AlertChange], window_s: float
               ) -> dict[str, Any]:
    """Score the alerts of a replay against the fire label (see the module doc).

    ``open``: windows an alert is open in (its span first..last seen); ``trigger``:
    windows in which the rule (re)confirmed an alert.
    """
    final: dict[str, Alert] = {c.alert.alert_id: c.alert for c in changes}
    spans = sorted((a.first_seen, a.last_seen) for a in final.values())
    triggers = [(c.alert.last_seen, c.alert.last_seen) for c in changes]
    windows: dict[int, list[bool]] = {}
    for row in rows:
        windows.setdefault(int(row.index // window_s), []).append(row.fire)
    episodes = episodes_of(rows, window_s)

    def overlaps(span: tuple[float, float], episode: tuple[float, float]) -> bool:
        return span[0] <= episode[1] and span[1] >= episode[0]

    delays = []
    for episode in episodes:
        starts = [max(s[0], episode[0]) for s in spans if overlaps(s, episode)]
        if starts:
            delays.append(min(starts) - episode[0])
    correct = sum(any(overlaps(s, e) for e in episodes) for s in spans)
    return {
        "windows": len(windows),
        "fire_windows": sum(2 * sum(v) > len(v) for v in windows.values()),
        "open": _window_scores(windows, window_s, spans),
        "trigger": _window_scores(windows, window_s, triggers),
        "alerts": len(spans), "alerts_on_fire": correct,
        "alert_precision": round(correct / len(spans), 4) if spans else 0.0,
        "episodes": len(episodes), "episodes_detected": len(delays),
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "open_fraction": round(sum(b - a for a, b in spans) / max(1, len(rows)), 4),
    }


def fire_variants(fire: Rule) -> dict[str, Rule]:
    """The shipped fire rule and its two halves (smoke only, temperature rise only)."""
    base = fire.model_dump(by_alias=True, exclude_none=True)
    out = {"fire (smoke + temperature rise)": fire}
    for name, keep in (("smoke only", "smoke"), ("temperature rise only", "heat")):
        data = {**base, "id": f"fire_{keep}_only", "anchor": keep,
                "events": [e for e in base["events"] if e["as"] == keep]}
        out[name] = Rule.model_validate(data)
    return out


def always_alerting(rows: Sequence[SmokeRow]) -> AlertChange:
    """The baseline: one alert open over the whole replay."""
    alert = Alert(alert_id="always", rule="always", title="always", severity=Severity.HIGH,
                  site_id="lab", zone_id="room", lat=0.0, lon=0.0,
                  first_seen=T0 + rows[0].index, last_seen=T0 + rows[-1].index, evidence=[],
                  created_at=T0)
    return AlertChange(change=ChangeKind.OPENED, alert=alert, actions=[])


def fire_replay(rows: Sequence[SmokeRow], fire: Rule, window_s: float) -> list[dict[str, Any]]:
    """Score each fire variant on the rows, and the always-alerting baseline."""
    results = []
    for name, rule in fire_variants(fire).items():
        started = time.perf_counter()
        _, changes = run(RuleEngine([rule], LAB), smoke_events(rows))
        score = score_fire(rows, changes, window_s)
        results.append({"rule": name, **score, "changes": len(changes),
                        "replay_s": round(time.perf_counter() - started, 2)})
    if rows:
        baseline = score_fire(rows, [always_alerting(rows)], window_s)
        baseline["trigger"] = baseline["open"]  # it "triggers" in every window
        results.append({"rule": "baseline: always alerting", **baseline})
    return results


def fire_sweep(rows: Sequence[SmokeRow], fire: Rule, window_s: float,
               smoke_ppm: Sequence[float], rise_by: Sequence[float]) -> list[dict[str, Any]]:
    """The combined rule at other smoke and rise thresholds (a sensitivity table on the
    same data, not a held-out estimate)."""
    base = fire.model_dump(by_alias=True, exclude_none=True)
    results = []
    for ppm in smoke_ppm:
        for by in rise_by:
            events = []
            for event in base["events"]:
                event = json.loads(json.dumps(event))
                for alt in event.get("any_of", []):
                    if "value" in alt:
                        alt["value"] = {"gte": ppm}
                if "rise" in event:
                    event["rise"]["by"] = by
                events.append(event)
            rule = Rule.model_validate({**base, "events": events})
            _, changes = run(RuleEngine([rule], LAB), smoke_events(rows))
            results.append({"rule": f"smoke >= {ppm:g} ppm, rise >= {by:g} C",
                            **score_fire(rows, changes, window_s)})
    return results


def flat_row(result: dict[str, Any]) -> dict[str, Any]:
    """One table row of a fire score."""
    return {"rule": result["rule"],
            **{f"{k}_{m}": result[k][m] for k in ("open", "trigger")
               for m in ("precision", "recall", "f1")},
            "alerts": result["alerts"], "on_fire": result["alerts_on_fire"],
            "episodes": f"{result['episodes_detected']}/{result['episodes']}",
            "delay_s": result["median_delay_s"], "open_frac": result["open_fraction"]}
