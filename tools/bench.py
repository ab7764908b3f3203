"""``make bench``: frames per second through the real pipeline vs. a plain model loop.

* **pipeline**: the frame grabber reads a real video as fast as it can and publishes
  JPEG frames to Kafka; the stream worker's detect stage sends them to Triton's
  ``detector`` and publishes ``detections``. Measured from the grabber's start to the
  N-th detection on the topic, on isolated topics, once a warm-up frame has come back as a
  detection (so the worker's consumer-group join and table recovery are not counted).
* **plain loop**: the same N JPEG frames through the same model code in one process —
  JPEG decode → letterbox → onnxruntime → decode/NMS — no Kafka, no Triton (with
  ``--reid``, the re-id policy of the detect stage too).

* **pipeline from the JPEGs**: the pipeline again, fed the plain loop's own JPEG frames
  (published to ``frames.raw`` by this process, with the grabber's producer, as fast as it
  takes them) instead of the grabber decoding the video and encoding each frame: like for
  like with the plain loop, whose input is those JPEGs, ready in memory. A camera that
  sends JPEG (MJPEG, stills) costs the grabber little; one that sends H.264 costs it a
  decode and an encode.

The plain loop runs before and after the pipeline (the machine's speed drifts), and the ratio
pipeline/plain compares with their mean; it is the figure to drive up. Both also report the
CPU time a frame costs (every process of the pipeline: grabber, worker, Triton, Kafka), which
other load on the machine changes much less than frames/s, and ``fps_steady``: the rate of the
middle 80 % of the detections by their own produce times (without the pipeline's fill and
drain, which weigh on a short run). ``--frames`` beyond the clip's length repeat it from its
start (the grabber loops the file and stops once it has captured that many). Prints a table
and JSON (``--json PATH`` also writes it). ``--frames 30`` is the smoke mode CI runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from kafka import KafkaConsumer, KafkaProducer

from argus.log import setup_logging
from argus.modelcode import load_yolox_module, triton_parameters
from argus.settings import REPO_ROOT, Settings, get_settings
from argus.topology import load_topology
from tools import bench_measure as m
from tools import stack
from tools.bench_table import format_throughput

if TYPE_CHECKING:
    from services.frame_grabber.grabber import FrameGrabber

DEFAULT_VIDEO = "data/videos/person-bicycle-car-detection.mp4"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def read_jpegs(video: Path, count: int, quality: int = 85) -> list[bytes]:
    """The first ``count`` frames of ``video`` as JPEG; a clip shorter than ``count`` is
    repeated from its start (a longer run amortises the pipeline's fill and drain)."""
    cap = cv2.VideoCapture(str(video))
    frames: list[bytes] = []
    while len(frames) < count:
        ok, image = cap.read()
        if not ok:
            break
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        frames.append(jpeg.tobytes())
    cap.release()
    clip = len(frames)
    while clip > 0 and len(frames) < count:
        frames.append(frames[len(frames) % clip])
    return frames


def steady_fps(stamps_ms: list[int], share: float = 0.8) -> float:
    """Frames/s over the middle ``share`` of the outputs, from their own timestamps (the
    worker's produce time, not when the bench polled them): the pipeline's rate once it
    runs, without its fill (the first micro-batches) and drain.

    >>> steady_fps([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    100.0
    >>> steady_fps([5])
    0.0
    """
    stamps = sorted(stamps_ms)
    cut = round(len(stamps) * (1 - share) / 2)
    first, last = cut, len(stamps) - 1 - cut
    if last <= first or stamps[last] <= stamps[first]:
        return 0.0
    return round(1000.0 * (last - first) / (stamps[last] - stamps[first]), 2)


def bench_plain(settings: Settings, jpegs: list[bytes], reid: bool = False) -> dict[str, Any]:
    """The same model code and settings as the Triton model (its config.pbtxt), one frame
    after another, in this process; ``reid``: with the detect stage's re-id policy too
    (every person once per ``ARGUS_DETECT_REID_INTERVAL_S`` of wall time, as the fast
    replay stamps frames, and the people near another person on the frames between)."""
    from argus.inference.reid import LocalReid, ReidSchedule
    from pipelines.stages.detect.stage import DetectSettings

    params = triton_parameters("detector")
    runner = load_yolox_module().DetectorRunner.configured(
        str(settings.models_dir / params.get("model_file", "yolox_nano.onnx")), params)
    local_reid = LocalReid(settings.models_dir, params) if reid else None
    schedule = ReidSchedule(DetectSettings().reid_interval_s)
    runner.detect_jpeg(jpegs[0])  # warm-up
    per_frame = []
    started = time.perf_counter()
    cpu_started = time.process_time()  # every thread of this process (onnxruntime's too)
    for jpeg in jpegs:
        t = time.perf_counter()
        boxes, scores, classes, _ = runner.detect_jpeg(jpeg)
        if local_reid is not None and local_reid.runner is not None:
            full = schedule.due("bench", time.time())
            local_reid.codes(jpeg, boxes, scores, classes, near_only=not full)
        per_frame.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {"frames": len(jpegs), "seconds": round(elapsed, 3),
            "fps": round(len(jpegs) / elapsed, 2),
            "ms_p50": round(statistics.median(per_frame) * 1000, 2),
            "cpu_ms_per_frame": round(1000 * cpu / len(jpegs), 2)}


def cpu_per_frame(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                  frames: int, clk_tck: int | None = None) -> dict[str, float]:
    """CPU milliseconds per frame of each process over the timed window, and their total:
    what the pipeline costs a frame whatever else the machine was doing (the frames/s
    depend on that; this does not, much).

    >>> cpu_per_frame({"a": (100, 0), "b": (50, 0)}, {"a": (130, 0), "b": (60, 0)}, 100, 100)
    {'a': 3.0, 'b': 1.0, 'total': 4.0}
    """
    tck = clk_tck or os.sysconf("SC_CLK_TCK")
    out = {name: round(1000.0 * (after[name][0] - before.get(name, (0, 0))[0]) / tck
                       / max(frames, 1), 2) for name in after}
    out["total"] = round(sum(out.values()), 2)
    return out


def _write_topology(video: Path, path: Path) -> None:
    path.write_text(
        "sites: [{id: bench, lat: 0, lon: 0, zones: [{id: all}]}]\n"
        "cameras:\n"
        f"  - {{id: bench-cam, site: bench, source: '{video}', fps: 60, realtime: false,\n"
        "      jpeg_quality: 85, loop: true, zones: [{id: all, site_zone: all,\n"
        "      polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]}\n")


def _warm_up(producer: KafkaProducer, settings: Settings, camera_id: str, video: Path,
             consumer: KafkaConsumer, worker: subprocess.Popen[bytes], workdir: Path) -> None:
    """Publish one frame with the run's ``producer`` and wait for its detection: the worker
    has joined its consumer group, recovered its tables and reached Triton, and the producer
    has connected and fetched the topic's metadata, before the timed run starts."""
    from schemas.frames import FrameHeaders

    jpeg = read_jpegs(video, 1)[0]
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    meta = FrameHeaders(camera_id=camera_id, seq=0, capture_ts=time.time(),
                        width=image.shape[1], height=image.shape[0])
    producer.send(settings.topic("frames.raw"), key=camera_id.encode(), value=jpeg,
                  headers=meta.to_headers())
    producer.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited; see {workdir / 'worker.log'}")
        if any(consumer.poll(timeout_ms=500).values()):
            return
    raise RuntimeError(f"the warm-up frame was never detected; see {workdir}")


def _stop_after(grabber: FrameGrabber, camera_id: str, frames: int) -> None:
    """Stop the camera once it has captured ``frames`` frames (the clip loops): it reads
    and encodes no frame the run does not count; what it buffered is still published."""
    worker = grabber.worker(camera_id)
    while worker.stats()["captured"] < frames and not worker.done:
        time.sleep(0.005)  # the camera reads ~300 frames/s here: it overshoots by one or two
    worker.stop()


def _publish(producer: KafkaProducer, settings: Settings, camera_id: str,
             jpegs: list[bytes]) -> None:
    """Publish ready JPEG frames to ``frames.raw`` as fast as the producer takes them."""
    from schemas.frames import FrameHeaders

    image = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    for seq, jpeg in enumerate(jpegs, start=1):
        meta = FrameHeaders(camera_id=camera_id, seq=seq, capture_ts=time.time(),
                            width=image.shape[1], height=image.shape[0])
        producer.send(settings.topic("frames.raw"), key=camera_id.encode(), value=jpeg,
                      headers=meta.to_headers())
    producer.flush()


def bench_pipeline(base: Settings, video: Path, frames: int, reid: bool = False,
                   jpegs: list[bytes] | None = None) -> dict[str, Any]:
    """Grabber → Kafka → detect (Triton) → detections, on isolated topics; ``reid``: with
    the re-identification embeddings the shipped pipeline computes for the tracker.
    ``jpegs``: this process publishes these frames, already JPEG (the plain loop's input),
    in place of the grabber decoding the video and encoding each frame."""
    from services.frame_grabber.grabber import FrameGrabber, make_grabber_producer

    workdir = Path(tempfile.mkdtemp(prefix="argus-bench-"))
    producer: KafkaProducer | None = None
    topology_path = workdir / "topology.yaml"
    _write_topology(video, topology_path)
    settings = Settings(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
                        app_id=f"argus-bench-{uuid.uuid4().hex[:8]}", topology=topology_path)
    stack.create_topics(settings)
    port = 29199
    # Like for like: the detect stage alone (the plain loop does no tracking), every frame
    # detected however late (a fast replay is all backlog: no stale-frame skipping).
    env = {**os.environ, **settings.to_env(), "ARGUS_DETECT_REID": str(reid).lower(),
           "ARGUS_DETECT_MAX_AGE_S": "0"}
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "-m", "pipelines", "--metrics-port", str(port),
                               "--stages", "detect"],
                              cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    consumer = KafkaConsumer(settings.topic("detections"), bootstrap_servers=base.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        camera = load_topology(topology_path, settings.shared).cameras[0]
        # the run's producer, connected by the warm-up before the clock starts (the plain
        # loop has no such start either); the grabber's, also where this process stands in
        # for the grabber (the same batching, so the broker sees the same requests)
        producer = make_grabber_producer(settings)
        _warm_up(producer, settings, camera.id, video, consumer, worker, workdir)
        # a buffer for every frame: this measures throughput, not drop-oldest backpressure
        grabber = None if jpegs else FrameGrabber([camera], settings, producer=producer,
                                                  buffer_size=frames + 1)
        latencies: list[float] = []
        stamps: list[int] = []  # the detections' produce times (ms)
        seen = 0
        roots = {"bench (publisher)" if jpegs else "bench (grabber)": os.getpid(),
                 "worker": worker.pid,
                 **{server.name: server.pid() or 0 for server in stack.servers(base)
                    if server.name in ("kafka", "triton")}}
        cpu_before = m.sample_processes(roots)
        busy_before = m.machine_ticks()
        started = time.perf_counter()
        started_ms = time.time() * 1000.0
        if grabber is None:
            _publish(producer, settings, camera.id, (jpegs or [])[:frames])
        else:
            grabber.start()
            threading.Thread(target=_stop_after, args=(grabber, camera.id, frames),
                             daemon=True).start()
        deadline = time.monotonic() + max(120.0, frames * 0.5)
        while seen < frames and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited; see {workdir / 'worker.log'}")
            for batch in consumer.poll(timeout_ms=500).values():
                now = time.time()
                for record in batch:
                    stamps.append(record.timestamp)
                    latencies.append(now - json.loads(record.value)["capture_ts"])
                    seen += 1
        elapsed = time.perf_counter() - started
        cpu_after = m.sample_processes(roots)
        busy_after = m.machine_ticks()
        if grabber is not None:
            grabber.stop()
        if seen < frames:
            raise RuntimeError(f"only {seen}/{frames} detections arrived; see {workdir}")
        latencies.sort()
        return {
            "frames": frames, "seconds": round(elapsed, 3), "fps": round(frames / elapsed, 2),
            "fps_steady": steady_fps(stamps),
            # when the first and the last detection were produced, from the run's start
            "first_output_s": round((min(stamps) - started_ms) / 1000.0, 3),
            "last_output_s": round((max(stamps) - started_ms) / 1000.0, 3),
            "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
            "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
            "cpu_ms_per_frame": cpu_per_frame(cpu_before, cpu_after, frames),
            # 100 per core: below 100 x cores the pipeline left CPU idle (not CPU-bound)
            "machine_busy_pct": round(100.0 * (os.cpu_count() or 1)
                                      * (busy_after[0] - busy_before[0])
                                      / max(1, busy_after[1] - busy_before[1]), 1),
        }
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        with contextlib.suppress(Exception):
            stack.delete_topics(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--video", type=Path, default=None,
                        help=f"default: $ARGUS_SHARED/{DEFAULT_VIDEO}")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--reid", action="store_true",
                        help="both paths with re-identification embeddings (as shipped: "
                             "every person every 0.5 s, else those near another person)")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    base = get_settings()
    video = args.video or base.shared / DEFAULT_VIDEO
    stack.up(base)
    broker_age = m.process_age_s(stack.servers(base, ["kafka"])[0].pid())
    jpegs = read_jpegs(video, args.frames)
    frames = len(jpegs)
    # the plain loop before and after the pipeline: this machine's speed drifts between
    # runs, and the ratio compares with the mean of the two
    before = bench_plain(base, jpegs, reid=args.reid)
    pipeline = bench_pipeline(base, video, frames, reid=args.reid)
    from_jpegs = bench_pipeline(base, video, frames, reid=args.reid, jpegs=jpegs)
    after = bench_plain(base, jpegs, reid=args.reid)
    mean_fps = round(2 / (1 / before["fps"] + 1 / after["fps"]), 2)
    plain = {**after, "fps": mean_fps, "seconds": round(frames / mean_fps, 3),
             "fps_before": before["fps"], "fps_after": after["fps"],
             "cpu_ms_per_frame": round((before["cpu_ms_per_frame"]
                                        + after["cpu_ms_per_frame"]) / 2, 2)}
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "video": video.name,
        "frames": frames,
        "reid": args.reid,
        "broker_age_s": broker_age,
        "pipeline": pipeline,
        "pipeline_from_jpegs": from_jpegs,
        "plain_loop": plain,
        "ratio_pipeline_to_plain": round(pipeline["fps"] / plain["fps"], 3),
        "ratio_from_jpegs_to_plain": round(from_jpegs["fps"] / plain["fps"], 3),
        "cpu_ratio_plain_to_pipeline": round(plain["cpu_ms_per_frame"]
                                             / pipeline["cpu_ms_per_frame"]["total"], 3),
    }
    out = sys.stdout
    out.write(format_throughput(result) + "\n")
    text = json.dumps(result, indent=2)
    out.write(text + "\n")
    if note := m.young_broker_note(broker_age):
        out.write(note + "\n")
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
