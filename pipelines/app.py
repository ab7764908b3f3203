"""The Faust application: wires the stages to their topics.

    frames.raw ─detect─► detections ─zones─► events.video ─┐
                              └─track─► tracks             │
                                          └─behaviour─► events.video (lines, loitering, ...)
                                        events.face ───────┤
                                        sensors.events ────┼─correlate─► alerts + Redis
                        (timer, per site) correlation.ticks┘    (rules: config/rules.yaml)

Each agent runs with ``concurrency=1`` (faust bug #606: concurrency > 1 can commit past
an in-flight message) and gets parallelism inside the agent: the detect stage takes
micro-batches (``take_events``) and sends their frames to Triton concurrently.
Delivery is at-least-once; every sink is idempotent (deterministic ids).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any, cast

import faust
import redis.asyncio as aioredis
from pydantic import ValidationError
from tritonclient.grpc import InferenceServerException

from argus.kafka import DLQ_REQUEST_BYTES, dead_letter
from argus.log import get_logger
from argus.metrics import (
    CORRELATION_DUPLICATES,
    DLQ_WRITES,
    KAFKA_PRODUCE_ERRORS,
    STAGE_BATCH,
    STAGE_ERRORS,
    STAGE_IN,
    STAGE_LATENCY,
    STAGE_OUT,
    VIDEO_EVENTS,
    in_flight,
)
from argus.settings import Settings
from argus.topology import Topology
from pipelines.anomaly import AnomalyAgent, anomaly_enabled
from pipelines.behaviour.stage import BehaviourStage, UnknownCamera
from pipelines.correlate import (
    COMMAND_RETRY_S,
    AlertWriter,
    RulesFile,
    known_site,
    observe,
    parse_event,
)
from pipelines.detect import (
    COCO_CLASSES,
    Rejected,
    TritonDetector,
    check_frame,
    detect_frames,
)
from pipelines.face_agent import FaceAgent, faces_enabled
from pipelines.frame_cache import FrameCache, cameras_needing_frames
from pipelines.pose import TritonPose
from pipelines.track import TrackerRegistry, TrackSettings
from pipelines.zones import ZoneIntrusion
from schemas.detections import Detections
from schemas.events import VideoEvent
from schemas.frames import FrameHeaders

log = get_logger(__name__)

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                       "value_serializer": "raw"}


def create_app(settings: Settings, topology: Topology) -> faust.App:
    """Build the Faust app with the detect, zones, track and correlate agents."""
    datadir = settings.stack_dir / "faust" / f"{settings.app_id}-data"
    datadir.mkdir(parents=True, exist_ok=True)  # faust does not create parent folders
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=6,
        topic_replication_factor=1,
        producer_max_request_size=DLQ_REQUEST_BYTES,
        consumer_max_fetch_size=4 * settings.max_frame_bytes,
        stream_buffer_maxsize=32,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_commit_interval=1.0,
        datadir=str(datadir),
    )
    frames = app.topic(settings.topic("frames.raw"), **RAW)
    detections = app.topic(settings.topic("detections"), **RAW)
    video_events = app.topic(settings.topic("events.video"), **RAW)
    alerts = app.topic(settings.topic("alerts"), **RAW)
    commands_topic = app.topic(settings.topic("commands"), **RAW)
    dlq = app.topic(settings.topic("dlq"), **RAW)
    ticks = app.topic(settings.topic("correlation.ticks"), **RAW)
    correlation_inputs = ("events.video", "events.face", "sensors.events", "correlation.ticks")
    correlation_in = app.topic(*(settings.topic(t) for t in correlation_inputs), **RAW)
    # Values are plain JSON dicts: no value_type (with value_type=dict faust calls
    # ``dict.from_data`` when it recovers the changelog after a restart, fails, and never
    # finishes recovery).
    state_table = app.Table("correlation-state", default=dict, partitions=6, key_type=str)
    tracks_topic = app.topic(settings.topic("tracks"), **RAW)
    # Tracker state per camera, co-partitioned with `detections` (keyed by camera): a
    # restarted or rebalanced worker restores it from the changelog (ADR 0004).
    tracker_table = app.Table("tracker-state", partitions=6, key_type=str)
    track_settings = TrackSettings()
    trackers = TrackerRegistry(track_settings.tracker_config(COCO_CLASSES), COCO_CLASSES,
                               store=tracker_table,
                               persist_every_s=track_settings.persist_every_s)

    detector = TritonDetector(settings.triton_grpc_url)
    zone_rule = ZoneIntrusion()
    rules = RulesFile(settings.rules, topology)
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    frame_cache = FrameCache(redis_client, settings.frame_cache_s, settings.snapshot_ttl_s)
    cached_cameras = cameras_needing_frames(
        topology, faces_on_tracks=faces_enabled() and settings.faces_mode == "tracks")
    log.info("frame cache", extra={"ttl_s": settings.frame_cache_s,
                                   "cameras": len(cached_cameras),
                                   "of": len(topology.cameras)})
    site_ids = [site.id for site in topology.sites]

    async def send_dead_letter(stage: str, reason: str, detail: str, event: Any) -> None:
        """Dead-letter one event; never raises (a failing DLQ must not stop the stage)."""
        message = event.message
        DLQ_WRITES.labels(stage, reason).inc()
        log.warning("dead letter", extra={"stage": stage, "reason": reason, "detail": detail,
                                          "topic": message.topic, "offset": message.offset})
        try:
            letter = dead_letter(stage, reason, detail, event.value or b"", topic=message.topic,
                                 partition=message.partition, offset=message.offset,
                                 key=event.key, headers=message.headers)
            await dlq.send(key=stage.encode(), value=letter.to_bytes())
        except Exception:
            DLQ_WRITES.labels(stage, "dlq_send_failed").inc()
            STAGE_ERRORS.labels(stage, "dlq_send").inc()
            log.exception("dead letter could not be sent", extra={
                "stage": stage, "topic": message.topic, "partition": message.partition,
                "offset": message.offset})

    async def internal_error(stage: str, exc: Exception, event: Any) -> None:
        """A stage's own code failed on one message: log, count, dead-letter, go on."""
        log.exception("stage failed on a message", extra={"stage": stage})
        STAGE_ERRORS.labels(stage, "internal").inc()
        await send_dead_letter(stage, "internal_error", repr(exc), event)

    async def send(topic: Any, logical: str, key: bytes, value: bytes) -> None:
        """Produce one output message; a failure after the client's retries is counted
        and raised (the message is not acknowledged, so it is processed again)."""
        try:
            await topic.send(key=key, value=value)
        except Exception:
            KAFKA_PRODUCE_ERRORS.labels("worker", logical).inc()
            raise

    async def send_video_events(stage: str, found: list[VideoEvent]) -> None:
        """Publish a stage's behaviour events on ``events.video`` (key = site), counted."""
        for video_event in found:
            VIDEO_EVENTS.labels(video_event.kind).inc()
            await send(video_events, "events.video", video_event.site_id.encode(),
                       video_event.to_bytes())
            STAGE_OUT.labels(stage).inc()

    async def with_triton_retry(frames_in: list[tuple[FrameHeaders, bytes]]
                                ) -> list[Detections | Rejected]:
        """Triton being down is not the frames' fault: retry with backoff (the stage
        stalls and consumer lag grows, which the lag alert reports)."""
        delay = 0.5
        while True:
            try:
                return await detect_frames(detector, frames_in, settings.detect_reid)
            except InferenceServerException as exc:
                STAGE_ERRORS.labels("detect", "triton").inc()
                log.error("triton call failed; retrying", extra={"error": str(exc),
                                                                 "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    @app.agent(frames, concurrency=1)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        async for events in cast(faust.Stream, stream).take_events(settings.detect_batch,
                                               within=settings.detect_batch_window_s):
            with in_flight("detect", len(events)):
                STAGE_BATCH.labels("detect").observe(len(events))
                STAGE_IN.labels("detect").inc(len(events))
                started = time.perf_counter()
                accepted: list[tuple[FrameHeaders, bytes]] = []
                accepted_events = []
                for event in events:
                    try:
                        meta = check_frame(event.key, event.value, event.message.headers, topology,
                                           settings.max_frame_bytes)
                    except Rejected as rejected:
                        await send_dead_letter("detect", rejected.reason, rejected.detail, event)
                        continue
                    accepted.append((meta, event.value))
                    accepted_events.append(event)
                await frame_cache.put_many([(meta.camera_id, meta.seq, jpeg)
                                            for meta, jpeg in accepted
                                            if meta.camera_id in cached_cameras])
                results = await with_triton_retry(accepted)
                for event, result in zip(accepted_events, results, strict=True):
                    if isinstance(result, Rejected):
                        await send_dead_letter("detect", result.reason, result.detail, event)
                        continue
                    await send(detections, "detections", result.camera_id.encode(),
                               result.to_bytes())
                    STAGE_OUT.labels("detect").inc()
                if events:
                    per_item = (time.perf_counter() - started) / len(events)
                    for _ in events:
                        STAGE_LATENCY.labels("detect").observe(per_item)

    @app.agent(detections, concurrency=1)
    async def zones(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with in_flight("zones"):
                STAGE_IN.labels("zones").inc()
                started = time.perf_counter()
                try:
                    frame = Detections.model_validate_json(event.value)
                except ValidationError as exc:
                    await send_dead_letter("zones", "schema", str(exc), event)
                    continue
                camera = topology.camera(frame.camera_id)
                if camera is None:
                    await send_dead_letter("zones", "unknown_camera",
                                           f"camera {frame.camera_id!r} not in topology", event)
                    continue
                try:
                    found = zone_rule(frame, camera)
                except Exception as exc:
                    await internal_error("zones", exc, event)
                    continue
                await send_video_events("zones", found)
                STAGE_LATENCY.labels("zones").observe(time.perf_counter() - started)

    @app.agent(detections, concurrency=1)
    async def track(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with in_flight("track"):
                STAGE_IN.labels("track").inc()
                started = time.perf_counter()
                try:
                    frame = Detections.model_validate_json(event.value)
                except ValidationError as exc:
                    await send_dead_letter("track", "schema", str(exc), event)
                    continue
                try:
                    result = trackers.process(frame)
                except Exception as exc:
                    await internal_error("track", exc, event)
                    continue
                if result is not None:
                    await send(tracks_topic, "tracks", frame.camera_id.encode(),
                                   result.to_bytes())
                    STAGE_OUT.labels("track").inc()
                STAGE_LATENCY.labels("track").observe(time.perf_counter() - started)

    # Behaviour state per camera, co-partitioned with `tracks` (keyed by camera), restored
    # like the tracker's (docs/behaviours.md, "State and restarts").
    behaviour_table = app.Table("behaviour-state", partitions=6, key_type=str)
    # Person-down confirmation: MoveNet on Triton, only if some camera has `fall:` set.
    pose = TritonPose(settings.triton_grpc_url) if any(
        c.fall is not None and c.fall.enabled for c in topology.cameras) else None
    behaviour_stage = BehaviourStage(topology, frame_cache, store=behaviour_table,
                                     per_camera=settings.metrics_per_camera,
                                     pose=pose.keypoints if pose else None)

    @app.agent(tracks_topic, concurrency=1)
    async def behaviour(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with in_flight("behaviour"):
                STAGE_IN.labels("behaviour").inc()
                started = time.perf_counter()
                try:
                    message, camera = behaviour_stage.parse(event.value)
                except ValidationError as exc:
                    await send_dead_letter("behaviour", "schema", str(exc), event)
                    continue
                except UnknownCamera as exc:
                    await send_dead_letter("behaviour", "unknown_camera", str(exc), event)
                    continue
                try:
                    found = behaviour_stage.rules(message, camera)
                    found += await behaviour_stage.falls(message, camera)
                except Exception as exc:
                    await internal_error("behaviour", exc, event)
                    continue
                await send_video_events("behaviour", await behaviour_stage.snapshots(found))
                STAGE_LATENCY.labels("behaviour").observe(time.perf_counter() - started)

    async def send_alert_change(key: bytes, value: bytes) -> None:
        pending = await alerts.send(key=key, value=value)
        await pending  # the broker's ack before the change is marked published

    async def send_command(key: bytes, value: bytes) -> None:
        pending = await commands_topic.send(key=key, value=value)
        await pending  # the broker's ack before the command leaves the outbox

    writer = AlertWriter(settings, redis_client, send_alert_change, send_command)

    @app.timer(interval=COMMAND_RETRY_S, on_leader=True)
    async def _resend_commands() -> None:
        """Rule-action commands whose send failed (or whose worker died) are re-sent."""
        await writer.resend_commands()

    @app.agent(correlation_in, concurrency=1)
    async def correlate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            with in_flight("correlate"):
                STAGE_IN.labels("correlate").inc()
                started = time.perf_counter()
                source = event.message.topic.removeprefix(settings.topic_prefix)
                if source == "correlation.ticks":
                    site = (event.key or b"").decode()
                    if site not in site_ids:
                        continue
                    state = copy.deepcopy(state_table[site])
                    trigger = None
                    changes = rules.engine.tick(state, time.time(), site)
                else:
                    try:
                        trigger = parse_event(source, event.value)
                    except ValidationError as exc:
                        await send_dead_letter("correlate", "schema", str(exc), event)
                        continue
                    if not known_site(trigger, topology):
                        await send_dead_letter("correlate", "unknown_site",
                                               f"site {trigger.site_id!r} not in topology", event)
                        continue
                    site = trigger.site_id
                    state = copy.deepcopy(state_table[site])
                    try:
                        found = observe(rules.engine, state, trigger)
                    except Exception as exc:
                        await internal_error("correlate", exc, event)
                        continue
                    if found is None:
                        CORRELATION_DUPLICATES.labels(source).inc()
                        continue
                    changes = found
                # Alerts first, state after: a crash in between replays the event, and the
                # sink's version check makes the replay a no-op (at-least-once, no loss).
                for change in changes:
                    await writer.write(change, trigger)
                    STAGE_OUT.labels("correlate").inc()
                state_table[site] = state
                STAGE_LATENCY.labels("correlate").observe(time.perf_counter() - started)

    @app.timer(interval=settings.correlation_tick_s, on_leader=True)
    async def _tick_sites() -> None:
        """Absence and silence rules need time to pass, not only events."""
        if rules.engine.needs_ticks:
            for site in site_ids:
                await ticks.send(key=site.encode(), value=b"{}")

    @app.timer(interval=5.0)
    async def _reload_rules() -> None:
        rules.maybe_reload()

    if faces_enabled():
        face_events = app.topic(settings.topic("events.face"), **RAW)
        face_agent = FaceAgent(settings, topology, frame_cache)
        # tracks (default): faces on person tracks; frames: sampled whole frames
        face_source = tracks_topic if face_agent.mode == "tracks" else frames

        @app.agent(face_source, concurrency=1)
        async def faces(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                with in_flight("faces"):
                    STAGE_IN.labels("faces").inc()
                    started = time.perf_counter()
                    try:
                        if face_agent.mode == "tracks":
                            found = await face_agent.handle_tracks(event.value)
                        else:
                            found = await face_agent.handle(event.key, event.value,
                                                            event.message.headers)
                    except ValidationError as exc:
                        await send_dead_letter("faces", "schema", str(exc), event)
                        continue
                    except Exception as exc:
                        await internal_error("faces", exc, event)
                        continue
                    for face_event in found:
                        await send(face_events, "events.face", face_event.site_id.encode(),
                                       face_event.to_bytes())
                        STAGE_OUT.labels("faces").inc()
                    STAGE_LATENCY.labels("faces").observe(time.perf_counter() - started)

    if anomaly_enabled():  # cameras without a trained model are skipped (docs/anomaly.md)
        anomaly_agent = AnomalyAgent(settings, topology, frame_cache)

        @app.agent(frames, concurrency=1)
        async def anomaly(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                with in_flight("anomaly"):
                    STAGE_IN.labels("anomaly").inc()
                    started = time.perf_counter()
                    try:
                        found = await anomaly_agent.handle(event.key, event.value,
                                                           event.message.headers)
                    except Exception as exc:
                        await internal_error("anomaly", exc, event)
                        continue
                    await send_video_events("anomaly", found)
                    STAGE_LATENCY.labels("anomaly").observe(time.perf_counter() - started)

    @app.task
    async def _check_triton() -> None:
        if not await detector.ready():
            log.warning("triton detector not ready", extra={"url": settings.triton_grpc_url})

    return app
