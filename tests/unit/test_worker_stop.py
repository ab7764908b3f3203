"""The worker's stop deadline (pipelines/worker.py): it fires once, after its timeout,
unless the stop finished first."""

from __future__ import annotations

import threading
import time

import faust
import pytest

from pipelines.worker import StopDeadline, deadline_worker


@pytest.mark.parametrize(("timeout_s", "cancel_after_s", "fires"), [
    (0.05, None, True),     # the stop hangs: the deadline ends it
    (0.5, 0.01, False),     # the stop finished in time
])
def test_deadline_fires_only_when_the_stop_overruns(
        timeout_s: float, cancel_after_s: float | None, fires: bool) -> None:
    fired: list[float] = []
    done = threading.Event()

    def expire(waited_s: float) -> None:
        fired.append(waited_s)
        done.set()

    deadline = StopDeadline(timeout_s, expire)
    deadline.start()
    deadline.start()  # a second signal does not restart the clock
    if cancel_after_s is not None:
        time.sleep(cancel_after_s)
        deadline.cancel()
    done.wait(timeout_s + 1.0)
    assert bool(fired) is fires
    if fires:
        assert len(fired) == 1
        assert fired[0] >= timeout_s


def test_the_app_worker_class_is_a_faust_worker_with_the_deadline() -> None:
    worker_class = deadline_worker(3.0)
    assert issubclass(worker_class, faust.Worker)
    assert worker_class.deadline.timeout_s == 3.0
