"""The worker's recovery seeks its stream partitions with the flow stopped, before it
resumes them (pipelines/recovery.py); the integration test that fails without it is
``test_kill_and_restart_under_backlog_commits_to_the_end`` in
tests/integration/test_worker_lifecycle.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from argus.settings import Settings
from argus.topology import load_topology
from pipelines.app import create_app
from pipelines.recovery import SeekFirstRecovery, SeekFirstTableManager

TOPOLOGY = Path(__file__).resolve().parents[1] / "topology.yaml"


class Consumer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def stop_flow(self) -> None:
        self.calls.append(("stop_flow", None))

    async def perform_seek(self) -> None:
        self.calls.append(("perform_seek", None))

    def resume_partitions(self, tps: set[str]) -> None:
        self.calls.append(("resume_partitions", tps))


def test_stop_seek_then_resume_only_the_stream_partitions() -> None:
    consumer = Consumer()

    async def wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    recovery = SimpleNamespace(
        app=SimpleNamespace(consumer=consumer, conf=SimpleNamespace(broker_request_timeout=5)),
        log=SimpleNamespace(info=lambda *a: None), _wait=wait,
        _is_changelog_tp=lambda tp: tp.endswith("-changelog"))
    asyncio.run(SeekFirstRecovery._seek_then_resume(
        recovery, {"frames.raw", "tracks", "app-tracker-changelog"}))  # type: ignore[arg-type]
    assert consumer.calls == [("stop_flow", None), ("perform_seek", None),
                              ("resume_partitions", {"frames.raw", "tracks"})]


def test_the_worker_app_uses_the_seek_first_recovery(tmp_path: Path) -> None:
    settings = Settings(stack_dir=tmp_path, topology=TOPOLOGY)
    app = create_app(settings, load_topology(TOPOLOGY, settings.shared), ["zones", "track"])
    assert app.conf.TableManager is SeekFirstTableManager
    assert isinstance(app.tables, SeekFirstTableManager)
    assert isinstance(app.tables.recovery, SeekFirstRecovery)


def test_the_copied_methods_are_of_the_pinned_faust() -> None:
    """The two methods are Faust 0.15.3's with the steps reordered: an upgrade must re-check
    them (and whether Faust still resumes before it seeks)."""
    import faust

    assert faust.__version__ == "0.15.3", "re-check pipelines/recovery.py against this Faust"
