"""Plate list keys as tables: the master key from the environment, derived sub-keys, keyed
hashes of plates and of their OCR-confusion classes."""

from __future__ import annotations

import base64

import pytest

from argus.plates.hotlist import KEY_ENV, PlateKeys, load_plate_key
from argus.watchlist.crypto import WatchlistKeyError

KEY = bytes(range(32))


@pytest.mark.parametrize(("value", "message"), [
    ("", "is not set"),
    ("not base64!", "not valid base64"),
    (base64.b64encode(b"short").decode(), "16, 24 or 32 bytes, got 5"),
])
def test_load_plate_key_rejects(value: str, message: str) -> None:
    with pytest.raises(WatchlistKeyError, match=message) as failure:
        load_plate_key({KEY_ENV: value})
    assert value not in str(failure.value) or not value


def test_load_plate_key() -> None:
    assert load_plate_key({KEY_ENV: base64.b64encode(KEY).decode()}) == KEY


def test_sub_keys_differ_and_are_stable() -> None:
    keys = PlateKeys.from_master(KEY)
    assert keys.lookup != keys.sealing and KEY not in (keys.lookup, keys.sealing)
    assert keys == PlateKeys.from_master(KEY)
    assert keys.key_id != PlateKeys.from_master(bytes(32)).key_id and len(keys.key_id) == 12


@pytest.mark.parametrize(("a", "b", "same_tag", "same_fuzzy"), [
    ("AB12CDE", "AB12CDE", True, True),
    ("AB12CDE", "A812CDE", False, True),     # one confusion: same class
    ("AB12CDE", "A812CD3", False, False),
    ("0SG719", "OSG719", False, True),
    ("ABC123", "XBC123", False, False),      # not a confusion
])
def test_tags(a: str, b: str, same_tag: bool, same_fuzzy: bool) -> None:
    keys = PlateKeys.from_master(KEY)
    assert (keys.tag(a) == keys.tag(b)) is same_tag
    assert (keys.fuzzy_tag(a) == keys.fuzzy_tag(b)) is same_fuzzy
    assert keys.tag(a) != keys.fuzzy_tag(a)
    assert a not in keys.tag(a) and len(keys.tag(a)) == 32
    other = PlateKeys.from_master(bytes(32))
    assert other.tag(a) != keys.tag(a)  # without the key, no lookup
