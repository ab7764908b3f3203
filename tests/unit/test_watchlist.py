"""Watchlist pure logic: key handling, sealing, enrollment-photo rules, the match index."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from argus.watchlist.photos import pick_enrollment_face
from argus.watchlist.store import (
    KEY_ENV,
    Match,
    Person,
    WatchlistError,
    WatchlistIndex,
    WatchlistKeyError,
    key_id,
    load_key,
    seal,
    seal_embeddings,
    unseal,
    unseal_embeddings,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def unit(seed: int, n: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 512)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def person(pid: str, list_id: str = "wanted", expires_at: float | None = None) -> Person:
    return Person(person_id=pid, list_id=list_id, reference=f"ref-{pid}", category="wanted",
                  photos=1, created_at=1.0, updated_at=1.0, created_by="test",
                  expires_at=expires_at, key_id=key_id(KEY))


# --- key -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "length", "error"),
    [
        (base64.b64encode(KEY).decode(), 32, None),
        (base64.b64encode(KEY[:16]).decode(), 16, None),
        ("", 0, "is not set"),
        ("not base64!!", 0, "not valid base64"),
        (base64.b64encode(b"short").decode(), 0, "16, 24 or 32 bytes"),
    ],
)
def test_load_key(value: str, length: int, error: str | None) -> None:
    if error is None:
        assert len(load_key({KEY_ENV: value})) == length
    else:
        with pytest.raises(WatchlistKeyError, match=error) as info:
            load_key({KEY_ENV: value})
        assert value not in str(info.value) or not value  # the key is never echoed


def test_key_id_is_stable_and_does_not_reveal_the_key() -> None:
    assert key_id(KEY) == key_id(bytes(KEY)) != key_id(OTHER_KEY)
    assert len(key_id(KEY)) == 12 and KEY.hex()[:12] != key_id(KEY)


# --- sealing ---------------------------------------------------------------------------------

def test_embeddings_round_trip_and_ciphertext_hides_them() -> None:
    embeddings = unit(1, 3)
    blob = seal_embeddings(KEY, "p1", embeddings)
    assert embeddings.astype("<f4").tobytes() not in blob
    assert embeddings[0, :8].astype("<f4").tobytes() not in blob
    assert len(blob) == 1 + 12 + 3 * 512 * 4 + 16
    np.testing.assert_array_equal(unseal_embeddings(KEY, "p1", blob), embeddings)
    assert seal_embeddings(KEY, "p1", embeddings) != blob  # fresh nonce every time


@pytest.mark.parametrize(
    ("key", "aad", "tamper", "message"),
    [
        (OTHER_KEY, "emb:p1", False, "wrong ARGUS_FACE_KEY"),
        (KEY, "emb:p2", False, "wrong ARGUS_FACE_KEY"),  # moved to another record
        (KEY, "emb:p1", True, "tampered"),
    ],
)
def test_unseal_refuses_wrong_key_record_or_tampering(key: bytes, aad: str, tamper: bool,
                                                      message: str) -> None:
    blob = bytearray(seal(KEY, "emb:p1", b"secret embedding bytes"))
    if tamper:
        blob[20] ^= 1
    with pytest.raises(WatchlistKeyError, match=message):
        unseal(key, aad, bytes(blob))


def test_unseal_refuses_garbage() -> None:
    with pytest.raises(WatchlistKeyError, match="not a sealed"):
        unseal(KEY, "x", b"\x00" * 40)


# --- enrollment photos -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("qualities", "error"),
    [
        ([0.9], None),
        ([0.9, 0.1, 0.0], None),  # background faces too poor to be anyone are ignored
        ([], "photo.jpg: no face found"),
        ([0.2], r"photo.jpg: no usable face \(best quality 0.20"),
        ([0.9, 0.7], "photo.jpg: 2 faces"),
    ],
)
def test_pick_enrollment_face(qualities: list[float], error: str | None) -> None:
    faces = [(q, unit(i)[0]) for i, q in enumerate(qualities)]
    if error is None:
        np.testing.assert_array_equal(pick_enrollment_face("photo.jpg", faces), faces[0][1])
    else:
        with pytest.raises(WatchlistError, match=error):
            pick_enrollment_face("photo.jpg", faces)


# --- index -----------------------------------------------------------------------------------

def near(vector: np.ndarray, similarity: float, seed: int = 99) -> np.ndarray:
    """A unit vector with the given cosine similarity to ``vector``."""
    noise = unit(seed)[0]
    noise -= (noise @ vector) * vector
    noise /= np.linalg.norm(noise)
    return np.asarray(similarity * vector + np.sqrt(1 - similarity**2) * noise, np.float32)


def build_index() -> tuple[WatchlistIndex, dict[str, np.ndarray]]:
    index = WatchlistIndex(thresholds={"wanted": 0.6, "vip": 0.8})
    vectors = {"a": unit(10, 2), "b": unit(11), "c": unit(12)}
    index.put(person("a"), vectors["a"])
    index.put(person("b", "vip"), vectors["b"])
    index.put(person("c", expires_at=100.0), vectors["c"])
    return index, vectors


@pytest.mark.parametrize(
    ("target", "row", "similarity", "expected"),
    [
        ("a", 0, 0.7, "a"),  # above the wanted list's 0.6
        ("a", 1, 0.65, "a"),  # any of the person's photos
        ("a", 0, 0.55, None),  # below
        ("b", 0, 0.7, None),  # the vip list needs 0.8
        ("b", 0, 0.85, "b"),
        ("c", 0, 0.95, None),  # expired at t=100
    ],
)
def test_index_match_per_list_threshold(target: str, row: int, similarity: float,
                                        expected: str | None) -> None:
    index, vectors = build_index()
    probe = near(vectors[target][row], similarity)
    (match,) = index.match([probe], now=200.0)
    if expected is None:
        assert match is None
    else:
        assert isinstance(match, Match) and match.person.person_id == expected
        assert match.similarity == pytest.approx(similarity, abs=1e-4)
        assert match.threshold == index.thresholds[match.person.list_id]


def test_index_picks_the_most_similar_and_handles_many_probes() -> None:
    index, vectors = build_index()
    probes = [near(vectors["a"][0], 0.9), unit(77)[0], near(vectors["b"][0], 0.95)]
    matches = index.match(probes, now=0.0)
    assert [m.person.person_id if m else None for m in matches] == ["a", None, "b"]
    assert index.match([near(vectors["c"][0], 0.95)], now=50.0)[0] is not None  # not expired


def test_index_drop_and_replace() -> None:
    index, vectors = build_index()
    assert index.drop("a") and not index.drop("a")
    assert len(index) == 2
    assert index.match([vectors["a"][0]])[0] is None
    fresh = WatchlistIndex(version=9)
    index.replace(fresh)
    assert len(index) == 0 and index.version == 9
    assert index.match([vectors["b"][0]]) == [None]
