"""Prometheus configs and alert rules: promtool checks, rule unit tests, runbook links.

``promtool check config`` runs on both configs as deployed (the embedded one rendered by
``tools.stack``, so the rules it loads are checked too), ``promtool check rules`` on every
rules file and ``promtool test rules`` on every test file in ``ops/prometheus/tests``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from argus.settings import REPO_ROOT, Settings
from services.lag_exporter import DEFAULT_PORT as LAG_EXPORTER_PORT
from tools.stack import Prometheus

PROM = REPO_ROOT / "ops" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool (installed by ``make bootstrap``) and return the finished process."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool missing: run make bootstrap")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of every rules file."""
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


def anchor(heading: str) -> str:
    """The GitHub anchor of a Markdown heading.

    >>> anchor("Capture-to-alert SLO burn (fast/slow)")
    'capture-to-alert-slo-burn-fastslow'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def doc_anchors() -> set[str]:
    return {anchor(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines()
            if line.startswith("#")}


def render_embedded(tmp_path: Path) -> Path:
    """The embedded config exactly as ``argus stack up`` writes it."""
    settings = Settings(stack_dir=tmp_path)
    server = Prometheus(settings)
    server.dir.mkdir(parents=True, exist_ok=True)
    server.prepare()
    return server.dir / "prometheus.yml"


def render_compose(tmp_path: Path) -> Path:
    """The compose config with the rules mount point mapped to the repository's rules."""
    text = (PROM / "prometheus-compose.yml").read_text()
    text = text.replace("/etc/prometheus/rules/", f"{PROM / 'rules'}/")
    path = tmp_path / "prometheus-compose.yml"
    path.write_text(text)
    return path


def test_there_are_rules_and_rule_tests() -> None:
    assert [p.name for p in RULE_FILES] == ["argus.rules.yml"]
    assert TEST_FILES, "no promtool rule tests in ops/prometheus/tests"


@pytest.mark.parametrize("render", [render_embedded, render_compose], ids=["embedded", "compose"])
def test_config_is_valid_and_loads_every_rules_file(render: Any, tmp_path: Path) -> None:
    path = render(tmp_path)
    text = path.read_text()
    config = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in config if "{{" in line], f"unrendered placeholder:\n{text}"
    result = promtool("check", "config", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for rules in RULE_FILES:
        assert re.search(rf"{re.escape(rules.name)}\s+SUCCESS: \d+ rules found", output), output


def test_both_configs_scrape_the_same_jobs() -> None:
    def jobs(name: str) -> set[str]:
        config = yaml.safe_load((PROM / name).read_text())
        return {job["job_name"] for job in config["scrape_configs"]}

    expected = {"triton", "argus-frame-grabber", "argus-worker", "argus-sensor-gateway",
                "argus-lag-exporter", "argus-alert-api", "argus-notifier", "prometheus"}
    assert jobs("prometheus.yml") == jobs("prometheus-compose.yml") == expected


def test_embedded_config_scrapes_the_lag_exporter_port() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "argus-lag-exporter")
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{LAG_EXPORTER_PORT}"]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rules_pass_promtool_check(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_main_alerts_exist_and_are_unit_tested() -> None:
    main = {"ArgusCameraOffline", "ArgusFrameDropRatioHigh", "ArgusTargetDown",
            "ArgusConsumerLagGrowing", "ArgusDLQRateAboveBaseline", "ArgusTritonErrorRatioHigh",
            "ArgusTritonLatencyHigh", "ArgusCaptureToAlertBudgetBurnFast",
            "ArgusCaptureToAlertBudgetBurnSlow", "ArgusKafkaDiskLow"}
    assert main <= {r["alert"] for r in alert_rules()}
    tested = {case["alertname"] for path in TEST_FILES
              for test in yaml.safe_load(path.read_text())["tests"]
              for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert main <= tested, main - tested


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_summary_and_a_runbook_in_the_docs(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"]
    url = rule["annotations"]["runbook_url"]
    page, _, fragment = url.partition("#")
    assert page == "docs/operations.md"
    assert fragment in doc_anchors(), f"{rule['alert']}: no heading for #{fragment}"
