"""The worker process: a graceful stop with a deadline, JSON logs after Faust configured its
own, and its static group membership.

On SIGTERM/SIGINT Faust stops its services one by one, and each may wait up to a minute
(mode's ``shutdown_timeout``) on a Kafka client that cannot reach the broker: with Kafka
down a worker took 60 s to stop when idle and over two minutes with a backlog. A stop must
be bounded whatever is down, so :class:`DeadlineWorker` starts a timer when the stop begins
and, if the process is still stopping ``settings.worker_stop_timeout_s`` later, logs why and
ends it with ``os._exit``.

Ending it then loses nothing: the runner acknowledges a record only after its outputs were
acknowledged by the broker (pipelines/runner.py), so whatever was in flight or unsent is
uncommitted and is redelivered to the next worker (at-least-once; every sink is
idempotent). Faust's own commit at stop only commits acknowledged records, which the
deadline cannot make wrong; it can only leave them to be redelivered.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, ClassVar

import faust

from argus.log import get_logger, setup_logging
from argus.settings import Settings

log = get_logger(__name__)

EXIT_STOP_DEADLINE = 3
"""Exit status of a stop the deadline ended (0 is a clean stop)."""


class StopDeadline:
    """A daemon timer that calls ``expire`` unless the process ends first; started once."""

    def __init__(self, timeout_s: float, expire: Callable[[float], None]) -> None:
        self.timeout_s = timeout_s
        self._expire = expire
        self._started: float | None = None
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self._timer is not None:
            return
        self._started = time.monotonic()
        self._timer = threading.Timer(self.timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.name = "stop-deadline"
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        assert self._started is not None
        self._expire(time.monotonic() - self._started)


def exit_now(waited_s: float) -> None:
    """End the process: what is in flight stays uncommitted and is redelivered."""
    log.error("worker stop deadline passed: exiting without waiting for the rest of the "
              "shutdown (records in flight stay uncommitted and are redelivered)",
              extra={"waited_s": round(waited_s, 1), "exit_status": EXIT_STOP_DEADLINE})
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STOP_DEADLINE)


class DeadlineWorker(faust.Worker):
    """Starts its class's stop deadline as soon as the stop begins (signal or end of run)."""

    deadline: ClassVar[StopDeadline]

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Faust has just replaced the root handler with its plain-text one: put the JSON
        handler (with redaction and the client repeat limiter) back, at Faust's level."""
        super().on_setup_root_logger(logger, level)
        setup_logging(logging.getLevelName(level))

    async def on_stop(self) -> None:
        log.info("worker stopping", extra={"deadline_s": self.deadline.timeout_s})
        self.deadline.start()
        await super().on_stop()


def deadline_worker(timeout_s: float,
                    expire: Callable[[float], None] = exit_now) -> type[DeadlineWorker]:
    """A Faust ``Worker`` class whose stop is bounded by ``timeout_s`` (for the app's
    ``Worker`` setting, which takes a class)."""
    deadline = StopDeadline(timeout_s, expire)
    return type("DeadlineWorker", (DeadlineWorker,), {"deadline": deadline})


_SLOTS_HELD: list[IO[bytes]] = []
"""Open lock files of the slots this process claimed (held until the process ends)."""


def instance_id(settings: Settings, group: str) -> str | None:
    """This worker's static group member id (``settings.worker_instance_id``), or None for
    dynamic membership.

    ``auto`` claims the first free slot ``n`` of the group on this host by locking
    ``<stack_dir>/worker-slots/<group>-<n>.lock`` for the life of the process: a worker
    restarted after a crash or a stop gets the slot, so the id, of the one before it (and
    its partitions back at once, docs/scaling.md), and two live workers of a group never
    share an id (Kafka would fence one of them out). Another host, or another container,
    has another host name.
    """
    chosen = settings.worker_instance_id.strip()
    if chosen != "auto":
        return chosen or None
    folder = settings.stack_dir / "worker-slots"
    folder.mkdir(parents=True, exist_ok=True)
    _prune_free_slots(folder)
    for slot in range(1024):
        handle = _lock(folder / f"{group}-{slot}.lock")
        if handle is not None:
            _SLOTS_HELD.append(handle)
            return f"{socket.gethostname()}-{group}-{slot}"
    raise RuntimeError(f"no free worker slot for group {group!r} in {folder}")


def _lock(path: Path) -> IO[bytes] | None:
    """``path`` locked (the open file), or None when a live process holds it."""
    while True:
        handle = open(path, "ab")  # noqa: SIM115 - held open for the life of the process
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        # a file another process pruned between our open and our lock is no longer the
        # slot's: lock the one now at the path
        if _still_at(path, handle):
            return handle
        handle.close()


def _still_at(path: Path, handle: IO[bytes]) -> bool:
    """Whether ``handle``'s file is still the one at ``path`` (not pruned meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _prune_free_slots(folder: Path) -> None:
    """Delete the slot files no live process holds (every test run's group leaves some):
    each is locked first and deleted while locked, so a worker claiming it at that moment
    sees the file gone (:func:`_lock`) and takes a fresh one."""
    for path in folder.glob("*.lock"):
        try:
            handle = open(path, "ab")  # noqa: SIM115 - closed below
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        if _still_at(path, handle):
            path.unlink(missing_ok=True)
        handle.close()
