"""Test session fixtures: the real embedded stack, started once per session.

``stack`` starts Kafka, Redis, Triton and Prometheus with the same code as
``argus stack up`` (reusing servers that are already running), and yields Settings
whose topics carry a per-session prefix and whose Redis database is one claimed by this
session alone (:func:`claim_redis_db`) and flushed, so runs never see each other's data.
Servers this session started are stopped at its end (set ARGUS_KEEP_STACK=1 to keep them).
"""

from __future__ import annotations

import contextlib
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

from argus.settings import REPO_ROOT, Settings, get_settings
from argus.topology import Topology, load_topology
from tools import stack as embedded

TEST_TOPOLOGY = Path(__file__).parent / "topology.yaml"

# Tests publish frames faster than a cold 2-core test machine detects them, and count every
# one: no stale-frame skipping in the workers they start (test_stale_frames tests it).
os.environ.setdefault("ARGUS_DETECT_MAX_AGE_S", "0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TEST_REDIS_DBS = range(1, 16)
"""Redis databases test sessions may claim (0 is the demo's)."""
SESSION_LOCK = "argus:test-session"


def claim_redis_db(redis_base: str, session: str) -> int:
    """The first database of :data:`TEST_REDIS_DBS` no other test session holds, claimed
    for ``session`` (a lock key that expires after 2 h, longer than any suite) and
    flushed; two test sessions on one machine never share one."""
    for db in TEST_REDIS_DBS:
        client = redis.Redis.from_url(f"{redis_base}/{db}")
        if client.set(SESSION_LOCK, session, nx=True, ex=7200):
            pipe = client.pipeline(transaction=True)  # flush and re-lock in one step
            pipe.flushdb()
            pipe.set(SESSION_LOCK, session, ex=7200)
            pipe.execute()
            return db
    raise RuntimeError(f"every test Redis database ({TEST_REDIS_DBS}) is held by a session")


TEST_LOG_KEEP_S = 24 * 3600
"""Test process logs (``<stack dir>/test-*.log``) older than this are removed when a session
starts; a session running beside this one keeps its own (they are newer)."""


def prune_test_logs(folder: Path, now: float, keep_s: float = TEST_LOG_KEEP_S) -> int:
    """Remove ``test-*.log`` files in ``folder`` not written for ``keep_s``; how many went."""
    removed = 0
    for path in folder.glob("test-*.log"):
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime > keep_s:
                path.unlink()
                removed += 1
    return removed


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    base = get_settings()
    started = embedded.up(base)
    prune_test_logs(base.stack_dir, time.time())
    session = uuid.uuid4().hex[:8]
    redis_base = base.redis_url.rsplit("/", 1)[0]
    db = claim_redis_db(redis_base, session)
    settings = Settings(
        topic_prefix=f"t{session}.",
        app_id=f"argus-test-{session}",
        redis_url=f"{redis_base}/{db}",
        topology=TEST_TOPOLOGY,
    )
    embedded.create_topics(settings)
    yield settings
    with contextlib.suppress(Exception):  # a broker left with every session's partitions
        embedded.delete_topics(settings)  # restarts slowly (16k partitions: minutes)
    lock = redis.Redis.from_url(settings.redis_url)
    if lock.get(SESSION_LOCK) == session.encode():
        lock.delete(SESSION_LOCK)
    if started and not os.environ.get("ARGUS_KEEP_STACK"):
        embedded.down(base, started)


@pytest.fixture(scope="session")
def topology(stack: Settings) -> Topology:
    return load_topology(stack.topology, stack.shared)


def start_worker(settings: Settings, *args: str, log_path: Path | None = None,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m pipelines`` (with ``args``, e.g. ``--stages detect``) on ``settings``'
    topics and the extra environment ``env``, once its health endpoint answers; returns
    the process and its metrics port. Its output goes to ``log_path`` (default: the
    app id's worker log in the stack folder)."""
    port = free_port()
    log_path = log_path or settings.stack_dir / f"test-worker-{settings.app_id}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines", "--metrics-port", str(port),
                                 *args], cwd=REPO_ROOT,
                                env={**os.environ, **settings.to_env(), **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"worker did not start: {log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def worker(stack: Settings) -> Iterator[int]:
    """The stream workers (``python -m pipelines``) for this session's topics; yields the
    metrics port."""
    proc, port = start_worker(stack)
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
