"""Grafana provisioning and dashboards: structure, PromQL syntax, metric names.

Grafana itself cannot run here, so every dashboard is checked structurally (uid, title,
panels with targets with an expression, the provisioned datasource), every expression is
parsed by Prometheus' own parser (``promtool check rules`` on a generated rules file),
and the metric names the expressions use are extracted here: the integration test
``tests/integration/test_observability.py`` compares them with real scrapes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from argus.settings import REPO_ROOT

GRAFANA = REPO_ROOT / "ops" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO_ROOT / "ops" / "prometheus" / "rules").glob("*.yml"))
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}

PROMETHEUS_BUILTINS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
                                 "scrape_samples_scraped", "scrape_series_added"})
"""Series Prometheus makes itself (not exported by any process)."""

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                       "and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN"})
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(\s*\()?")
_GRAFANA_VAR = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_LABEL_VALUES = re.compile(r"\s*label_values\((.+),\s*\w+\s*\)\s*")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count"),
             "counter": ("",), "gauge": ("",), "untyped": ("",), "unknown": ("",)}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables by values Prometheus accepts.

    >>> grafana_to_promql('rate(x{camera=~"$camera"}[$__rate_interval])')
    'rate(x{camera=~".*"}[1m])'
    """
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    return _GRAFANA_VAR.sub(".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a ``label_values`` query) selects."""
    match = _LABEL_VALUES.fullmatch(expr)
    if match:
        expr = match.group(1)
    text = _STRING.sub('""', grafana_to_promql(expr))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name, call in _IDENT.findall(text) if not call and name not in _KEYWORDS}


def exported_names(scrape: str) -> set[str]:
    """Every series name a Prometheus text scrape exports, with histogram and summary
    suffixes, including labelled metrics that have no sample yet (``# TYPE`` lines).

    >>> sorted(exported_names("# TYPE h histogram\\n# TYPE c_total counter\\nc_total 1\\n"))
    ['c_total', 'h_bucket', 'h_count', 'h_sum']
    """
    names: set[str] = set()
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.update(name + suffix for suffix in _SUFFIXES.get(kind.strip(), ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def recorded_names() -> set[str]:
    """Names of the recording rules (dashboards may use them)."""
    return {rule["record"] for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and variable queries."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def all_expressions() -> list[str]:
    return [e for path in DASHBOARD_FILES for e in expressions(load(path))]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (camera) (rate(argus_frames_published_total{camera=~"$camera"}'
         "[$__rate_interval]))", {"argus_frames_published_total"}),
        ("histogram_quantile(0.95, sum by (stage, le) "
         "(rate(argus_stage_latency_seconds_bucket[5m])))", {"argus_stage_latency_seconds_bucket"}),
        ("sum(rate(a_sum[1m])) by (le) / sum(rate(a_count[1m])) by (le) * 60",
         {"a_sum", "a_count"}),
        ('count(up{job=~"argus-.*|triton"} == 0) or vector(0)', {"up"}),
        ('ALERTS{alertstate="firing"}', {"ALERTS"}),
        ("rate(x_total[1d] offset 10m) / 1e6", {"x_total"}),
        ("argus:capture_to_alert_slo:error_ratio_rate1h > (14.4 * 0.05)",
         {"argus:capture_to_alert_slo:error_ratio_rate1h"}),
        ("a unless on (stage, reason) b and ignoring(x) c", {"a", "b", "c"}),
        ("label_values(argus_camera_seconds_since_last_frame, camera)",
         {"argus_camera_seconds_since_last_frame"}),
        ('x{reason="by (rate) and or"}', {"x"}),
        ("time() - argus_lag_exporter_last_success_timestamp_seconds > bool 60",
         {"argus_lag_exporter_last_success_timestamp_seconds"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_dashboard_of_the_issue_exists() -> None:
    uids = [load(p)["uid"] for p in DASHBOARD_FILES]
    assert sorted(uids) == ["argus-alerts", "argus-fleet", "argus-inference", "argus-stages"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = load(path)
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"].startswith("Argus / ")
    assert "argus" in dashboard["tags"]
    panels = dashboard["panels"]
    assert len(panels) >= 5
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        where = f"{path.name} panel {panel.get('id')} {panel.get('title')!r}"
        assert panel["title"] and panel["type"] in {"timeseries", "stat", "table", "gauge"}, where
        assert panel["datasource"] == DATASOURCE, where
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, where
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, where
        targets = panel["targets"]
        assert targets, where
        assert len({t["refId"] for t in targets}) == len(targets), where
        for target in targets:
            assert target["expr"].strip(), where
            assert target["datasource"] == DATASOURCE, where
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE


def test_expressions_parse_as_promql(tmp_path: Path) -> None:
    """Prometheus' own parser: each expression becomes a recording rule for promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run make bootstrap")
    exprs = [grafana_to_promql(e) for e in all_expressions()
             if not _LABEL_VALUES.fullmatch(e)]
    assert len(exprs) >= 40
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_used_by_dashboards_exist() -> None:
    used = {n for e in all_expressions() for n in metric_names(e) if ":" in n}
    assert used, "the dashboards use no recording rule"
    assert used <= recorded_names(), used - recorded_names()


def test_provisioning_matches_the_dashboards_and_compose() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [(d["uid"], d["type"]) for d in datasources] == [("prometheus", "prometheus")]
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "argus.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert f"./ops/grafana/dashboards:{provider['options']['path']}:ro" in volumes
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
