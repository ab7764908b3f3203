"""The embedded stack: idempotent up, topics from the spec, crash detection."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from argus.settings import REPO_ROOT, Settings, get_settings
from tests.conftest import free_port
from tools import stack as embedded

pytestmark = pytest.mark.integration


def test_second_up_is_harmless_and_all_servers_run(stack: Settings) -> None:
    assert embedded.up(get_settings()) == []
    states = {s.name: s.state for s in embedded.status(get_settings())}
    assert states == {"redis": "running", "mosquitto": "running", "kafka": "running",
                      "triton": "running", "prometheus": "running"}


def test_the_model_repository_root_holds_only_models_and_shared_files(stack: Settings) -> None:
    # Triton (up and READY here: every model.py has imported argus_backend.py) takes every
    # folder at the root for a model; a __pycache__ there would stop its next start
    root = REPO_ROOT / "triton_models"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "anomaly", "detector", "faces", "plates", "pose"]


def test_topics_follow_the_spec(stack: Settings) -> None:
    spec = embedded.load_topic_spec()
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(
            [stack.topic(name) for name in spec])}
        for name, conf in spec.items():
            assert len(described[stack.topic(name)]["partitions"]) == conf["partitions"]
        resource = ConfigResource(ConfigResourceType.TOPIC, stack.topic("frames.raw"))
        response = admin.describe_configs([resource])
        configs = response["topic"][stack.topic("frames.raw")]
        assert configs["max.message.bytes"]["value"] == "8388608"
        assert configs["retention.ms"]["value"] == "600000"
    finally:
        admin.close()
    assert embedded.create_topics(stack) == []  # idempotent


def test_a_runs_own_topics_are_deleted_and_no_other(stack: Settings) -> None:
    """``own_topics``: a test's, bench's or evaluation's topics (its prefix, its Faust app's)
    are gone when it ends; the session's stay; without a prefix nothing is deleted."""
    tag = uuid.uuid4().hex[:8]
    own = stack.model_copy(update={"topic_prefix": f"{stack.topic_prefix}own{tag}.",
                                   "app_id": f"argus-own-{tag}"})
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        faust_topic = f"{own.app_id}-tracker-state-changelog"
        with embedded.own_topics(own):
            admin.create_topics([NewTopic(faust_topic, num_partitions=1, replication_factor=1)])
            deadline = time.monotonic() + 30  # listed once the broker's metadata has it
            while faust_topic not in admin.list_topics() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert own.topic("frames.raw") in admin.list_topics()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = [t for t in admin.list_topics()
                    if t.startswith(own.topic_prefix) or t == faust_topic]
            if not left:
                break
            time.sleep(0.5)
        assert left == []
        assert stack.topic("frames.raw") in admin.list_topics()
    finally:
        admin.close()
    with pytest.raises(ValueError, match="prefix"):
        embedded.delete_topics(stack.model_copy(update={"topic_prefix": ""}))


def test_a_crashed_server_is_reported_and_restarted(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert embedded.up(settings, ["redis"]) == ["redis"]
    server = embedded.Redis(settings)
    pid = server.pid()
    assert pid is not None and server.status().state == "running"
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert server.status().state == "crashed"
    assert embedded.up(settings, ["redis"]) == ["redis"]
    assert server.status().state == "running"
    embedded.down(settings, ["redis"])
    assert server.status().state == "stopped"


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    base = get_settings()
    settings = Settings(stack_dir=tmp_path, redis_url=base.redis_url)
    with pytest.raises(embedded.StackError,
                       match=r"port \d+ is taken \(.*LISTEN by pid \d+ \(.*redis-server"):
        embedded.up(settings, ["redis"])
