"""The printed tables of the benches: an ``argus bench live`` run (:func:`format_table`, from
the report :func:`tools.bench_measure.report` builds) and an ``argus bench`` run
(:func:`format_throughput`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _rows(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


SHARED_MACHINE_PCT = 5.0
"""Other processes' CPU % (100 = one core) above which a run measured a shared machine."""


def shared_machine_note(processes: Mapping[str, Mapping[str, Any]]) -> str:
    """A warning line when other work took more than :data:`SHARED_MACHINE_PCT` of the CPU
    during the run (its latencies and verdict then say less about the pipeline), else "".

    >>> shared_machine_note({"other processes": {"cpu_pct": 13.3}})
    'note: other processes took 13.3 % CPU (a shared machine): measure again on a quiet one'
    >>> shared_machine_note({"other processes": {"cpu_pct": 1.6}})
    ''
    """
    other = (processes.get("other processes") or {}).get("cpu_pct") or 0.0
    if other <= SHARED_MACHINE_PCT:
        return ""
    return (f"note: other processes took {other:g} % CPU (a shared machine): measure again "
            "on a quiet one")


def format_table(run: Mapping[str, Any]) -> str:
    """The readable report of one run (see ``tools.bench_live`` for the fields)."""
    p = run["parameters"]
    cameras = p.get("overload_cameras") or p["cameras"]
    lines = [f"argus bench live: {cameras} camera(s) at {p['fps']:g} fps, "
             f"{run['window_s']:.0f} s measured (first {p['warmup_s']:g} s after the first "
             "detection discarded: consumer-group join, Triton warm-up)",
             f"input: {run['input_fps']:.2f} frames/s published, frames dropped "
             f"{run['frames_dropped']['total']:g} {run['frames_dropped']['by_reason'] or ''}",
             "", *_rows([("stage", "in msg/s", "out msg/s"),
                         *[(s, _cell(v["in_per_s"]), _cell(v["out_per_s"]))
                           for s, v in run["stages"].items()]]), ""]
    lines += _rows([("latency", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"),
                    *[(name, *(_cell(run["latency"][name][k])
                               for k in ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms")))
                      for name in run["latency"]]])
    lag = run["lag"]
    lines += ["", f"consumer lag (group {lag['group']}): start {lag['start']['total']}, "
              f"end {lag['end']['total']}, settled lag slope {lag['slope_per_s']:+.2f} msg/s "
              f"(frames.raw start {lag['start']['frames.raw']}, end {lag['end']['frames.raw']})",
              f"sensor events: {run['sensor']['posted']} posted, {run['sensor']['alerted']} "
              f"alerted; alert changes naming them: {run.get('alert_changes') or '-'}", ""]
    lines += _rows([("process", "cpu %", "rss MiB"),
                    *[(name, _cell(v["cpu_pct"]), _cell(v["rss_mib"]))
                      for name, v in run["processes"].items()]])
    lines += ["", f"verdict: {run['verdict']}"
              + (f" ({'; '.join(run['verdict_reasons'])})" if run["verdict_reasons"] else "")]
    note = shared_machine_note(run["processes"])
    if note:
        lines.append(note)
    recovery = run.get("recovery")
    if recovery:
        after = recovery["latency_after_recovery"]
        lines += [f"overload: {p['overload_cameras']} cameras during the window, then "
                  f"{p['cameras']}: " + (f"lag settled (total <= {recovery['steady_lag_limit']}"
                                         f" for 5 s) {recovery['recovery_s']:g} s after"
                                         if recovery["recovered"] else "lag did NOT settle"),
                  f"capture→detections after that: p50 {_cell(after['p50_ms'])} ms, "
                  f"p95 {_cell(after['p95_ms'])} ms (n {after['n']})",
                  "frames: " + ", ".join(f"{k} {v}" for k, v in recovery["accounting"].items())]
    return "\n".join(lines)


def format_throughput(result: Mapping[str, Any]) -> str:
    """The readable report of one ``argus bench`` run (see ``tools.bench`` for the fields):
    the three paths' frames/s, the ratios and every process's CPU a frame."""
    reid = " +re-id" if result["reid"] else ""
    pipeline, jpegs, plain = (result["pipeline"], result["pipeline_from_jpegs"],
                              result["plain_loop"])
    frames = str(result["frames"])
    lines = _rows([
        ("path", "frames", "seconds", "fps"),
        ("grabber→Kafka→detect(Triton)→detections" + reid, frames, str(pipeline["seconds"]),
         str(pipeline["fps"])),
        ("the plain loop's JPEGs→Kafka→detect(Triton)→detections" + reid, frames,
         str(jpegs["seconds"]), str(jpegs["fps"])),
        ("plain loop: decode→onnxruntime→NMS" + reid, frames, str(plain["seconds"]),
         f"{plain['fps']} (before {plain['fps_before']}, after {plain['fps_after']})"),
    ])
    lines.append(f"ratio pipeline/plain: {result['ratio_pipeline_to_plain']}  "
                 f"(capture→detection p50 {pipeline['latency_ms_p50']} ms, "
                 f"p95 {pipeline['latency_ms_p95']} ms); from the same JPEGs: "
                 f"{result['ratio_from_jpegs_to_plain']}")
    lines.append("CPU ms per frame: pipeline " + ", ".join(
        f"{k} {v}" for k, v in pipeline["cpu_ms_per_frame"].items())
        + "; from the JPEGs " + ", ".join(
            f"{k} {v}" for k, v in jpegs["cpu_ms_per_frame"].items())
        + f"; plain loop {plain['cpu_ms_per_frame']}; machine busy "
        f"{pipeline['machine_busy_pct']} % during the pipeline (100 per core)")
    return "\n".join(lines)
