"""The one retry schedule (argus/backoff.py): exponential, capped, jittered, reset."""

from __future__ import annotations

import random

import pytest

from argus.backoff import Backoff


def test_sequence_and_cap_without_jitter() -> None:
    backoff = Backoff(jitter=0.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert backoff.attempts == 10


def test_reset_after_success() -> None:
    backoff = Backoff(jitter=0.0)
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("initial", "factor", "cap", "expected"),
    [
        (1.0, 2.0, 30.0, [1.0, 2.0, 4.0, 8.0, 16.0]),
        (0.1, 3.0, 1.0, [0.1, 0.30000000000000004, 0.9000000000000001, 1.0, 1.0]),
        (2.0, 1.0, 2.0, [2.0, 2.0, 2.0, 2.0, 2.0]),
    ],
)
def test_custom_schedules(initial: float, factor: float, cap: float,
                          expected: list[float]) -> None:
    backoff = Backoff(initial, factor, cap, jitter=0.0)
    assert [backoff.next_delay() for _ in range(5)] == expected


@pytest.mark.parametrize("jitter", [0.1, 0.2, 0.5])
def test_jitter_stays_within_bounds_and_spreads(jitter: float) -> None:
    """Each delay lies in [d * (1 - jitter), d] of the plain schedule: never above the
    cap, and clients cut off together do not retry in the same instant."""
    plain = Backoff(jitter=0.0)
    schedule = [plain.next_delay() for _ in range(8)]
    seen: list[list[float]] = []
    for seed in range(20):
        backoff = Backoff(jitter=jitter, rng=random.Random(seed))
        delays = [backoff.next_delay() for _ in range(8)]
        for delay, base in zip(delays, schedule, strict=True):
            assert base * (1 - jitter) <= delay <= base
        seen.append(delays)
    assert len({round(run[0], 6) for run in seen}) > 10  # spread, not one value


@pytest.mark.parametrize(
    ("initial", "factor", "cap", "jitter"),
    [(0, 2, 30, 0.2), (1, 0.5, 30, 0.2), (10, 2, 5, 0.2), (1, 2, 30, 1.0), (1, 2, 30, -0.1)],
)
def test_rejects_bad_parameters(initial: float, factor: float, cap: float,
                                jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, factor, cap, jitter)
