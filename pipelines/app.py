"""The stream worker's Faust app: the declared stages (``pipelines.stages.STAGES``), each
built from its settings and run by :mod:`pipelines.runner`.

A worker runs every stage, or a subset (``argus worker --stages detect,track``). Its
consumer group (the Faust app id) is ``ARGUS_APP_ID`` for the whole pipeline and
``<app id>-<stage>-<stage>...`` for a subset, so workers started with the same stages share
their work (Kafka partitions are the ceiling) and a subset never steals the records of
another. Named state (tables) follows the app id: see docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

import faust
import redis.asyncio as aioredis

from argus.kafka import DLQ_REQUEST_BYTES
from argus.log import get_logger, limit_client_repeats
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache, cameras_needing_frames
from argus.topology import Topology
from pipelines.recovery import SeekFirstTableManager
from pipelines.runner import RAW, StageRunner, add_agent
from pipelines.stage import Stage, StageContext
from pipelines.stages import STAGES, stage_classes
from pipelines.stages.faces.stage import faces_wanted
from pipelines.worker import deadline_worker, instance_id

log = get_logger(__name__)

TABLE_PARTITIONS = 6
"""Tables are co-partitioned with the stage inputs (see ops/topics.yaml)."""


def group_id(settings: Settings, names: Iterable[str]) -> str:
    """The app id (consumer group) of a worker running ``names``.

    >>> group_id(Settings(), [s.name for s in STAGES])
    'argus'
    >>> group_id(Settings(), ["track", "detect"])
    'argus-detect-track'
    """
    chosen = sorted(set(names))
    if chosen == sorted(s.name for s in STAGES):
        return settings.app_id
    return "-".join([settings.app_id, *chosen])


def create_app(settings: Settings, topology: Topology,
               stages: list[str] | None = None) -> faust.App:
    """The Faust app running ``stages`` (default: every declared stage)."""
    classes = stage_classes(stages)
    app_id = group_id(settings, [cls.name for cls in classes])
    datadir = settings.stack_dir / "faust" / f"{app_id}-data"
    datadir.mkdir(parents=True, exist_ok=True)  # faust does not create parent folders
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=TABLE_PARTITIONS,
        topic_replication_factor=1,
        producer_max_request_size=DLQ_REQUEST_BYTES,
        # 5 ms of batching: without it every output is a produce request of its own, and
        # at 8 cameras x 5 fps the socket writes were a quarter of the worker's CPU
        producer_linger=0.005,
        consumer_max_fetch_size=4 * settings.max_frame_bytes,
        # records buffered per stream ahead of its agent (Faust's default is 4096): at 32
        # the detect stage waited on fetches with Triton half idle; 256 frames (~20 MB) gave
        # +20-25 % frames/s in `make bench` (docs/benchmarks.md); a live backlog is still
        # bounded by the detect stage's stale-frame skipping
        stream_buffer_maxsize=256,
        stream_wait_empty=False,  # shutdown: in-flight records stay uncommitted (runner)
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.worker_session_timeout_s,
        consumer_group_instance_id=instance_id(settings, app_id),
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 3),
        datadir=str(datadir),
        Worker=deadline_worker(settings.worker_stop_timeout_s),  # a bounded stop
        TableManager=SeekFirstTableManager,  # seek, then resume (pipelines/recovery.py)
    )
    limit_client_repeats()  # the Kafka client's loggers exist now (argus.log)
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    # The detect stage caches the frames of cameras whose frames a later stage reads
    # (wherever that stage runs): snapshots, pose, faces on person tracks.
    cached = cameras_needing_frames(topology, faces_on_tracks=faces_wanted(settings))
    log.info("frame cache", extra={"ttl_s": settings.frame_cache_s, "cameras": len(cached),
                                   "of": len(topology.cameras),
                                   "snapshots_sealed": bool(settings.evidence_key)})
    if cached and not settings.evidence_key:
        log.warning("snapshots are stored as plain JPEG: set ARGUS_EVIDENCE_KEY to seal them "
                    "at rest (docs/privacy.md)")
    tables: dict[str, MutableMapping[str, Any]] = {}

    def table(name: str) -> MutableMapping[str, Any]:
        if name not in tables:
            tables[name] = app.Table(name, partitions=TABLE_PARTITIONS, key_type=str)
        return tables[name]

    async def send(topic: str, key: bytes, value: bytes) -> None:
        pending = await app.topic(settings.topic(topic), **RAW).send(key=key, value=value)
        await pending  # the broker's acknowledgement

    ctx = StageContext(settings=settings, topology=topology, redis=redis_client,
                       frame_cache=FrameCache.from_settings(redis_client, settings),
                       cached_cameras=cached, send=send, tables=table)
    built: list[Stage[Any, Any]] = []
    for cls in classes:
        if not cls.settings_class().enabled:
            prefix = str(cls.settings_class.model_config.get("env_prefix", ""))
            log.info("stage off", extra={"stage": cls.name, "by": f"{prefix}ENABLED"})
            continue
        stage = cls.build(ctx)
        if stage is None:
            log.info("stage off", extra={"stage": cls.name, "by": "nothing to do"})
            continue
        built.append(stage)
        add_agent(app, StageRunner(stage, app, settings))
        for timer in stage.timers():
            app.timer(interval=timer.interval_s, on_leader=timer.on_leader,
                      name=f"{stage.name}.{timer.name}")(timer.run)
    log.info("worker stages", extra={"app_id": app_id,
                                     "stages": [stage.name for stage in built]})

    @app.task
    async def _ready() -> None:
        for stage in built:
            await stage.started()

    return app
