"""The deployment files are consistent with the code (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from argus.plates.hotlist import KEY_ENV as PLATE_KEY_ENV
from argus.settings import REPO_ROOT, Settings
from argus.watchlist.crypto import KEY_ENV
from schemas import TOPIC_MODELS
from services.notifier.service import NotifierConfig
from tools.stack import load_topic_spec

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_server_and_stage() -> None:
    services = set(COMPOSE["services"])
    assert {"kafka", "redis", "triton", "prometheus", "grafana", "worker", "grabber",
            "sensor-gateway", "topics"} <= services


def test_compose_environment_names_real_settings() -> None:
    fields = {f"ARGUS_{name.upper()}" for name in Settings.model_fields}
    fields |= {f"ARGUS_{name.upper()}" for name in NotifierConfig.model_fields}
    fields.add(KEY_ENV)  # the watchlist key, read only where embeddings are sealed
    fields.add(PLATE_KEY_ENV)  # the plate key, read only where plates are keyed and sealed
    env = COMPOSE["x-argus"]["environment"]
    assert set(env) <= fields, set(env) - fields
    worker = COMPOSE["services"]["worker"]["environment"]
    assert set(worker) <= fields, set(worker) - fields


def test_compose_worker_keeps_the_shared_environment() -> None:
    """The worker's own environment (its static member id) adds to the shared one."""
    worker = COMPOSE["services"]["worker"]["environment"]
    assert {k: v for k, v in worker.items() if k in COMPOSE["x-argus"]["environment"]} == \
        COMPOSE["x-argus"]["environment"]
    assert worker["ARGUS_WORKER_INSTANCE_ID"]


def test_topic_spec_covers_every_contract() -> None:
    assert set(TOPIC_MODELS) <= set(load_topic_spec())


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_prometheus_config_is_valid(config: str, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run make bootstrap")
    text = (REPO_ROOT / "ops" / "prometheus" / config).read_text()
    text = text.replace("{{triton_metrics_port}}", "28002").replace("{{prometheus_port}}",
                                                                     "29090")
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
