"""The one runner of every stage: a Faust app with one agent per stage.

What every stage would otherwise repeat lives here, once:

* **consuming** the stage's input topics in its consumer group, with ``concurrency=1``
  (faust bug #606) and micro-batches of ``settings.batch`` records gathered within
  ``settings.batch_window_s`` (parallelism inside the batch is the stage's business);
* **metrics**: ``argus_stage_messages_in/out_total``, ``argus_stage_latency_seconds``,
  ``argus_stage_batch_size``, ``argus_stage_in_flight``, ``argus_stage_errors_total``,
  ``argus_stage_skipped_total``;
* **dead letters** for records the stage rejects (``Rejected``, schema errors, its own
  exceptions), with the source topic/partition/offset and the original bytes;
* **retries** of the errors a stage declares as external (``retry_on``: Triton, Redis),
  with bounded, jittered exponential backoff (:class:`argus.backoff.Backoff`; one log line
  when the failure starts and one when it ends, every attempt counted) and a time limit on
  every attempt (``attempt_timeout_s``);
* **acknowledgements**: a record is acknowledged only after its outputs were sent, its dead
  letter written or its skip counted — never by the iterator. Faust's own acks would ack a
  record whose processing was cancelled;
* **shutdown**: the app does not wait for in-flight records (``stream_wait_empty=False``):
  on SIGTERM the agents are cancelled and what was in flight is not committed, so it is
  redelivered after a restart (at-least-once; every sink is idempotent).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import faust
from faust.streams import _current_event  # Faust's "current event" (tables use it)
from faust.types import EventT
from pydantic import ValidationError

from argus.backoff import Backoff
from argus.kafka import dead_letter
from argus.log import get_logger
from argus.metrics import (
    DLQ_WRITES,
    KAFKA_PRODUCE_ERRORS,
    STAGE_BATCH,
    STAGE_ERRORS,
    STAGE_IN,
    STAGE_LATENCY,
    STAGE_OUT,
    STAGE_SKIPPED,
    in_flight,
)
from argus.settings import Settings
from pipelines.stage import Record, Rejected, Result, Skipped, Stage

log = get_logger(__name__)

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                       "value_serializer": "raw"}
MAX_BACKOFF_S = 5.0
"""The longest wait between two retries of a stage's external call: the time a stage may
still sleep after its server is back (with 30 s, `argus chaos` measured 34 s from Triton's
return to fresh detections after a 20 s outage)."""


def error_kind(exc: BaseException) -> str:
    """A bounded label for ``argus_stage_errors_total{kind}``.

    >>> error_kind(TimeoutError())
    'timeout'
    >>> error_kind(ConnectionRefusedError())
    'connection'
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    module = type(exc).__module__
    if "InferenceServerException" in names or module.startswith("tritonclient"):
        return "triton"
    if "RedisError" in names or module.startswith("redis"):
        return "redis"
    if "KafkaError" in names or module.startswith(("kafka", "aiokafka")):
        return "kafka"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "connection"
    return "internal"


class StageRunner:
    """Runs one stage's micro-batches: parse, handle (with retries), send, dead-letter,
    acknowledge. Independent of Faust except for the events it is given."""

    def __init__(self, stage: Stage[Any, Any], app: faust.App, settings: Settings) -> None:
        self.stage = stage
        self.name = stage.name
        self.settings = settings
        self.dlq = app.topic(settings.topic("dlq"), **RAW)
        self.out = app.topic(settings.topic(stage.output), **RAW) if stage.output else None

    def record(self, event: EventT) -> Record:
        message = event.message
        return Record(topic=message.topic.removeprefix(self.settings.topic_prefix),
                      key=cast(bytes | None, event.key), value=cast(bytes | None, event.value),
                      headers=message.headers, partition=message.partition,
                      offset=message.offset)

    async def run(self, events: Sequence[EventT],
                  after: asyncio.Future[None] | None = None) -> None:
        """Process one micro-batch and acknowledge every record of it. ``after``: the
        previous batch, still in flight; this one's outputs and acks wait for it, so they
        stay in input order (one camera's detections in frame order)."""
        name = self.name
        with in_flight(name, len(events)):
            STAGE_BATCH.labels(name).observe(len(events))
            STAGE_IN.labels(name).inc(len(events))
            started = time.perf_counter()
            parsed: list[Any] = []
            kept: list[EventT] = []
            for event in events:
                item = await self.parse(event)
                if item is not _DONE:
                    parsed.append(item)
                    kept.append(event)
            results = await self.handle_all(parsed, kept) if parsed else []
            if after is not None:
                await asyncio.wait([after])  # its failure is its own agent's to report
            for event, result in zip(kept, results, strict=True):
                if isinstance(result, Rejected):
                    await self.dead_letter(result.reason, result.detail, event)
                    continue
                for out in result:
                    await self.send(out)
            per_item = (time.perf_counter() - started) / len(events)
            for _ in events:
                STAGE_LATENCY.labels(name).observe(per_item)
        for event in events:
            event.ack()

    async def parse(self, event: EventT) -> Any:
        try:
            return self.stage.parse(self.record(event))
        except Skipped as skipped:
            STAGE_SKIPPED.labels(self.name, skipped.reason).inc()
        except Rejected as rejected:
            await self.dead_letter(rejected.reason, rejected.detail, event)
        except ValidationError as exc:
            await self.dead_letter("schema", str(exc), event)
        except Exception as exc:
            await self.internal_error(exc, event)
        return _DONE

    async def handle_all(self, batch: list[Any], events: list[EventT]
                         ) -> Sequence[Result[Any]]:
        """The whole batch at once, or, for a stage with tables, one record at a time with
        that record as Faust's current event (a table write goes to its partition)."""
        if not self.stage.tables:
            return await self.handle(batch, events)
        results: list[Result[Any]] = []
        for item, event in zip(batch, events, strict=True):
            _current_event.set(weakref.ref(event))
            try:
                results.extend(await self.handle([item], [event]))
            finally:
                _current_event.set(None)
        return results

    async def handle(self, batch: list[Any], events: list[EventT]) -> Sequence[Result[Any]]:
        """``stage.handle`` with a time limit per attempt; declared external errors are
        retried with backoff until they pass (or the worker stops); anything else fails
        only the record that caused it (a batch is re-run one record at a time)."""
        backoff = Backoff(initial=0.5, cap=MAX_BACKOFF_S)
        limit = self.stage.settings.attempt_timeout_s
        retry_on = self.stage.retry_on
        failing_since: float | None = None
        while True:
            try:
                results = await asyncio.wait_for(self.stage.handle(batch), limit)
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}.handle returned {len(results)} results "
                                       f"for {len(batch)} inputs")
                if failing_since is not None:  # one line per state change, not per retry
                    log.warning("external call recovered", extra={
                        "stage": self.name, "attempts": backoff.attempts,
                        "failing_s": round(time.monotonic() - failing_since, 1)})
                return results
            except Exception as exc:
                kind = error_kind(exc)
                if retry_on and isinstance(exc, (*retry_on, TimeoutError)):
                    STAGE_ERRORS.labels(self.name, kind).inc()
                    delay = backoff.next_delay()
                    if failing_since is None:
                        failing_since = time.monotonic()
                        log.error("external call failed; retrying with backoff (every "
                                  "attempt is counted in argus_stage_errors_total)", extra={
                                      "stage": self.name, "kind": kind, "error": repr(exc),
                                      "retry_in_s": round(delay, 2)})
                    await asyncio.sleep(delay)
                    continue
                if len(batch) > 1:
                    return [(await self.handle([one], [event]))[0]
                            for one, event in zip(batch, events, strict=True)]
                STAGE_ERRORS.labels(self.name, kind).inc()
                log.exception("stage failed on a message", extra={"stage": self.name})
                reason = "timeout" if isinstance(exc, TimeoutError) else "internal_error"
                return [Rejected(reason, repr(exc))]

    async def send(self, out: Any) -> None:
        """Produce one output; a failure after the client's retries is counted and raised
        (the batch is not acknowledged, so it is processed again)."""
        assert self.out is not None, f"stage {self.name} has outputs but no output topic"
        try:
            await self.out.send(key=self.stage.key(out), value=out.to_bytes())
        except Exception:
            KAFKA_PRODUCE_ERRORS.labels("worker", self.stage.output or "").inc()
            raise
        STAGE_OUT.labels(self.name).inc()

    async def internal_error(self, exc: Exception, event: EventT) -> None:
        log.exception("stage failed on a message", extra={"stage": self.name})
        STAGE_ERRORS.labels(self.name, "internal").inc()
        await self.dead_letter("internal_error", repr(exc), event)

    async def dead_letter(self, reason: str, detail: str, event: EventT) -> None:
        """Dead-letter one record; never raises (a failing DLQ must not stop the stage)."""
        message = event.message
        DLQ_WRITES.labels(self.name, reason).inc()
        log.warning("dead letter", extra={"stage": self.name, "reason": reason,
                                          "detail": detail[:500], "topic": message.topic,
                                          "offset": message.offset})
        try:
            letter = dead_letter(self.name, reason, detail, cast(bytes, event.value or b""),
                                 topic=message.topic, partition=message.partition,
                                 offset=message.offset, key=cast(bytes | None, event.key),
                                 headers=message.headers)
            await self.dlq.send(key=self.name.encode(), value=letter.to_bytes())
        except Exception:
            DLQ_WRITES.labels(self.name, "dlq_send_failed").inc()
            STAGE_ERRORS.labels(self.name, "dlq_send").inc()
            log.exception("dead letter could not be sent", extra={
                "stage": self.name, "topic": message.topic, "partition": message.partition,
                "offset": message.offset})


_DONE = object()
"""``parse`` finished the record itself (skipped or dead-lettered)."""


async def take(queue: asyncio.Queue[EventT], size: int, window_s: float) -> list[EventT]:
    """The next micro-batch: wait for one event, then up to ``size`` within ``window_s``."""
    batch = [await queue.get()]
    deadline = time.monotonic() + window_s
    while len(batch) < size:
        if not queue.empty():
            batch.append(queue.get_nowait())
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), left))
        except TimeoutError:
            break
    return batch


def add_agent(app: faust.App, runner: StageRunner) -> None:
    """One agent for the stage: a reader fills a small queue from a stream whose acks are
    manual; the agent takes micro-batches from it and runs up to ``pipeline_depth`` of them
    at once (a stage with tables: one), outputs and acks in input order."""
    stage = runner.stage
    topics = app.topic(*(runner.settings.topic(t) for t in stage.inputs), **RAW)
    size = max(1, stage.settings.batch)
    depth = 1 if stage.tables else max(1, stage.settings.pipeline_depth)

    async def agent(stream: faust.StreamT[bytes]) -> None:
        queue: asyncio.Queue[EventT] = asyncio.Queue(maxsize=2 * size)
        running: deque[asyncio.Task[None]] = deque()

        async def read() -> None:
            async for event in cast(faust.Stream, stream).noack().events():
                await queue.put(event)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                batch = await take(queue, size, stage.settings.batch_window_s)
                previous = running[-1] if running else None
                running.append(asyncio.ensure_future(runner.run(batch, previous)))
                while running and (len(running) >= depth or running[0].done()):
                    try:
                        await running.popleft()
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # a send failed: not acknowledged, redelivered later
                        log.exception("batch failed; its records stay unacknowledged",
                                      extra={"stage": stage.name})
                        STAGE_ERRORS.labels(stage.name, "kafka").inc()
                        raise
        finally:
            reader.cancel()
            for task in running:
                task.cancel()

    agent.__name__ = agent.__qualname__ = stage.name
    app.agent(topics, name=stage.name, concurrency=1)(agent)
