"""The worker group's consumer lag as ``argus bench live`` and ``argus chaos`` read it: per
topic, and *settled* (records already there a moment earlier and still not committed)."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from argus.settings import Settings

LAG_TOPICS = ("frames.raw", "detections", "tracks", "events.video", "events.face",
              "sensors.events", "correlation.ticks")
"""The topics whose lag is counted."""


def lag_parts(consumer: KafkaConsumer, settings: Settings) -> list[TopicPartition]:
    """Every partition of :data:`LAG_TOPICS` on ``settings``' topics."""
    return [TopicPartition(settings.topic(t), p) for t in LAG_TOPICS
            for p in consumer.partitions_for_topic(settings.topic(t)) or ()]


def end_offsets(consumer: KafkaConsumer, settings: Settings) -> dict[TopicPartition, int]:
    """The end offset of every partition the lag counts, now."""
    return dict(consumer.end_offsets(lag_parts(consumer, settings)))


def group_lag(admin: KafkaAdminClient, consumer: KafkaConsumer, settings: Settings,
              groups: list[str] | None = None,
              ends_before: dict[TopicPartition, int] | None = None) -> dict[str, int]:
    """Lag per topic of the worker group(s); with several groups (``--detect-workers``),
    each counts on the topics it has committed on. With ``ends_before`` (:func:`end_offsets` a
    few seconds earlier) also ``settled``: the records that were already there then and
    are still not committed. The worker commits once a second, so the plain lag swings by
    up to a second of input with the moment it is read; ``settled`` does not, and grows
    only when the pipeline falls behind."""
    names = groups or [settings.app_id]
    parts = lag_parts(consumer, settings)
    ends, starts = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
    out = {t: 0 for t in LAG_TOPICS}
    settled = 0
    for group in names:
        committed = admin.list_group_offsets([group]).get(group, {})
        topics = {tp.topic for tp in committed}
        for tp in parts:
            if len(names) > 1 and tp.topic not in topics:
                continue
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            out[tp.topic.removeprefix(settings.topic_prefix)] += max(0, ends[tp] - offset)
            if ends_before is not None:
                settled += max(0, ends_before.get(tp, 0) - offset)
    return {**out, "total": sum(out.values()),
            **({"settled": settled} if ends_before is not None else {})}
