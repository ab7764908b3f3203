"""The one way an AES key given in an ``ARGUS_*_KEY`` variable is read: base64 of 16, 24
or 32 bytes. Errors name the variable and never echo its value."""

from __future__ import annotations

import base64
import binascii


def decode_key(name: str, text: str) -> bytes:
    """The key in ``text`` (the value of the variable ``name``); ValueError otherwise.

    >>> len(decode_key("ARGUS_X_KEY", base64.b64encode(bytes(16)).decode()))
    16
    >>> decode_key("ARGUS_X_KEY", "c2hvcnQ=")
    Traceback (most recent call last):
    ...
    ValueError: ARGUS_X_KEY must decode to 16, 24 or 32 bytes, got 5
    """
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(key) not in (16, 24, 32):
        raise ValueError(f"{name} must decode to 16, 24 or 32 bytes, got {len(key)}")
    return key
