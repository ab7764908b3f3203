"""Plate hotlists and allow lists on the session's real Redis: exact and one-confusion
matches with the edit distance, nothing readable without the key, expiry, removal, audit."""

from __future__ import annotations

import time

import pytest
import redis

from argus.plates.hotlist import PlateKeys, PlateListStore
from argus.settings import Settings
from argus.watchlist.crypto import WatchlistError, WatchlistKeyError

pytestmark = pytest.mark.integration

KEY = bytes(range(32))


@pytest.fixture
def store(stack: Settings) -> PlateListStore:
    client = redis.Redis.from_url(stack.redis_url)
    prefix = f"test-{time.monotonic_ns()}:"
    return PlateListStore(client, PlateKeys.from_master(KEY), prefix=prefix)


def test_add_match_show_remove(store: PlateListStore) -> None:
    entry = store.add("stolen", "hotlist", "ab 12-cde", "reported stolen 2026-11-30", "op1")
    assert entry.list_id == "stolen" and entry.kind == "hotlist"
    exact = store.match("stolen", "AB12CDE")
    assert exact is not None and (exact.plate, exact.distance) == ("AB12CDE", 0)
    assert exact.reason == "reported stolen 2026-11-30"
    confused = store.match("stolen", "A812CDE")  # 8 for B
    assert confused is not None and (confused.plate, confused.distance) == ("AB12CDE", 1)
    assert store.match("stolen", "A812C0E") is None  # two confusions
    assert store.match("stolen", "XY34ZZZ") is None
    assert store.match("other-list", "AB12CDE") is None
    assert [(e.entry_id, plate) for e, plate, _ in store.show("stolen")] == \
        [(entry.entry_id, "AB12CDE")]
    assert store.remove("stolen", "AB12CDE", "op2") is True
    assert store.remove("stolen", "AB12CDE", "op2") is False
    assert store.match("stolen", "AB12CDE") is None and store.show("stolen") == []
    audit: list[tuple[bytes, dict[bytes, bytes]]] = store.redis.xrange(  # type: ignore[assignment]
        store.audit_stream)
    actions = [(f[b"action"], f[b"actor"]) for _, f in audit]
    assert actions == [(b"plate.add", b"op1"), (b"plate.remove", b"op2"),
                       (b"plate.remove", b"op2")]


def test_nothing_in_redis_reads_as_the_plate(store: PlateListStore) -> None:
    store.add("gate", "allow", "KX70ABC", "staff car", "op1")
    dump = b"".join(
        b"".join(f"{k!r}{v!r}".encode() for k, v in store.redis.hgetall(key).items())
        if store.redis.type(key) == b"hash" else key
        for key in store.redis.scan_iter(f"{store.prefix}*"))
    assert b"KX70ABC" not in dump and b"staff car" not in dump
    wrong = PlateListStore(store.redis, PlateKeys.from_master(bytes(32)), store.prefix)
    assert wrong.match("gate", "KX70ABC") is None  # another key finds nothing
    tag = store.keys.tag("KX70ABC")
    with pytest.raises(WatchlistKeyError):
        wrong._entry("gate", tag)  # and cannot unseal what it is handed


def test_expiry_and_bad_input(store: PlateListStore) -> None:
    store.add("visitors", "allow", "VIS1TOR", "today only", "op1", expires_at=time.time() + 1)
    assert store.match("visitors", "VIS1TOR") is not None
    ttl = store.redis.ttl(store._k("entry", "visitors", store.keys.tag("VIS1TOR")))
    assert 0 < ttl <= 3
    with pytest.raises(WatchlistError, match="2-12 characters"):
        store.add("visitors", "allow", "A", "too short", "op1")
    with pytest.raises(WatchlistError, match="in the past"):
        store.add("visitors", "allow", "AB123", "late", "op1", expires_at=time.time() - 5)


def test_cli_add_check_show_remove(stack: Settings, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    from tools.plates_cli import main

    monkeypatch.setenv("ARGUS_PLATE_KEY", base64.b64encode(KEY).decode())
    base = ["--redis-url", stack.redis_url, "--actor", "op-cli"]
    plate = f"CLI{time.monotonic_ns() % 10000:04d}"
    assert main([*base, "list", "add", "cli-test", plate, "--reason", "test entry",
                 "--expires-in-days", "1"]) == 0
    assert main([*base, "list", "check", "cli-test", plate]) == 0
    confused = plate.replace("I", "1", 1)
    assert main([*base, "list", "check", "cli-test", confused]) == 0
    assert main([*base, "list", "show", "cli-test"]) == 0
    assert main([*base, "list", "remove", "cli-test", plate]) == 0
    assert main([*base, "list", "check", "cli-test", plate]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("added to cli-test (hotlist): entry ")
    assert out[1] == f"hit: {plate} (hotlist, distance 0): test entry"
    assert out[2] == f"hit: {plate} (hotlist, distance 1): test entry"
    assert out[3].startswith(f"{plate:<10} hotlist  expires 20") and "by op-cli" in out[3]
    assert out[4:] == ["removed from cli-test", "no hit on cli-test"]
    monkeypatch.delenv("ARGUS_PLATE_KEY")
    assert main([*base, "list", "show", "cli-test"]) == 2  # no key: a clear error
    assert "ARGUS_PLATE_KEY is not set" in capsys.readouterr().err
