"""The arithmetic of ``argus bench live``: percentiles, lag slope, Prometheus scrape sums,
CPU and RSS from ``/proc``, the report of a run, the verdict and the bench topology (the
printed table: :mod:`tools.bench_table`).

Nothing here starts a process or talks to a server (``/proc`` is only read, by
:func:`sample_processes`, :func:`machine_ticks` and :func:`machine`), so it is unit-tested
in ``tests/unit/test_bench_live.py``.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

LATENCY_PATHS = ("detections", "tracks", "events.video", "sensor_to_alert")
"""The latency series of a run: capture → each topic, and sensor event → alert in Redis."""
MAX_SLOPE = 0.5
"""Keeps up only if the total consumer lag grows slower than this (messages/s)..."""
MAX_P95_EVENT_S = 1.0
"""...and p95 of capture → ``events.video`` is at most this..."""
MAX_DROPPED_SHARE = 0.01
"""...and at most this share of the published frames were dropped or skipped."""


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    """Nearest-rank p50/p95/p99/max in milliseconds, and the sample count.

    >>> percentiles([0.1, 0.2, 0.3, 0.4])
    {'n': 4, 'p50_ms': 200.0, 'p95_ms': 400.0, 'p99_ms': 400.0, 'max_ms': 400.0}
    >>> percentiles([])
    {'n': 0, 'p50_ms': None, 'p95_ms': None, 'p99_ms': None, 'max_ms': None}
    """
    ordered = sorted(values)
    out: dict[str, Any] = {"n": len(ordered)}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        out[f"{name}_ms"] = (round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 1)
                             if ordered else None)
    return out


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, y)`` points (0 with fewer than two distinct times).

    >>> slope([(0, 10), (1, 12), (2, 14)])
    2.0
    >>> slope([(5, 3)])
    0.0
    """
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / var


def prom_sum(text: str, name: str, group_by: str | None = None, **where: str
             ) -> dict[str, float]:
    """Sum the samples of metric ``name`` in a Prometheus text scrape whose labels match
    ``where``, per value of label ``group_by`` (one key ``""`` without it).

    >>> text = ('# HELP x\\nx_total{camera="a",reason="full"} 2.0\\n'
    ...         'x_total{camera="b",reason="full"} 3.0\\nx_total{camera="b",reason="gone"} 1.0\\n')
    >>> prom_sum(text, "x_total", "reason")
    {'full': 5.0, 'gone': 1.0}
    >>> prom_sum(text, "x_total", camera="b")
    {'': 4.0}
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        labels = dict(pair.split("=", 1) for pair in label_text.rstrip("}").split(",") if pair)
        labels = {k: v.strip('"') for k, v in labels.items()}
        if any(labels.get(k) != v for k, v in where.items()):
            continue
        key = labels.get(group_by, "") if group_by else ""
        out[key] = out.get(key, 0.0) + float(value)
    return out


def diff(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """Counter increases between two :func:`prom_sum` results.

    >>> diff({"a": 5.0, "b": 1.0}, {"a": 2.0})
    {'a': 3.0, 'b': 1.0}
    """
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def parse_stat(text: str) -> tuple[int, int]:
    """``(ppid, utime + stime in clock ticks)`` from a ``/proc/<pid>/stat`` line.

    >>> parse_stat("42 (my (odd) name) S 7 42 42 0 -1 0 0 0 0 0 150 50 0 0")
    (7, 200)
    """
    fields = stat_fields(text)
    return int(fields[1]), int(fields[11]) + int(fields[12])


def stat_fields(text: str) -> list[str]:
    """The fields of a ``/proc/<pid>/stat`` line after the command name (the state first),
    whatever the name holds.

    >>> stat_fields("42 (my (odd) name) S 7 42")
    ['S', '7', '42']
    """
    return text.rsplit(") ", 1)[1].split()


WARM_BROKER_S = 300.0
"""A Kafka broker younger than this is still compiling its request paths (the JVM's JIT):
measured 2026-12-05 in the first `make bench` after `argus stack up`, about 1 ms of the
broker's CPU a frame, none of it a long-running broker's."""


def process_age_s(pid: int | None, proc: Path = Path("/proc")) -> int | None:
    """Whole seconds since process ``pid`` started (None when there is none or it is gone)."""
    if pid is None:
        return None
    try:
        start_ticks = int(stat_fields((proc / str(pid) / "stat").read_text())[19])
        uptime = float((proc / "uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, round(uptime - start_ticks / os.sysconf("SC_CLK_TCK")))


def young_broker_note(age_s: int | None) -> str | None:
    """The warning a bench prints when the broker started too recently to be warm.

    >>> young_broker_note(1000) is None
    True
    >>> young_broker_note(42).startswith("note: the Kafka broker started 42 s ago")
    True
    """
    if age_s is None or age_s >= WARM_BROKER_S:
        return None
    return (f"note: the Kafka broker started {age_s} s ago and is still compiling (the "
            "JVM's JIT, about 1 ms of its CPU a frame): the pipeline's figures read low; for "
            f"steady figures run again once it has run {WARM_BROKER_S:.0f} s")


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """``root`` and every process below it in the ``pid → ppid`` map.

    >>> sorted(descendants(1, {2: 1, 3: 2, 4: 9}))
    [1, 2, 3]
    """
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in found} - found
        grew = bool(more)
        found |= more
    return found


def sample_processes(roots: Mapping[str, int], proc: Path = Path("/proc")
                     ) -> dict[str, tuple[int, int]]:
    """Per name: CPU ticks and RSS (kB) summed over the root process and its descendants
    (Triton's python-backend stubs count as Triton's) except those under another named
    root. A gone process counts zero."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                ppid, used = parse_stat((entry / "stat").read_text())
            except (OSError, IndexError, ValueError):
                continue
            parents[int(entry.name)], ticks[int(entry.name)] = ppid, used
    trees = {name: descendants(root, parents) if root in parents else set()
             for name, root in roots.items()}
    out: dict[str, tuple[int, int]] = {}
    for name, root in roots.items():
        used = rss = 0
        # a named process below another (the bench's children) counts only as itself
        others = set().union(*(trees[n] for n, r in roots.items() if n != name and r != root
                               and r in trees[name]))
        for pid in trees[name] - others:
            used += ticks.get(pid, 0)
            try:
                for line in (proc / str(pid) / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            except (OSError, ValueError):
                continue
        out[name] = (used, rss)
    return out


def cpu_table(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]],
              seconds: float, clk_tck: int | None = None
              ) -> dict[str, dict[str, float | None]]:
    """CPU % (100 = one core) over the interval and RSS (MiB) at its end, per process.

    >>> cpu_table({"w": (100, 0)}, {"w": (250, 204800)}, 10.0, clk_tck=100)
    {'w': {'cpu_pct': 15.0, 'rss_mib': 200.0}}
    """
    tck = clk_tck or os.sysconf("SC_CLK_TCK")
    return {name: {"cpu_pct": round(100.0 * (used - before.get(name, (used, 0))[0])
                                    / tck / max(seconds, 1e-9), 1),
                   "rss_mib": round(rss / 1024.0, 1)}
            for name, (used, rss) in after.items()}


def machine_ticks(proc: Path = Path("/proc")) -> tuple[int, int]:
    """``(busy, all)`` CPU ticks of the whole machine since boot (idle and iowait are not
    busy)."""
    fields = [int(x) for x in (proc / "stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def machine() -> dict[str, Any]:
    """The CPU model, cores, memory and platform of this machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor() or "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1)}


def verdict(lag_slope: float, end_lag: float, input_fps: float, p95_event_ms: float | None,
            dropped_share: float = 0.0) -> tuple[bool, list[str]]:
    """Keeps up when the lag does not grow (slope below :data:`MAX_SLOPE`), the
    ``frames.raw`` lag at the end is at most ~3 s of input (the worker commits once a
    second; downstream topics each hold up to a second of their own rate between
    commits, and a backlog there shows in the latencies), p95 capture →
    ``events.video`` is at most :data:`MAX_P95_EVENT_S` and at most
    :data:`MAX_DROPPED_SHARE` of the input frames were dropped or skipped as stale (a
    pipeline that skips frames is behind even when its lag is flat). Returns the reasons
    otherwise.

    >>> verdict(0.1, 12, 10.0, 420.0)
    (True, [])
    >>> verdict(2.0, 300, 10.0, None, 0.2)[1]  # doctest: +NORMALIZE_WHITESPACE
    ['lag grows 2.00 msg/s', 'end frames.raw lag 300 > 40', 'no events.video to time',
     '20% of frames dropped']
    """
    reasons = []
    if lag_slope >= MAX_SLOPE:
        reasons.append(f"lag grows {lag_slope:.2f} msg/s")
    limit = 3 * input_fps + 10
    if end_lag > limit:
        reasons.append(f"end frames.raw lag {end_lag:.0f} > {limit:.0f}")
    if p95_event_ms is None:
        reasons.append("no events.video to time")
    elif p95_event_ms > MAX_P95_EVENT_S * 1000:
        reasons.append(f"p95 capture→events.video {p95_event_ms:.0f} ms > "
                       f"{MAX_P95_EVENT_S * 1000:.0f} ms")
    if dropped_share > MAX_DROPPED_SHARE:
        reasons.append(f"{dropped_share:.0%} of frames dropped")
    return not reasons, reasons


def next_find_max(tried: Mapping[int, bool], steps: Sequence[int], start: int = 1
                  ) -> int | None:
    """The next camera count ``--find-max`` runs, or None when it is done.

    ``tried`` maps each count run so far to whether it kept up. Counts of ``steps`` from
    ``start`` on are run until one falls behind; then the interval between the largest count
    that kept up (0 when none did) and the smallest that fell behind is halved
    until the two are one apart.

    >>> next_find_max({}, (2, 4, 8), 2), next_find_max({2: True, 4: True}, (2, 4, 8), 2)
    (2, 8)
    >>> next_find_max({2: True, 4: True, 8: False}, (2, 4, 8), 2)
    6
    >>> next_find_max({2: True, 4: True, 8: False, 6: True, 7: False}, (2, 4, 8), 2) is None
    True
    """
    failed = [n for n, ok in tried.items() if not ok]
    if not failed:
        return next((n for n in steps if n >= start and n not in tried), None)
    high = min(failed)
    low = max((n for n, ok in tried.items() if ok and n < high), default=0)
    return (low + high) // 2 if high - low > 1 else None


def report(first: Mapping[str, Any], last: Mapping[str, Any],
           lags: Sequence[tuple[float, float]], samples: Mapping[str, list[tuple[float, float]]],
           posted: Mapping[str, float], alerted: Mapping[str, float], group: str
           ) -> dict[str, Any]:
    """The figures of a run from two snapshots (``t``, ``procs``, ``cpu``, ``lag``, and the
    ``worker`` and ``grabber`` scrapes) at the window's start and end, the settled lag
    samples ``(t, total)`` (``tools.bench_lag.group_lag``), the latency samples ``(arrival,
    seconds)`` per topic, and the sensor events posted / alerted (event id → time). Only
    what falls in the window counts."""
    t0, t1 = first["t"], last["t"]
    window = max(t1 - t0, 1e-9)

    def counters(name: str, group_by: str, scrape: str = "worker") -> dict[str, float]:
        return diff(prom_sum(last[scrape], name, group_by),
                    prom_sum(first[scrape], name, group_by))

    s_in = counters("argus_stage_messages_in_total", "stage")
    s_out = counters("argus_stage_messages_out_total", "stage")
    dropped = {**counters("argus_frames_dropped_total", "reason", "grabber"),
               **{f"detect_skipped:{k}": v for k, v in
                  counters("argus_frames_skipped_total", "reason").items()},
               **{f"track_skipped:{k}": v for k, v in
                  counters("argus_track_frames_skipped_total", "reason").items()},
               **{f"dlq:{k}": v for k, v in counters("argus_dlq_messages_total", "reason").items()}}
    dropped = {k: v for k, v in dropped.items() if v}
    published = round(sum(counters("argus_frames_published_total", "camera", "grabber").values()))
    latency = {name: percentiles(lat for at, lat in values if t0 <= at <= t1)
               for name, values in samples.items()}
    ours = {e: t for e, t in posted.items() if t0 <= t <= t1}
    latency["sensor_to_alert"] = percentiles(alerted[e] - t for e, t in ours.items()
                                             if e in alerted)
    processes = cpu_table(first["procs"], last["procs"], window)
    (b0, a0), (b1, a1) = first["cpu"], last["cpu"]
    busy = round(100.0 * (b1 - b0) / max(1, a1 - a0) * (os.cpu_count() or 1), 1)
    listed = sum(v["cpu_pct"] or 0.0 for v in processes.values())
    processes["other processes"] = {"cpu_pct": round(max(0.0, busy - listed), 1),
                                    "rss_mib": None}
    processes["machine (all cores)"] = {"cpu_pct": busy, "rss_mib": None}
    lag_slope = slope([(t - t0, y) for t, y in lags])
    keeps_up, reasons = verdict(lag_slope, last["lag"]["frames.raw"], published / window,
                                latency["events.video"]["p95_ms"],
                                sum(dropped.values()) / max(1, published))
    return {
        "window_s": round(window, 1), "input_fps": round(published / window, 2),
        "frames_published": published,
        "frames_dropped": {"total": sum(dropped.values()), "by_reason": dropped},
        "stages": {s: {"in_per_s": round(s_in.get(s, 0) / window, 2),
                       "out_per_s": round(s_out.get(s, 0) / window, 2)}
                   for s in sorted(set(s_in) | set(s_out))},
        "latency": latency,
        "lag": {"group": group, "start": dict(first["lag"]), "end": dict(last["lag"]),
                "slope_per_s": round(lag_slope, 3), "samples": len(lags),
                "settled_series": [(round(t - t0, 1), round(y)) for t, y in lags]},
        "sensor": {"posted": len(ours), "alerted": sum(e in alerted for e in ours)},
        "processes": processes,
        "keeps_up": keeps_up, "verdict": "keeps up" if keeps_up else "falls behind",
        "verdict_reasons": reasons,
    }


def frame_accounting(published: int, workers: str, raw_lag: int) -> dict[str, Any]:
    """Where every published frame went: ``published`` (the frames on ``frames.raw``), the
    workers' final scrape and the ``frames.raw`` lag left. ``unaccounted`` = published -
    detected - skipped - dead-lettered (detect stage) - still queued; 0 when nothing was
    lost.

    >>> w = "\\n".join(['argus_stage_messages_out_total{stage="detect"} 11.0',
    ...                 'argus_frames_skipped_total{camera="a",reason="stale"} 3.0',
    ...                 'argus_dlq_messages_total{stage="detect",reason="corrupt_jpeg"} 1.0'])
    >>> frame_accounting(15, w, 0)["unaccounted"], frame_accounting(15, w, 2)["unaccounted"]
    (0, -2)
    """
    detected = round(prom_sum(workers, "argus_stage_messages_out_total", "stage").get(
        "detect", 0.0))
    skipped = round(sum(prom_sum(workers, "argus_frames_skipped_total", "reason").values()))
    dead = round(prom_sum(workers, "argus_dlq_messages_total", "stage").get("detect", 0.0))
    return {"published": published, "detected": detected, "skipped": skipped,
            "dead_lettered": dead, "queued": raw_lag,
            "unaccounted": published - detected - skipped - dead - raw_lag}


def topology_yaml(run_id: str, cameras: int, fps: float, sources: Sequence[str]) -> str:
    """N cameras cycling over ``sources``, each on its own site with one zone watched by
    one full-frame intrusion zone and one ``intrusion`` sensor (``pir-<i>``).

    >>> print(topology_yaml("r1", 1, 5, ["/v/a.mp4"]))  # doctest: +NORMALIZE_WHITESPACE
    sites:
      - {id: r1-s0, lat: 51.5, lon: -0.1, zones: [{id: zone-0}]}
    cameras:
      - {id: r1-cam-0, site: r1-s0, source: '/v/a.mp4', fps: 5, loop: true, realtime: true,
         jpeg_quality: 85, zones: [{id: floor-0, site_zone: zone-0, intrusion: true,
         classes: [person], polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]}
    sensors:
      - {id: r1-pir-0, site: r1-s0, zone: zone-0, type: intrusion}
    <BLANKLINE>
    """
    sites, cams, sensors = [], [], []
    for i in range(cameras):
        site, zone = f"{run_id}-s{i}", f"zone-{i}"
        sites.append(f"  - {{id: {site}, lat: 51.5, lon: -0.1, zones: [{{id: {zone}}}]}}")
        cams.append(
            f"  - {{id: {run_id}-cam-{i}, site: {site}, source: '{sources[i % len(sources)]}', "
            f"fps: {fps:g}, loop: true, realtime: true,\n"
            f"     jpeg_quality: 85, zones: [{{id: floor-{i}, site_zone: {zone}, "
            "intrusion: true,\n"
            "     classes: [person], polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]}")
        sensors.append(f"  - {{id: {run_id}-pir-{i}, site: {site}, zone: {zone}, "
                       "type: intrusion}")
    return "\n".join(["sites:", *sites, "cameras:", *cams, "sensors:", *sensors, ""])
