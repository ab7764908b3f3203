"""The faces stage: person tracks (or sampled frames) → Triton ``faces`` → watchlist match
→ ``events.face`` (matches only). The work is :class:`~.agent.FaceAgent`; it runs when a
watchlist key is configured (``ARGUS_FACE_KEY``), see docs/faces.md."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from argus.settings import Settings
from pipelines.stage import OneByOne, Record, Rejected, StageContext
from pipelines.stages.faces.agent import FaceAgent, FacesSettings, faces_enabled
from schemas.faces import FaceEvent


def faces_wanted(settings: Settings) -> bool:
    """Whether the faces stage runs on person tracks (it then reads frames from the frame
    cache, which the detect stage fills)."""
    config = FacesSettings()
    return faces_enabled() and config.enabled and config.mode == "tracks"


class Faces(OneByOne[Record, FaceEvent]):
    name = "faces"
    inputs: tuple[str, ...] = ("tracks",)
    """``tracks`` (default mode) or ``frames.raw`` (``ARGUS_FACES_MODE=frames``)."""
    output = "events.face"
    settings_class = FacesSettings
    settings: FacesSettings

    def __init__(self, agent: FaceAgent) -> None:
        self.agent = agent
        self.settings = agent.config
        self.inputs = ("tracks",) if agent.mode == "tracks" else ("frames.raw",)

    @classmethod
    def build(cls, ctx: StageContext) -> Faces | None:
        config = FacesSettings()
        if not faces_enabled():
            return None
        return cls(FaceAgent(ctx.settings, ctx.topology, ctx.frame_cache, config))

    def parse(self, record: Record) -> Record:
        return record

    async def handle_one(self, item: Record) -> Sequence[FaceEvent]:
        try:
            if self.agent.mode == "tracks":
                return await self.agent.handle_tracks(item.value or b"")
            return await self.agent.handle(item.key, item.value, item.headers)
        except ValidationError as exc:
            raise Rejected("schema", str(exc)) from None

    def key(self, out: FaceEvent) -> bytes:
        return out.site_id.encode()

