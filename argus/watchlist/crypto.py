"""Watchlist encryption: the key from ``ARGUS_FACE_KEY`` and AES-256-GCM sealing.

Every sealed record carries a version byte, a fresh 96-bit nonce and the GCM tag; the
record's id is the associated data, so a ciphertext cannot be moved to another record. The
key is never logged or echoed in an error; :func:`key_id` is a public fingerprint of it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from argus.keys import decode_key

KEY_ENV = "ARGUS_FACE_KEY"
SEAL_VERSION = b"\x01"
EMBEDDING_DIM = 512


class WatchlistError(Exception):
    """A watchlist operation that cannot be done (the message says why)."""


class WatchlistConflict(WatchlistError):
    """The entry already exists (a reference is unique within its list)."""


class WatchlistKeyError(WatchlistError):
    """The encryption key is missing, malformed or not the one the data was sealed with."""


def load_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The AES key from ``ARGUS_FACE_KEY`` (base64 of 16, 24 or 32 bytes)."""
    text = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    if not text:
        raise WatchlistKeyError(
            f"{KEY_ENV} is not set: generate one with `python -c \"import base64, os; "
            f"print(base64.b64encode(os.urandom(32)).decode())\"` and keep it secret")
    try:
        return decode_key(KEY_ENV, text)
    except ValueError as exc:
        raise WatchlistKeyError(str(exc)) from None


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key (to tell which key sealed a record)."""
    return hashlib.sha256(b"argus-face-key:" + key).hexdigest()[:12]


def seal(key: bytes, aad: str, plaintext: bytes) -> bytes:
    """AES-GCM: version byte + 12-byte random nonce + ciphertext and tag."""
    nonce = os.urandom(12)
    return SEAL_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def unseal(key: bytes, aad: str, blob: bytes) -> bytes:
    """Inverse of :func:`seal`; :class:`WatchlistKeyError` for a wrong key or tampered data."""
    if len(blob) < 29 or blob[:1] != SEAL_VERSION:
        raise WatchlistKeyError("not a sealed watchlist record")
    try:
        return AESGCM(key).decrypt(blob[1:13], blob[13:], aad.encode())
    except InvalidTag:
        raise WatchlistKeyError(
            "cannot decrypt the record: wrong ARGUS_FACE_KEY or tampered data") from None


def seal_embeddings(key: bytes, person_id: str, embeddings: npt.ArrayLike) -> bytes:
    """Seal an (N, 512) float32 matrix bound to ``person_id``."""
    matrix = np.ascontiguousarray(np.asarray(embeddings, dtype="<f4").reshape(-1, EMBEDDING_DIM))
    return seal(key, f"emb:{person_id}", matrix.tobytes())


def unseal_embeddings(key: bytes, person_id: str, blob: bytes) -> npt.NDArray[np.float32]:
    """Inverse of :func:`seal_embeddings`."""
    raw = unseal(key, f"emb:{person_id}", blob)
    return np.frombuffer(raw, dtype="<f4").reshape(-1, EMBEDDING_DIM).astype(np.float32)
