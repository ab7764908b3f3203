"""The one shape every stream stage has, and what the runner hands it.

A stage is a small class: a ``name`` (metric label, dead-letter key, settings prefix
``ARGUS_<NAME>_``), the logical topics it reads (``inputs``) and writes (``output``), a
settings class (``settings_class``) with ``enabled`` and the micro-batch size, and four
methods:

* ``build(ctx)`` (class method): the stage, or ``None`` when it has nothing to do here (no
  watchlist key, no trained model...); the worker does not build a stage whose settings
  say ``enabled=false``;
* ``parse(record)``: the typed input of one Kafka record, or raise :class:`Rejected`
  (a dead letter with that reason) or :class:`Skipped` (counted, not an error);
* ``async handle(batch)``: the outputs of each parsed input, one list per input, or a
  :class:`Rejected` for an input that failed on its own (e.g. a corrupt JPEG);
* ``key(out)``: the Kafka key of an output (camera for frames and tracks, site for events).

Optional: ``timers()`` for periodic work, ``tables`` (named state the runner keeps in
changelog-backed tables, handed out by :meth:`StageContext.table`), ``retry_on`` (errors of
external calls the runner retries with backoff instead of dead-lettering) and ``started()``.

Everything a stage would otherwise repeat lives in :mod:`pipelines.runner`: the Kafka
consumer, micro-batching, the stage metrics and in-flight gauge, dead letters, retries with
a time limit per attempt, acknowledgements (only after the batch's outputs are sent) and a
shutdown that never commits unprocessed input. ``docs/adding-a-stage.md`` walks through an
example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import redis.asyncio as aioredis
from pydantic_settings import BaseSettings, SettingsConfigDict

from argus.kafka import Rejected
from argus.metrics import VIDEO_EVENTS
from argus.settings import Settings
from argus.stores.frame_cache import FrameCache
from argus.topology import Topology
from schemas.events import VideoEvent

__all__ = ["Message", "OneByOne", "Record", "Rejected", "Skipped", "Stage", "StageContext",
           "StageSettings", "Timer", "counted"]


class Skipped(Exception):
    """A record the stage leaves alone on purpose (not an error): counted in
    ``argus_stage_skipped_total{stage, reason}`` and acknowledged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Message(Protocol):
    """What a stage emits: any message of ``schemas/`` (they all serialise themselves)."""

    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True)
class Record:
    """One Kafka record as a stage sees it (``topic`` is the logical name, no prefix)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Any = None
    partition: int = -1
    offset: int = -1


class StageSettings(BaseSettings):
    """Settings every stage has; a stage's own class adds its fields and sets
    ``env_prefix`` to ``ARGUS_<NAME>_`` (e.g. ``ARGUS_DETECT_BATCH=16``)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    enabled: bool = True
    """``false``: the worker does not run this stage."""
    batch: int = 1
    """Records handed to ``handle`` at once (at most)."""
    batch_window_s: float = 0.0
    """How long to wait for a batch to fill once its first record is there."""
    pipeline_depth: int = 1
    """Micro-batches in flight at once (stages without tables); outputs and acks stay in
    input order. 2 keeps an external server busy while the previous batch is finished."""
    attempt_timeout_s: float = 60.0
    """Time limit of one ``handle`` call; past it the call counts as failed (retried when
    the stage retries, else dead-lettered as ``timeout``)."""


@dataclass(frozen=True)
class Timer:
    """Periodic work of a stage (``on_leader``: one worker of the group runs it)."""

    name: str
    interval_s: float
    run: Callable[[], Awaitable[None]]
    on_leader: bool = False


SendFn = Callable[[str, bytes, bytes], Awaitable[None]]


@dataclass
class StageContext:
    """What the runner hands ``build``: settings, topology, the shared clients, named
    state and a way to send to other topics (for stages with side outputs)."""

    settings: Settings
    topology: Topology
    redis: aioredis.Redis
    frame_cache: FrameCache
    cached_cameras: frozenset[str]
    """Cameras whose frames later stages read from the frame cache."""
    send: SendFn
    """``send(logical_topic, key, value)``; awaits the broker's acknowledgement."""
    tables: Callable[[str], MutableMapping[str, Any]]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def table(self, name: str) -> MutableMapping[str, Any]:
        """Named state of a stage (a changelog-backed table, restored after a restart or
        a rebalance, partitioned like the stage's input)."""
        return self.tables(name)


In = TypeVar("In")
Out = TypeVar("Out", bound=Message)
Result = list[Out] | Rejected


class Stage(ABC, Generic[In, Out]):
    """The interface of a stream stage (see the module docstring)."""

    name: ClassVar[str]
    inputs: tuple[str, ...]
    """Logical topics read (a stage may choose them per instance, e.g. by mode)."""
    output: str | None = None
    settings_class: ClassVar[type[StageSettings]] = StageSettings
    tables: ClassVar[tuple[str, ...]] = ()
    retry_on: ClassVar[tuple[type[BaseException], ...]] = ()
    """Errors of external calls (Triton, Redis) that are not the record's fault: the
    runner retries the batch with backoff (lag grows, nothing is dead-lettered)."""
    settings: StageSettings

    @classmethod
    @abstractmethod
    def build(cls, ctx: StageContext) -> Stage[Any, Any] | None:
        """The stage for this worker, or None when it has nothing to do here."""

    @abstractmethod
    def parse(self, record: Record) -> In:
        """The typed input of one record; raises :class:`Rejected` or :class:`Skipped`."""

    @abstractmethod
    async def handle(self, batch: Sequence[In]) -> Sequence[Result[Out]]:
        """One result per input: its outputs, or its own :class:`Rejected`."""

    def key(self, out: Out) -> bytes:
        """The Kafka key of an output."""
        raise NotImplementedError(f"stage {self.name} emits but defines no key()")

    def timers(self) -> list[Timer]:
        return []

    async def started(self) -> None:
        """Runs once when the worker has started (e.g. to check a model is ready)."""


class OneByOne(Stage[In, Out]):
    """A stage whose work is per record: implement ``handle_one``."""

    async def handle(self, batch: Sequence[In]) -> Sequence[Result[Out]]:
        results: list[Result[Out]] = []
        for item in batch:
            try:
                results.append(list(await self.handle_one(item)))
            except Rejected as rejected:
                results.append(rejected)
        return results

    @abstractmethod
    async def handle_one(self, item: In) -> Sequence[Out]:
        """The outputs of one input."""


def counted(events: Sequence[VideoEvent]) -> list[VideoEvent]:
    """``events``, counted in ``argus_video_events_total{kind}`` (every stage that emits
    video events passes them through here)."""
    for event in events:
        VIDEO_EVENTS.labels(event.kind).inc()
    return list(events)
