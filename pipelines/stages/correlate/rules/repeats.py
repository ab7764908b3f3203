"""``times: N``: an event that must happen N times within a rule's window.

The engine hands over the new event and the earlier (or late) events of the same alias,
place and ``group_by`` values; :func:`repeated` picks N of them, the new one included, at
least ``apart_s`` apart and spanning at most ``window_s``, or says there are not enough.

Picking greedily outwards from the new event (the nearest event at least ``apart_s``
before the last pick, then the next...) gives, for every count, the pick furthest in time
from the new event that is as close as possible, so trying every split of the N - 1 others
between before and after finds a fitting set whenever one exists.

>>> ev = {"id": "c", "ts": 100.0}
>>> others = [{"id": "a", "ts": 10.0}, {"id": "a2", "ts": 15.0}, {"id": "b", "ts": 60.0}]
>>> [e["id"] for e in repeated(ev, others, times=3, apart_s=20, window_s=120)]
['a2', 'b', 'c']
>>> repeated(ev, others, times=3, apart_s=50, window_s=120) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Compact = dict[str, Any]


def _chain(ev: Compact, others: Iterable[Compact], apart_s: float, sign: int) -> list[Compact]:
    """Greedy picks from ``ev`` outwards (``sign`` -1: back in time, +1: forward)."""
    picks: list[Compact] = []
    last = ev["ts"]
    for c in sorted(others, key=lambda c: sign * c["ts"]):
        if sign * (c["ts"] - last) >= apart_s:
            picks.append(c)
            last = c["ts"]
    return picks


def repeated(ev: Compact, others: Sequence[Compact], times: int, apart_s: float,
             window_s: float) -> list[Compact] | None:
    """``times`` events in time order, ``ev`` among them, or None if they cannot be found.
    ``others`` must not hold ``ev`` (events at its very time count as before it)."""
    before = _chain(ev, (c for c in others if c["ts"] <= ev["ts"]), apart_s, -1)
    after = _chain(ev, (c for c in others if c["ts"] > ev["ts"]), apart_s, +1)
    for n_before in range(times - 1, -1, -1):  # prefer the past: the new event completes
        n_after = times - 1 - n_before
        if n_before > len(before) or n_after > len(after):
            continue
        lo = before[n_before - 1]["ts"] if n_before else ev["ts"]
        hi = after[n_after - 1]["ts"] if n_after else ev["ts"]
        if hi - lo <= window_s:
            return [*reversed(before[:n_before]), ev, *after[:n_after]]
    return None
