"""Stop, seek, then resume: how a worker starts reading its partitions after a rebalance.

After every assignment Faust's recovery service ends with ``_resume_streams`` (nothing to
restore) or ``on_recovery_completed`` (tables restored from their changelogs). Both resume
the stream partitions (paused since the assignment) and *then* seek them to their committed
offsets, awaiting the broker, with the flow already on. For the 100-300 ms of the seek the
fetcher delivers records from wherever the Kafka client stood; they are processed and
acknowledged before Faust knows the committed offset, and when the seek lands Faust resets
its read position behind records it has already handed out. Its offset bookkeeping then no
longer matches what was delivered: the delivered range is recorded as a gap as well (offsets
counted twice, so the commit advances by one offset a commit interval), or an offset that
will never be acknowledged stays at its head (the commit stands still until the next
rebalance). Processing goes on; the committed offset does not, so the lag, "behind" alerts
and the redelivery after the next crash all grow. Seen after most ``kill -9`` restarts of a
worker with a backlog (``argus chaos --faults worker-kill``): one ``frames.raw`` partition's
commit stood still for 20-40 s, or for good.

Only swapping the two steps is not enough: a fetch already queued in the Kafka client's
thread can then return records of the still-paused partitions, which Faust drops while the
client's position moves past them (records never processed; seen as lost ``panic`` events).
So :class:`SeekFirstRecovery` stops the flow first, seeks (the client's thread runs one call
at a time, so a running fetch ends before the seek, and Faust discards what it returns while
the flow is stopped), resumes the stream partitions, and only then resumes the flow: the
first record a stage sees is the first uncommitted one, and every acknowledgement lands where
Faust expects it. It is installed through Faust's own ``TableManager`` setting
(:class:`SeekFirstTableManager`); the rest of the two methods is Faust 0.15.3's
(``faust/tables/recovery.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables import TableManager
from faust.tables.recovery import Recovery


class SeekFirstRecovery(Recovery):
    """Faust's recovery with ``_resume_streams`` and ``on_recovery_completed`` seeking the
    stream partitions before they resume them."""

    async def _seek_then_resume(self, assignment: set[Any]) -> None:
        """Stop the flow, seek, resume the stream partitions; the caller resumes the flow.

        With the flow stopped, a fetch that is already running in the Kafka client's thread
        finishes before the seek (the thread runs one call at a time) and Faust discards
        its records (flow inactive); fetches queued after it return nothing. Without the
        stop, such a fetch could hand over records of partitions Faust had paused, which
        it drops while the client's position moves past them: records lost, never seen."""
        consumer: Any = self.app.consumer
        consumer.stop_flow()
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(),
                         timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})

    async def _resume_streams(self, generation_id: int = 0) -> None:
        app: Any = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            await self._seek_then_resume(assignment)
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        self.log.info("Resuming flow...")
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callback_coros = [
            asyncio.ensure_future(table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(f"Recovery rebalancing again app id "
                             f"{app.consumer_generation_id} param {generation_id}")
            return
        if assignment:
            await self._seek_then_resume(assignment)
        else:  # Faust resumes the (empty) set of stream partitions here
            consumer.resume_partitions(set())
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class SeekFirstTableManager(TableManager):
    """Faust's table manager with :class:`SeekFirstRecovery` as its recovery service."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon,
                                               loop=self.loop)
        return self._recovery
