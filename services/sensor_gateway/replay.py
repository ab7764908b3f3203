"""Replay sensor logs on a compressed clock into the gateway's publisher.

A log is a sequence of :class:`LogEvent` with an offset in seconds from the first event
(the readers are in :mod:`~services.sensor_gateway.logs`: the project's CSV, van Kasteren,
MIT PlaceLab, UCI occupancy). :func:`replay` publishes each at wall-clock
``t0 + offset / speed`` and stamps the reading with that time, so downstream stages see a
live sensor (speed 1 = real time, 3600 = an hour of log per second).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from argus.log import get_logger
from services.sensor_gateway.logs import (
    LogEvent,
    iter_csv,
    iter_kasteren,
    iter_placelab,
    iter_uci_occupancy,
)
from services.sensor_gateway.publisher import BatchRejected, SensorPublisher, Submission

log = get_logger(__name__)

MAX_OUTSTANDING = 500
"""Submissions sent without waiting for their acknowledgement before the replay waits."""


@dataclass
class ReplayStats:
    """What a replay did."""

    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    cycles: int = 0


# --- replay --------------------------------------------------------------------------


def _body(event: LogEvent, ts: float) -> bytes:
    reading: dict[str, Any] = {"sensor_id": event.sensor_id, "ts": round(ts, 6)}
    if event.state is not None:
        reading["state"] = event.state
    if event.value is not None:
        reading["value"] = event.value
    return json.dumps(reading).encode()


def replay(
    readings: Iterable[LogEvent],
    publisher: SensorPublisher,
    speed: float = 1.0,
    start: float | None = None,
    loop: bool = False,
    *,
    period_s: float | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> ReplayStats:
    """Publish ``readings`` at ``start + offset / speed`` (wall clock), stamped with that time.

    ``start`` defaults to now; a start in the future waits for it, events already due are
    published at once (in order). With ``loop`` the log repeats every ``period_s`` log
    seconds (default: the last offset + 1 s) until ``stop`` is set. Rejected readings are
    dead-lettered by the publisher and counted; a Kafka failure raises ``PublishError``.
    """
    if not speed > 0 or not math.isfinite(speed):
        raise ValueError(f"speed must be a positive number, got {speed}")
    stop = stop or threading.Event()
    events: Iterable[LogEvent] = readings
    period = 0.0
    if loop:
        materialised = list(readings)
        if not materialised:
            return ReplayStats()
        events = materialised
        period = (period_s if period_s is not None
                  else max(e.offset_s for e in materialised) + 1.0)
        if not period > 0:
            raise ValueError(f"the loop period must be > 0, got {period}")
    t0 = clock() if start is None else start
    stats = ReplayStats()
    outstanding: list[Submission] = []

    def settle() -> None:
        while outstanding:
            publisher.confirm(outstanding.pop(0))

    log.info("replay.start", extra={"speed": speed, "t0": t0, "loop": loop,
                                    "topic": publisher.topic})
    while not stop.is_set():
        cycle_start = t0 + stats.cycles * period / speed
        for event in events:
            if stop.is_set():
                break
            due = cycle_start + event.offset_s / speed
            if due > clock():
                settle()  # wait for acknowledgements while there is time
                if stop.wait(max(0.0, due - clock())):
                    break
            try:
                submission = publisher.submit(_body(event, due))
            except BatchRejected as exc:
                stats.rejected += 1
                log.warning("replay.rejected", extra={"sensor": event.sensor_id,
                                                      "reason": exc.reason, "detail": str(exc)})
                continue
            stats.published += len(submission.events)
            stats.duplicates += len(submission.duplicates)
            outstanding.append(submission)
            if len(outstanding) >= MAX_OUTSTANDING:
                settle()
        else:
            stats.cycles += 1
        if not loop:
            break
    settle()
    log.info("replay.done", extra={"published": stats.published, "duplicates": stats.duplicates,
                                   "rejected": stats.rejected, "cycles": stats.cycles,
                                   "stopped": stop.is_set()})
    return stats


__all__ = ["LogEvent", "ReplayStats", "iter_csv", "iter_kasteren", "iter_placelab",
           "iter_uci_occupancy", "replay"]
