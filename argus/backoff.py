"""Bounded exponential backoff with jitter: the one retry schedule every client uses.

The frame grabber's camera reconnects, the stage runner's retries of Kafka, Redis and
Triton calls, the alert API's Redis subscription and the sensor gateway's Kafka publishing
all wait ``initial``, ``initial * factor``, … up to ``cap`` seconds between attempts, each
delay shortened by a random fraction of up to ``jitter`` so that many clients cut off by
the same outage do not all come back in the same instant. A success resets it.

>>> b = Backoff(initial=0.5, cap=4.0, jitter=0.0)
>>> [b.next_delay() for _ in range(5)]
[0.5, 1.0, 2.0, 4.0, 4.0]
>>> b.reset(); b.next_delay()
0.5
"""

from __future__ import annotations

import random

_RNG = random.Random()
"""The jitter's source unless one is given: seeding a ``random.Random`` reads the OS's
entropy, too slow to do once per stage batch (the runner makes a Backoff per batch)."""


class Backoff:
    """Exponential delays ``initial * factor**n`` capped at ``cap``; each one is drawn from
    ``[delay * (1 - jitter), delay]`` ("equal jitter": never longer than the schedule, so
    the cap is a real bound). ``attempts`` counts the delays handed out since the last
    :meth:`reset`."""

    def __init__(self, initial: float = 0.5, factor: float = 2.0, cap: float = 30.0,
                 jitter: float = 0.2, rng: random.Random | None = None) -> None:
        if initial <= 0 or factor < 1 or cap < initial:
            raise ValueError("need initial > 0, factor >= 1 and cap >= initial")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("need 0 <= jitter < 1")
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or _RNG
        self._next = initial
        self.attempts = 0
        """Delays handed out since the last reset."""

    def next_delay(self) -> float:
        """The delay before the next attempt (and advance the sequence)."""
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        self.attempts += 1
        if self.jitter:
            delay *= 1.0 - self.jitter * self._rng.random()
        return delay

    def reset(self) -> None:
        """Start again from the initial delay (call after a success)."""
        self._next = self.initial
        self.attempts = 0
