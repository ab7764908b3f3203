"""A stage whose settings say ``enabled=false`` is not built: the worker's app has no agent
for it (``ARGUS_<STAGE>_ENABLED``, read through the stage's ``settings_class``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from argus.settings import Settings
from argus.topology import load_topology
from pipelines.app import create_app

TOPOLOGY = Path(__file__).resolve().parents[1] / "topology.yaml"


@pytest.mark.parametrize(("off", "expected"), [
    ("", {"zones", "track"}),
    ("ZONES", {"track"}),
    ("TRACK", {"zones"}),
])
def test_disabled_stage_gets_no_agent(off: str, expected: set[str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if off:
        monkeypatch.setenv(f"ARGUS_{off}_ENABLED", "false")
    settings = Settings(stack_dir=tmp_path, topology=TOPOLOGY)
    app = create_app(settings, load_topology(TOPOLOGY, settings.shared), ["zones", "track"])
    assert {name.rsplit(".", 1)[-1] for name in app.agents} == expected


@pytest.mark.parametrize(("instance", "expected"), [
    ("", [None, None]),  # dynamic membership
    ("host-a-29102", ["host-a-29102", "host-a-29102"]),  # as set
    ("auto", [f"{socket.gethostname()}-argus-track-0",  # a slot per live worker
              f"{socket.gethostname()}-argus-track-1"]),
])
def test_worker_instance_id_is_the_static_group_membership(
        instance: str, expected: list[str | None], tmp_path: Path) -> None:
    """``ARGUS_WORKER_INSTANCE_ID`` becomes the consumer's ``group.instance.id`` (a
    restarted worker takes its partitions back without a rebalance); ``auto`` numbers the
    live workers of a group on this host; empty: dynamic."""
    settings = Settings(stack_dir=tmp_path, topology=TOPOLOGY, worker_instance_id=instance)
    apps = [create_app(settings, load_topology(TOPOLOGY, settings.shared), ["track"])
            for _ in expected]
    assert [app.conf.consumer_group_instance_id for app in apps] == expected


@pytest.mark.parametrize(("method", "expected"), [
    (None, {"anomaly"}),
    ("flow", {"anomaly"}),
    ("objects", {"anomaly_objects"}),
    ("flow,objects", {"anomaly", "anomaly_objects"}),  # each scores the cameras it has a
    (" objects , flow ", {"anomaly", "anomaly_objects"}),  # model for
])
def test_anomaly_method_picks_its_stage(method: str | None, expected: set[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if method is not None:
        monkeypatch.setenv("ARGUS_ANOMALY_METHOD", method)
    settings = Settings(stack_dir=tmp_path, topology=TOPOLOGY)
    app = create_app(settings, load_topology(TOPOLOGY, settings.shared),
                     ["anomaly", "anomaly_objects"])
    assert {name.rsplit(".", 1)[-1] for name in app.agents} == expected


@pytest.mark.parametrize("method", ["", "optical", "flow,pose"])
def test_unknown_anomaly_methods_are_refused(method: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from pipelines.stages.anomaly.agent import AnomalySettings

    monkeypatch.setenv("ARGUS_ANOMALY_METHOD", method)
    with pytest.raises(ValidationError, match="anomaly method"):
        AnomalySettings()


def test_free_worker_slots_are_pruned_and_held_ones_kept(tmp_path: Path) -> None:
    """Slot files no live worker holds (each test run's group leaves some) are deleted when
    a worker claims a slot; the slot a live worker holds stays its own."""
    import fcntl

    from pipelines.worker import instance_id

    folder = tmp_path / "worker-slots"
    folder.mkdir()
    for name in ("argus-old-0.lock", "argus-old-1.lock", "argus-live-0.lock"):
        (folder / name).touch()
    held = open(folder / "argus-live-0.lock", "ab")  # noqa: SIM115 - a live worker's slot
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        settings = Settings(stack_dir=tmp_path, topology=TOPOLOGY, worker_instance_id="auto")
        assert instance_id(settings, "argus-live") == f"{socket.gethostname()}-argus-live-1"
        assert sorted(p.name for p in folder.iterdir()) == ["argus-live-0.lock",
                                                           "argus-live-1.lock"]
    finally:
        held.close()
