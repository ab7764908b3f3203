"""Plate sightings on the session's real Redis: exact, wildcard and fuzzy search, site and
time windows, the scan cap, retention (TTL and trimming), nothing readable at rest, audit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from argus.plates.hotlist import PlateKeys
from argus.plates.patterns import PatternError
from argus.plates.sightings import SightingStore, topology_locator
from argus.settings import Settings
from argus.topology import Topology
from schemas.detections import Box
from schemas.plates import PlateEvent, PlateHit

pytestmark = pytest.mark.integration

KEY = bytes(range(32))
BOX = Box(x1=0.1, y1=0.3, x2=0.4, y2=0.7)


def plate_event(text: str, ts: float, camera: str = "gate-1", site: str = "depot",
                track: int = 1, **extra: Any) -> PlateEvent:
    return PlateEvent(
        event_id=f"plate-{camera}-{track}-{text}", camera_id=camera, site_id=site, ts=ts, seq=3,
        track_id=track, text=text, format_id="uk", confidence=0.9,
        confidences=[0.9] * len(text), reads=3, fixes=0, vehicle_class="car", colour="blue",
        direction_deg=90.0, speed=0.1, vehicle_box=BOX, plate_box=BOX,
        snapshot_ref=f"frames.raw/{camera}/3", **extra)


@pytest.fixture
def store(stack: Settings) -> Iterator[SightingStore]:
    client = redis.Redis.from_url(stack.redis_url)
    prefix = f"test-{time.monotonic_ns()}:"
    topology = Topology.model_validate({
        "sites": [{"id": "depot", "lat": 51.5, "lon": -0.1},
                  {"id": "yard", "lat": 52.0, "lon": 0.2}],
        "cameras": [{"id": "gate-1", "site": "depot", "source": "0"},
                    {"id": "gate-2", "site": "yard", "source": "0"}]})
    yield SightingStore(client, PlateKeys.from_master(KEY), prefix=prefix,
                        locate=topology_locator(topology))
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def plates(found: list[Any]) -> list[str]:
    return [s.plate for s in found]


def test_exact_wildcard_fuzzy_site_and_time(store: SightingStore) -> None:
    now = time.time()
    rows = [("AB12CDE", now - 300, "gate-1", "depot"), ("AB12CDF", now - 200, "gate-1", "depot"),
            ("A812CDE", now - 100, "gate-2", "yard"), ("XY34ZZZ", now - 50, "gate-2", "yard"),
            ("AB12CDE", now - 10, "gate-2", "yard")]
    ids = [store.add(plate_event(text, ts, camera, site, track=i))
           for i, (text, ts, camera, site) in enumerate(rows, start=1)]
    assert len(set(ids)) == 5
    exact = store.search("ab12 cde")
    assert [(s.plate, s.camera_id, s.site_id) for s in exact] == [
        ("AB12CDE", "gate-2", "yard"), ("AB12CDE", "gate-1", "depot")]  # newest first
    first = exact[0]
    assert (first.lat, first.lon, first.snapshot_ref, first.distance) == (
        52.0, 0.2, "frames.raw/gate-2/3", 0)
    assert first.ts == pytest.approx(now - 10) and first.colour == "blue"
    assert plates(store.search("AB12*")) == ["AB12CDE", "AB12CDF", "AB12CDE"]
    assert plates(store.search("*ZZZ")) == ["XY34ZZZ"]
    assert plates(store.search("X?34*")) == ["XY34ZZZ"]
    assert plates(store.search("AB12CD?", site="depot")) == ["AB12CDF", "AB12CDE"]
    assert plates(store.search("AB12CDE", site="depot")) == ["AB12CDE"]
    fuzzy = store.search("AB12CDE", fuzzy=True)
    assert [(s.plate, s.distance) for s in fuzzy] == [
        ("AB12CDE", 0), ("A812CDE", 1), ("AB12CDF", 1), ("AB12CDE", 0)]
    assert plates(store.search("AB12*", fuzzy=True)) == [
        "AB12CDE", "A812CDE", "AB12CDF", "AB12CDE"]
    assert plates(store.search("AB12CDE", since=now - 250, until=now - 20)) == []
    assert plates(store.search("AB12CDE", since=now - 20)) == ["AB12CDE"]
    assert plates(store.search("AB12*", until=now - 150)) == ["AB12CDF", "AB12CDE"]
    assert plates(store.search("AB12*", limit=1)) == ["AB12CDE"]
    assert store.search("ZZ99ZZZ") == [] and store.search("ZZ*") == []


def test_redelivery_overwrites_and_bad_patterns(store: SightingStore) -> None:
    event = plate_event("KX70ABC", time.time() - 5, hits=[PlateHit(
        list_id="stolen", list_kind="hotlist", entry_id="e1", distance=0)])
    assert store.add(event) == store.add(event)
    (found,) = store.search("KX70ABC")
    assert [h.list_id for h in found.hits] == ["stolen"] and found.event_id == event.event_id
    assert store.get(found.sighting_id) == found
    for bad in ("*", "A*", "??", "AB_12", "ÄB12"):
        with pytest.raises(PatternError):
            store.search(bad)


def test_nothing_at_rest_reads_as_the_plate(store: SightingStore) -> None:
    event = plate_event("KX70ABC", time.time() - 5)
    store.add(event)
    client = store.redis
    dump = b""
    for key in client.scan_iter(f"{store.prefix}*"):
        kind = client.type(key)
        dump += key
        if kind == b"string":
            dump += client.get(key) or b""
        elif kind == b"zset":
            members: list[Any] = list(client.zrange(key, 0, -1))
            dump += b"".join(members)
    for secret in (b"KX70ABC", b"gate-1", event.event_id.encode(), b"frames.raw"):
        assert secret not in dump
    assert b"depot" in dump  # the site index is named by site: not personal
    wrong = SightingStore(client, PlateKeys.from_master(bytes(32)), prefix=store.prefix)
    assert wrong.search("KX70ABC") == []  # another key's hash finds nothing
    result = wrong.query("KX70*")  # and cannot open the records it scans
    assert (result.sightings, result.scanned, result.unreadable) == ([], 1, 1)


def test_retention_ttl_and_trim(store: SightingStore) -> None:
    short = SightingStore(store.redis, store.keys, prefix=store.prefix, retention_s=60)
    now = time.time()
    assert short.add(plate_event("OLD1234", now - 61)) and short.search("OLD1234") == []
    old = short.add(plate_event("AB12CDE", now - 50, track=1))
    assert short.redis.zscore(short._k("sightings", "all"), old) is not None
    ttl = short.redis.ttl(short._k("sighting", old))
    assert 5 <= ttl <= 12  # expires 60 s after capture
    # index entries go when a later add finds them older than the retention
    short.retention_s = 40
    short.add(plate_event("AB12CDE", now, track=2))
    for index in short._indexes("depot", "AB12CDE"):
        members = [str(m, "ascii") for m in short.redis.zrange(index, 0, -1)]  # type: ignore[arg-type]
        assert old not in members and len(members) == 1
        assert 0 < short.redis.ttl(index) <= 41
    assert len(short.search("AB12CDE")) == 1


def test_scan_cap_truncates(store: SightingStore) -> None:
    now = time.time()
    for i in range(7):
        store.add(plate_event(f"CAP{i:03d}X", now - 100 + i, track=i + 1))
    capped = SightingStore(store.redis, store.keys, prefix=store.prefix, scan_cap=3)
    result = capped.query("CAP*")
    assert (plates(result.sightings), result.scanned, result.truncated) == (
        ["CAP006X", "CAP005X", "CAP004X"], 3, True)
    assert not capped.query("CAP*", since=now - 96).truncated  # the window holds 3


def test_every_search_is_audited(store: SightingStore) -> None:
    store.add(plate_event("AB12CDE", time.time() - 5))
    store.search("AB12CDE", actor="ops-anna")
    store.search("ab12*", site="depot", fuzzy=True, actor="ops-ben")
    wild, exact = store.audit(2)
    assert (exact["actor"], exact["action"], exact["pattern_shape"], exact["results"]) == (
        "ops-anna", "sightings.search", "AA99AAA", "1")
    assert exact["pattern_tag"] == store.keys.tag("AB12CDE")  # an exact plate: its entry id
    assert (wild["actor"], wild["pattern_shape"], wild["site"], wild["fuzzy"]) == (
        "ops-ben", "AA99*", "depot", "1")
    stream: list[Any] = list(store.redis.xrange(store.audit_stream))  # type: ignore[arg-type]
    assert b"AB12" not in b"".join(b"".join(f.values()) for _, f in stream)


def test_cli_sightings(stack: Settings, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    import base64
    import json

    from tools.plates_cli import main

    monkeypatch.setenv("ARGUS_PLATE_KEY", base64.b64encode(KEY).decode())
    client = redis.Redis.from_url(stack.redis_url)
    store = SightingStore(client, PlateKeys.from_master(KEY))  # the workers' prefix
    plate = f"CL{time.monotonic_ns() % 100000:05d}"
    store.add(plate_event(plate, time.time() - 3600, track=1))
    store.add(plate_event(plate, time.time() - 60, "gate-2", "yard", track=2))
    base = ["--redis-url", stack.redis_url, "--actor", "op-cli", "sightings"]
    assert main([*base, plate[:4] + "*", "--since", "2h", "--site", "yard"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert f"Z  {plate:<10} d=0  gate-2" in line and "yard" in line
    assert "car blue 90deg  conf 0.90  lists -  frames.raw/gate-2/3" in line
    assert main([*base, plate, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["count"] == 2 and [s["camera_id"] for s in found["sightings"]] == [
        "gate-2", "gate-1"]
    assert main([*base, plate, "--since", "30m"]) == 0
    assert main([*base, plate, "--until", "90m"]) == 1
    assert "no sightings" in capsys.readouterr().err
    assert store.audit(1)[0]["actor"] == "op-cli"
    assert main([*base, "*"]) == 2
    assert "at least 2 plate characters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, plate, "--since", "last week"])
    client.close()
