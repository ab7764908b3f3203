"""``ARGUS_EVIDENCE_KEY`` (argus/settings.py, read by argus/keys.py): a malformed key stops
the settings with an error that names the variable and never echoes the value."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from argus.settings import Settings

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(("value", "error"), [
    ("not base64!!", "ARGUS_EVIDENCE_KEY is not valid base64"),
    (base64.b64encode(b"secret-5").decode(), "16, 24 or 32 bytes, got 8"),
])
def test_a_malformed_evidence_key_is_refused_without_echoing_it(value: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error) as info:
        Settings(evidence_key=value)
    assert value not in str(info.value)


@pytest.mark.parametrize(("value", "expected"), [("", None), (KEY, bytes(range(32)))])
def test_evidence_key_bytes(value: str, expected: bytes | None) -> None:
    assert Settings(evidence_key=value).evidence_key_bytes == expected
    assert value not in repr(Settings(evidence_key=value)) or not value
