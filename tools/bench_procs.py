"""The processes and scratch resources of ``argus bench live``: child processes started
and stopped, a Redis database of its own, the topics it made, the versions it reports."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import redis

from argus.settings import REPO_ROOT, Settings

REDIS_LOCK = "argus:test-session"  # the test sessions' lock: never share a database
STOP_GRACE_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def claim_redis_db(base_url: str, token: str, ttl_s: int) -> int:
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{base_url}/{db}")
        if client.set(REDIS_LOCK, token, nx=True, ex=ttl_s):
            client.flushdb()
            client.set(REDIS_LOCK, token, ex=ttl_s)
            return db
    raise RuntimeError("every Redis database 1-15 is held by a test session or bench")


class Children:
    """The processes this run started, stopped in reverse order: SIGTERM, then SIGKILL."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], health_port: int) -> None:
        with open(self.workdir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, *args], cwd=REPO_ROOT, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self.check()
            with contextlib.suppress(OSError):
                get(f"http://127.0.0.1:{health_port}/healthz", 1)
                return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not healthy after 90 s; see {self.workdir}/{name}.log")

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}); see "
                                   f"{self.workdir}/{name}.log")

    def stop_one(self, name: str) -> None:
        """Stop one child (SIGTERM, then SIGKILL after the grace period) and forget it."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in reversed(self.procs.values()):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def versions(settings: Settings) -> dict[str, str | None]:
    """Python, Kafka (jar), faust, kafka-python, onnxruntime (Triton's venv), Triton."""
    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    kafka = sorted((settings.cache_dir / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    ort = sorted((REPO_ROOT / ".venv-triton").glob("lib/python*/site-packages/"
                                                  "onnxruntime-*.dist-info"))
    triton = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        triton = json.loads(get(f"http://127.0.0.1:{settings.triton_http_port}/v2"))["version"]
    return {"python": platform.python_version(),
            "kafka": kafka[-1].stem.split("-", 1)[1] if kafka else None,
            "faust-streaming": dist("faust-streaming"), "kafka-python": dist("kafka-python"),
            "onnxruntime_triton": (ort[-1].name.removesuffix(".dist-info").split("-")[1]
                                   if ort else None),
            "tritonserver": triton}
