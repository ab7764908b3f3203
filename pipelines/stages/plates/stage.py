"""The plate stage: vehicle tracks of the cameras with ``plates:`` in the topology → Triton
``plates`` → per-track vote → hotlists and allow lists → ``events.plate`` (docs/plates.md).
The work is :class:`~.agent.PlateAgent`; it runs when a camera reads plates and the plate
key (``ARGUS_PLATE_KEY``) is set."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from redis.exceptions import RedisError
from tritonclient.grpc import InferenceServerException

from argus.log import get_logger
from pipelines.stage import OneByOne, Record, Rejected, Skipped, StageContext, StageSettings
from pipelines.stages.plates.agent import PlateAgent, plate_key
from pipelines.stages.plates.tracks import PlateTrackConfig
from schemas.plates import PlateEvent
from schemas.tracks import Tracks

log = get_logger(__name__)


class PlatesSettings(StageSettings):
    """``ARGUS_PLATES_<NAME>``; per camera: ``plates:`` in the topology."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_PLATES_", frozen=True, extra="ignore")

    interval_s: float = 0.5
    """At most one read per vehicle track every this many seconds of capture time."""
    max_reads: int = 6
    """Reads per track at most."""
    min_reads: int = 2
    """A track's plate is published once this many reads agree (video cameras)."""
    min_share: float = 0.6
    """… and every character won with this share of the votes (on stills: this confidence)."""


class Plates(OneByOne[Tracks, PlateEvent]):
    name = "plates"
    inputs = ("tracks",)
    output = "events.plate"
    settings_class = PlatesSettings
    settings: PlatesSettings
    retry_on = (InferenceServerException, RedisError)

    def __init__(self, agent: PlateAgent, settings: PlatesSettings) -> None:
        self.agent = agent
        self.settings = settings
        self.cameras = frozenset(agent.plate_cameras(agent.topology))

    @classmethod
    def build(cls, ctx: StageContext) -> Plates | None:
        if not PlateAgent.plate_cameras(ctx.topology):
            return None
        key = plate_key()
        if key is None:
            return None
        config = PlatesSettings()
        track_config = PlateTrackConfig(interval_s=config.interval_s,
                                        max_reads=config.max_reads,
                                        min_reads=config.min_reads, min_share=config.min_share)
        return cls(PlateAgent(ctx.settings, ctx.topology, ctx.frame_cache, track_config, key),
                   config)

    def parse(self, record: Record) -> Tracks:
        if record.key is not None and record.key.decode(errors="replace") not in self.cameras:
            raise Skipped("no_plates")  # tracks are keyed by camera: not a plate camera
        try:
            return Tracks.model_validate_json(record.value or b"")
        except ValidationError as exc:
            raise Rejected("schema", str(exc)) from None

    async def handle_one(self, item: Tracks) -> Sequence[PlateEvent]:
        return await self.agent.handle(item)

    def key(self, out: PlateEvent) -> bytes:
        return out.site_id.encode()
