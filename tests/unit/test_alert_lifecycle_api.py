"""Pure parts of the alert API: key configuration, roles, filters, bbox geometry, SSE
frames and the CLI's refusal to start without keys."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from schemas.alerts import Alert, AlertState, Severity
from services.alert_api.__main__ import main
from services.alert_api.auth import AuthConfigError, KeyRing, Role, load_key_file, parse_key_spec
from services.alert_api.queries import EARTH_RADIUS_KM, AlertQuery, BBox, parse_time
from services.alert_api.stream import feed_filter, sse

KEY_A = "a" * 16
KEY_B = "b" * 24


@pytest.mark.parametrize(("spec", "expected"), [
    (f"{KEY_A}:read", [(None, KEY_A, Role.READ)]),
    (f"alice:{KEY_A}:operator, {KEY_B}:read", [("alice", KEY_A, Role.OPERATOR),
                                              (None, KEY_B, Role.READ)]),
    ("", []),
    (" , ", []),
])
def test_key_spec(spec: str, expected: list[tuple[str | None, str, Role]]) -> None:
    assert [(e.name, e.key, e.role) for e in parse_key_spec(spec)] == expected


@pytest.mark.parametrize(("spec", "message"), [
    (f"{KEY_A}", "entry 1: expected KEY:ROLE or NAME:KEY:ROLE"),
    (f"{KEY_A}:read,{KEY_B}:admin", "entry 2: role: Input should be 'read' or 'operator'"),
    ("short:read", "entry 1: key: String should have at least 16 characters"),
    (f"bad name:{KEY_A}:read", "entry 1: name: String should match pattern"),
    (f"a:b:{KEY_A}:read", "got 4 ':'-separated parts"),
])
def test_bad_key_spec(spec: str, message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        parse_key_spec(spec)


def test_key_ring_lookup_names_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - {{name: wall, key: '{KEY_B}', role: read}}\n")
    ring = KeyRing.load(f"{KEY_A}:operator", path)
    assert len(ring) == 2
    operator = ring.lookup(KEY_A)
    assert operator is not None and operator.role is Role.OPERATOR
    assert operator.name.startswith("key-") and len(operator.name) == 12
    wall = ring.lookup(KEY_B)
    assert wall is not None and (wall.name, wall.role) == ("wall", Role.READ)
    assert [ring.lookup(k) for k in (None, "", KEY_A + "x", KEY_A[:-1])] == [None] * 4
    with pytest.raises(AuthConfigError, match="the same API key is configured twice"):
        KeyRing.load(f"{KEY_A}:read,x:{KEY_A}:operator", None)
    with pytest.raises(AuthConfigError, match="name 'x' is used twice"):
        KeyRing.load(f"x:{KEY_A}:read,x:{KEY_B}:operator", None)


@pytest.mark.parametrize(("text", "message"), [
    ("keys: 3\n", "expected a mapping with a 'keys' list"),
    ("keys:\n  - {key: short, role: read}\n", r"keys\[0\]: key: String should have"),
    ("keys:\n  - {key: aaaaaaaaaaaaaaaa, role: read, extra: 1}\n", r"keys\[0\]: extra"),
    ("keys: [\n", "while parsing"),
])
def test_bad_key_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(AuthConfigError, match=message):
        load_key_file(path)


@pytest.mark.parametrize(("role", "needed", "allowed"), [
    (Role.READ, Role.READ, True), (Role.READ, Role.OPERATOR, False),
    (Role.OPERATOR, Role.READ, True), (Role.OPERATOR, Role.OPERATOR, True)])
def test_roles(role: Role, needed: Role, allowed: bool) -> None:
    assert role.allows(needed) is allowed


@pytest.mark.parametrize(("text", "expected"), [
    ("1700000000", 1700000000.0),
    ("2023-11-14T22:13:20Z", 1700000000.0),
    ("2023-11-14T23:13:20+01:00", 1700000000.0),
])
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("1,2,3", "bbox must be"), ("a,b,c,d", "bbox must be"), ("1,2,3,nan", "bbox must be"),
    ("5,0,1,1", "minLon <= maxLon"), ("0,5,1,1", "minLat <= maxLat"),
    ("-190,0,0,1", "-180 <= minLon"), ("0,-91,1,1", "-90 <= minLat")])
def test_bad_bbox(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BBox.parse(text)


def _along_parallel_km(lat: float, dlon: float) -> float:
    """Redis's distance between two points on one parallel (haversine)."""
    return 2 * EARTH_RADIUS_KM * math.asin(math.cos(math.radians(lat))
                                           * math.sin(math.radians(dlon) / 2))


@pytest.mark.parametrize("text", ["2.2,48.8,2.5,48.9", "-1,-1,1,1", "10,-60,40,-30",
                                  "170,0,179.9,10"])
def test_search_box_covers_every_corner(text: str) -> None:
    box = BBox.parse(text)
    search = box.search_box()
    assert search is not None
    lon, lat, width, height = search
    assert (lon, lat) == ((box.min_lon + box.max_lon) / 2, (box.min_lat + box.max_lat) / 2)
    for corner_lat in (box.min_lat, box.max_lat, min(max(0.0, box.min_lat), box.max_lat)):
        assert _along_parallel_km(corner_lat, box.max_lon - lon) <= width / 2
    assert math.radians(box.max_lat - lat) * EARTH_RADIUS_KM <= height / 2


def test_huge_box_skips_the_geo_index() -> None:
    assert BBox.parse("-180,-90,180,90").search_box() is None


def _alert(**update: object) -> Alert:
    base: dict[str, object] = dict(
        alert_id="a", rule="r", title="t", severity=Severity.HIGH, site_id="s", zone_id="z",
        lat=48.85, lon=2.35, first_seen=90.0, last_seen=100.0, evidence=[], created_at=100.0)
    return Alert.model_validate(base | update)


@pytest.mark.parametrize(("query", "matches"), [
    (AlertQuery(), True),
    (AlertQuery(site="s", zone="z", rule="r"), True),
    (AlertQuery(site="other"), False),
    (AlertQuery(severities=frozenset({Severity.LOW})), False),
    (AlertQuery(states=frozenset({AlertState.RESOLVED})), False),
    (AlertQuery(bbox=BBox(2.0, 48.0, 3.0, 49.0)), True),
    (AlertQuery(bbox=BBox(3.0, 48.0, 4.0, 49.0)), False),
    (AlertQuery(since=100.0, until=100.0), True),
    (AlertQuery(since=100.5), False),
    (AlertQuery(until=99.5), False),
])
def test_query_matches(query: AlertQuery, matches: bool) -> None:
    assert query.matches(_alert()) is matches


def test_feed_filter_keeps_resolutions() -> None:
    resolved = _alert(state="resolved", resolved_by="x", resolved_at=101.0)
    assert not AlertQuery(site="s").matches(resolved)
    assert feed_filter(AlertQuery(site="s")).matches(resolved)
    assert not feed_filter(AlertQuery(site="t")).matches(resolved)


def test_sse_frame() -> None:
    assert sse("snapshot", {"alerts": []}) == 'event: snapshot\ndata: {"alerts": []}\n\n'


@pytest.mark.parametrize("keys", ["", "short:read"])
def test_cli_refuses_to_start_without_usable_keys(monkeypatch: pytest.MonkeyPatch, keys: str
                                                  ) -> None:
    monkeypatch.setenv("ARGUS_API_KEYS", keys)
    monkeypatch.delenv("ARGUS_API_KEYS_FILE", raising=False)
    assert main(["--port", "1"]) == 1
