"""Topology validation: errors name the file, the line and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from argus.settings import REPO_ROOT
from argus.topology import TopologyError, load_topology, parse_topology

GOOD = (REPO_ROOT / "config" / "topology.yaml").read_text()
SHARED = {"ARGUS_SHARED": "/data"}


@pytest.fixture(autouse=True)
def _no_shared_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests pass ``ARGUS_SHARED`` explicitly; a user's own setting (documented in
    the README) would otherwise take precedence over it."""
    monkeypatch.delenv("ARGUS_SHARED", raising=False)


def test_shipped_topologies_load() -> None:
    topo = load_topology(REPO_ROOT / "config" / "topology.yaml", Path("/data"))
    assert topo.cameras[0].source == "/data/data/videos/one-by-one-person-detection.mp4"
    assert topo.camera("cam-lobby") is not None and topo.camera("nope") is None
    assert load_topology(REPO_ROOT / "tests" / "topology.yaml", Path("/data")).sensors


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("fps: 5", "fps: -1", "topology.yaml:23: cameras[0].fps: Input should be greater than 0"),
        ("lat: 51.5246", "lat: 151", "topology.yaml:7: sites[0].lat: Input should be less"),
        ("    type: door\n", "    type: doorbell\n", "topology.yaml:54: sensors[1].type: Input"),
        ("jpeg_quality: 85", "jpeg_quality: 85\n    colour: red",
         "topology.yaml:27: cameras[0].colour: Extra inputs are not permitted"),
        ("[1.0, 0.35], [1.0, 1.0]", "[1.0, 0.35], [1.7, 1.0]",
         "topology.yaml:31: cameras[0].zones[0].polygon: Value error, polygon point (1.7, 1.0)"),
        ("site_zone: lobby", "site_zone: roof", "unknown site zone 'roof'"),
        ("  - id: pir-lobby-1\n    site: depot-north", "  - id: pir-lobby-1\n    site: nowhere",
         "sensor 'pir-lobby-1': unknown site 'nowhere'"),
        ("  - id: door-lobby-1", "  - id: pir-lobby-1", "sensors: duplicate id 'pir-lobby-1'"),
        ("sites:", "sites: [\n", "invalid YAML"),
    ],
)
def test_errors_name_file_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(TopologyError) as info:
        parse_topology(GOOD.replace(old, new, 1), "config/topology.yaml", SHARED)
    assert expected in str(info.value)


def test_missing_variable_and_file() -> None:
    with pytest.raises(TopologyError, match="ARGUS_SHARED is not set"):
        parse_topology(GOOD, "t.yaml", {})
    with pytest.raises(TopologyError, match="not found"):
        load_topology(Path("/nonexistent/topology.yaml"))



def site_text(extra: str) -> str:
    return f"sites:\n  - id: s\n    lat: 1\n    lon: 2\n    zones: [{{id: z}}]\n    {extra}\n"


@pytest.mark.parametrize(
    ("extra", "timezone", "hours"),
    [
        ("timezone: Europe/Paris", "Europe/Paris", None),
        ("opening_hours: [{open: 08:00, close: 18:00}]", "UTC", ("08:00", "18:00")),  # base 60
        ("opening_hours: [{days: [sat], open: '22:00', close: '06:00'}]", "UTC",
         ("22:00", "06:00")),
    ],
)
def test_site_timezone_and_opening_hours(extra: str, timezone: str,
                                         hours: tuple[str, str] | None) -> None:
    site = parse_topology(site_text(extra), "topology.yaml", SHARED).sites[0]
    assert site.timezone == timezone
    got = (site.opening_hours[0].open, site.opening_hours[0].close) if site.opening_hours else None
    assert got == hours


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("timezone: Mars/Olympus", "topology.yaml:6: sites[0].timezone: Value error, unknown"),
        ("opening_hours: [{open: '25:00', close: '06:00'}]",
         "sites[0].opening_hours[0].open: Value error, a clock time must be HH:MM"),
        ("opening_hours: [{days: [someday], open: '08:00', close: '18:00'}]",
         "sites[0].opening_hours[0].days[0]: Input should be"),
    ],
)
def test_bad_timezone_and_opening_hours(extra: str, message: str) -> None:
    with pytest.raises(TopologyError, match=re.escape(message)):
        parse_topology(site_text(extra), "topology.yaml", SHARED)


@pytest.mark.parametrize(
    ("source", "clock", "error"),
    [
        ("/videos/a.mp4", "media", None),
        ("file:///videos/a.mp4", "media", None),
        ("/videos/a.mp4", "wall", None),
        ("rtsp://cam/stream", "wall", None),
        ("rtsp://cam/stream", "media", "clock: media needs a video file source"),
        ("http://cam/mjpeg", "media", "clock: media needs a video file source"),
        ("0", "media", "clock: media needs a video file source"),
        ("/videos/a.mp4", "film", "cameras[0].clock: Input should be 'wall' or 'media'"),
    ],
)
def test_camera_clock(source: str, clock: str, error: str | None) -> None:
    text = (site_text("") + f"cameras:\n  - id: c\n    site: s\n    source: '{source}'\n"
            f"    clock: {clock}\n")
    if error is None:
        camera = parse_topology(text, "topology.yaml", SHARED).cameras[0]
        assert camera.clock == clock
    else:
        with pytest.raises(TopologyError, match=re.escape(error)):
            parse_topology(text, "topology.yaml", SHARED)
