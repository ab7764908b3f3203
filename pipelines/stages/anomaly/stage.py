"""The anomaly stage: ``frames.raw`` → Triton ``anomaly`` → ``events.video`` (learned
motion anomaly per camera). The work is :class:`~.agent.AnomalyAgent`; see docs/anomaly.md.
Cameras without a trained model cost one Triton question per ``ARGUS_ANOMALY_RETRY_S``."""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.stage import OneByOne, Record, StageContext, counted
from pipelines.stages.anomaly.agent import AnomalyAgent, AnomalySettings
from schemas.events import VideoEvent


class Anomaly(OneByOne[Record, VideoEvent]):
    name = "anomaly"
    inputs = ("frames.raw",)
    output = "events.video"
    settings_class = AnomalySettings
    settings: AnomalySettings

    def __init__(self, agent: AnomalyAgent) -> None:
        self.agent = agent
        self.settings = agent.config

    @classmethod
    def build(cls, ctx: StageContext) -> Anomaly | None:
        config = AnomalySettings()
        return cls(AnomalyAgent(ctx.settings, ctx.topology, ctx.frame_cache, config))

    def parse(self, record: Record) -> Record:
        return record  # bad frames are the detect stage's to dead-letter

    async def handle_one(self, item: Record) -> Sequence[VideoEvent]:
        return counted(await self.agent.handle(item.key, item.value, item.headers))

    def key(self, out: VideoEvent) -> bytes:
        return out.site_id.encode()
