"""Test session fixtures: the real embedded stack, started once per session.

``stack`` starts Kafka, Redis, Triton and Prometheus with the same code as
``argus stack up`` (reusing servers that are already running), and yields Settings
whose topics carry a per-session prefix and whose Redis database is a flushed test
database, so runs never see each other's data. Servers this session started are
stopped at its end (set ARGUS_KEEP_STACK=1 to keep them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from argus import stack as embedded
from argus.settings import REPO_ROOT, Settings, get_settings
from argus.topology import Topology, load_topology

TEST_TOPOLOGY = Path(__file__).parent / "topology.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    base = get_settings()
    started = embedded.up(base)
    redis_base = base.redis_url.rsplit("/", 1)[0]
    settings = Settings(
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        app_id=f"argus-test-{uuid.uuid4().hex[:8]}",
        redis_url=f"{redis_base}/1",
        topology=TEST_TOPOLOGY,
    )
    embedded.create_topics(settings)
    redis.Redis.from_url(settings.redis_url).flushdb()
    yield settings
    if started and not os.environ.get("ARGUS_KEEP_STACK"):
        embedded.down(base, started)


@pytest.fixture(scope="session")
def topology(stack: Settings) -> Topology:
    return load_topology(stack.topology, stack.shared)


@pytest.fixture(scope="session")
def worker(stack: Settings) -> Iterator[int]:
    """The stream workers (``python -m pipelines``) for this session's topics; yields the
    metrics port."""
    port = free_port()
    log_path = stack.stack_dir / f"test-worker-{stack.app_id}.log"
    env = {**os.environ, **stack.to_env()}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines", "--metrics-port", str(port)],
                                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    yield port
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text scrape (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        got = ",".join(sorted(p for p in label_text.rstrip("}").split(",") if p))
        if got == want:
            return float(value)
    return 0.0
