"""The embedded stack: real Kafka (KRaft), Redis, Triton and Prometheus as local processes.

``argus stack up`` starts whichever servers are not running (a second ``up`` is
harmless), waits until each is healthy and creates the topics from
``ops/topics.yaml``; ``down`` stops them; ``status`` reports running / stopped /
crashed. Everything lives under ``settings.stack_dir`` (git-ignored): per server a
``pid`` file, a ``server.log`` and its data. The test session uses the same code.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from argus.log import get_logger
from argus.settings import REPO_ROOT, Settings
from tools.ports import ephemeral_unreserved
from tools.server_base import Server, ServerStatus, StackError
from tools.servers import SERVERS, Kafka, Mosquitto, Prometheus, Redis, Triton

__all__ = ["Kafka", "Mosquitto", "Prometheus", "Redis", "Server", "ServerStatus", "StackError",
           "Triton", "create_topics", "delete_topics", "down", "load_topic_spec", "own_topics",
           "servers", "status", "up"]

log = get_logger(__name__)

TOPICS_FILE = REPO_ROOT / "ops" / "topics.yaml"


def servers(settings: Settings, only: list[str] | None = None) -> list[Server]:
    names = only or list(SERVERS)
    unknown = set(names) - set(SERVERS)
    if unknown:
        raise StackError(f"unknown server(s): {', '.join(sorted(unknown))}")
    return [SERVERS[name](settings) for name in names]


def up(settings: Settings, only: list[str] | None = None) -> list[str]:
    """Start every server that is not running, wait for health, create topics.

    Returns the names of the servers this call started (empty if all were up).
    """
    started: list[str] = []
    chosen = servers(settings, only)
    risky = ephemeral_unreserved([port for server in chosen for port in server.ports])
    if risky:
        log.warning("stack ports inside the kernel's ephemeral range: a client's outgoing "
                    "connection can take one while its server is down, and the server then "
                    "cannot restart; move them below it or reserve them "
                    "(sysctl net.ipv4.ip_local_reserved_ports)", extra={"ports": risky})
    for server in chosen:
        status = server.status()
        if status.state == "running":
            continue
        if status.state in ("crashed", "unhealthy"):
            log.warning("server was %s; restarting", status.state,
                        extra={"server": server.name, "log_tail": status.detail})
            server.stop(timeout_s=10)
        server.start()
        started.append(server.name)
    for server in chosen:
        if server.name in started:
            server.wait_healthy()
    if any(s.name == "kafka" for s in chosen):
        create_topics(settings)
    return started


def down(settings: Settings, only: list[str] | None = None) -> None:
    """Stop the servers (Prometheus and Triton first, Kafka last)."""
    for server in reversed(servers(settings, only)):
        server.stop()
        log.info("server stopped", extra={"server": server.name})


def status(settings: Settings) -> list[ServerStatus]:
    return [server.status() for server in servers(settings)]


def load_topic_spec(path: Path = TOPICS_FILE) -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load(path.read_text())
    topics: dict[str, dict[str, Any]] = spec["topics"]
    return topics


def _wait_for_leaders(admin: Any, topics: list[str], timeout_s: float = 30.0) -> None:
    """Wait until every partition of ``topics`` has a leader: a consumer that subscribes
    earlier (a worker started right after ``up``) may miss them until its next metadata
    refresh, minutes later."""
    deadline = time.monotonic() + timeout_s
    missing = topics
    while time.monotonic() < deadline:
        described = admin.describe_topics(topics)
        missing = [t["name"] for t in described if t.get("error_code") or not t["partitions"]
                   or any(p.get("leader_id", -1) < 0 for p in t["partitions"])]
        if not missing:
            return
        time.sleep(0.2)
    raise StackError(f"topics without partition leaders after {timeout_s:.0f}s: {missing}")


def create_topics(settings: Settings, spec_path: Path = TOPICS_FILE) -> list[str]:
    """Create the missing topics of the spec (with the settings' prefix); returns new names."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    spec = load_topic_spec(spec_path)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(settings.topic(name), num_partitions=int(conf.get("partitions", 6)),
                     replication_factor=1,
                     topic_configs={k: str(v) for k, v in conf.get("config", {}).items()})
            for name, conf in spec.items() if settings.topic(name) not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new, timeout_ms=30000)
        created = [t.name for t in new]
        if created:
            log.info("topics created", extra={"topics": created})
        _wait_for_leaders(admin, [settings.topic(name) for name in spec])
        return created
    finally:
        admin.close()


def delete_topics(settings: Settings, app_ids: Iterable[str] = ()) -> list[str]:
    """Delete the topics of a run of its own: those named with ``settings.topic_prefix``,
    and the Faust topics (changelogs, the assignor's) of ``settings.app_id`` and of
    ``app_ids``. Tests, benchmarks and evaluations call it when they end: a broker that keeps
    every run's partitions restarts slowly and idles busier. Refused without a prefix: the
    unprefixed topics are the deployment's own."""
    from kafka import KafkaAdminClient

    if not settings.topic_prefix:
        raise ValueError("delete_topics needs a topic prefix: the unprefixed topics are the "
                         "deployment's")
    owners = tuple(f"{app_id}-" for app_id in {settings.app_id, *app_ids})
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        ours = [t for t in admin.list_topics()
                if t.startswith(settings.topic_prefix) or t.startswith(owners)]
        if ours:
            admin.delete_topics(ours, raise_errors=False)
        return ours
    finally:
        admin.close()


@contextlib.contextmanager
def own_topics(settings: Settings, app_ids: Iterable[str] = ()) -> Iterator[Settings]:
    """The spec's topics under ``settings``' prefix for the length of the block, deleted
    at its end with those of ``settings.app_id`` and ``app_ids`` (:func:`delete_topics`;
    a broker that is gone by then is not an error)."""
    create_topics(settings)
    try:
        yield settings
    finally:
        with contextlib.suppress(Exception):
            delete_topics(settings, app_ids)
