"""What every server of the embedded stack shares: a process with its files under
``settings.stack_dir/<name>`` (``pid``, ``server.log``, data), started in its own session,
waited for until healthy, stopped by process group (see ``tools.servers`` for the servers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass

from argus.log import get_logger
from argus.settings import Settings
from tools.ports import port_free, port_holder

log = get_logger(__name__)


class StackError(RuntimeError):
    """A server of the embedded stack could not be started or is unhealthy."""


@dataclass(frozen=True)
class ServerStatus:
    name: str
    state: str  # running | stopped | crashed | unhealthy
    pid: int | None
    detail: str = ""


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/bin")
    if not found:
        raise StackError(f"{name} is not installed: run `make bootstrap` (ops/bootstrap.sh)")
    return found


class Server(ABC):
    """One server process of the stack."""

    name: str = ""
    start_timeout_s: float = 60.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.stack_dir / self.name
        self.pid_file = self.dir / "pid"
        self.log_file = self.dir / "server.log"

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def healthy(self) -> bool: ...

    @property
    @abstractmethod
    def ports(self) -> list[int]: ...

    def prepare(self) -> None:  # noqa: B027 - optional hook, most servers need none
        """Write config files / format storage before the first start."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def status(self) -> ServerStatus:
        pid = self.pid()
        if pid is None:
            return ServerStatus(self.name, "stopped", None)
        if not alive(pid):
            return ServerStatus(self.name, "crashed", pid, self.log_tail())
        if not self.healthy():
            return ServerStatus(self.name, "unhealthy", pid, self.log_tail())
        return ServerStatus(self.name, "running", pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        """Start the process (not waiting for health)."""
        for port in self.ports:
            if not port_free(port):
                raise StackError(
                    f"{self.name}: port {port} is taken ({port_holder(port)}); stop that "
                    "or change the ARGUS_* port settings"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env(), cwd=self.dir, start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        log.info("server starting", extra={"server": self.name, "pid": proc.pid})

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is None or not alive(pid):
                raise StackError(f"{self.name} exited during start; log tail:\n{self.log_tail()}")
            if self.healthy():
                log.info("server ready", extra={"server": self.name, "pid": pid})
                return
            time.sleep(0.5)
        raise StackError(f"{self.name} not healthy after {self.start_timeout_s:.0f}s; "
                         f"log tail:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        pid = self.pid()
        if pid is not None and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(pid):
                log.warning("server did not stop, killing", extra={"server": self.name})
                os.killpg(pid, signal.SIGKILL)
        # a JVM can hold its listening sockets a moment after the process we waited for is
        # gone: a restart right away would find them taken
        deadline = time.monotonic() + 15.0
        while any(not port_free(p) for p in self.ports) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)
