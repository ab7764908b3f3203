"""Enrollment photos → one embedding each, shared by the CLI and the alert API.

A photo must show exactly one usable face: faces below :data:`ENROLL_MIN_QUALITY`
(background faces, blurs) are ignored, and a photo with no usable face or with several is
refused with a message that names it. The photos are embedded by Triton's ``faces`` model,
or in-process with the same code (``local``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from argus.watchlist.crypto import WatchlistError

if TYPE_CHECKING:
    from argus.inference.faces import TritonFaces

Embedding = npt.NDArray[np.float32]
FaceList = list[tuple[float, Embedding]]
"""The (quality, embedding) of every face found in one photo."""
ENROLL_MIN_QUALITY = 0.4
"""Enrollment photos need a face at least this good (faces below are ignored)."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""A larger photo is refused (the alert API's upload limit per photo)."""


def pick_enrollment_face(photo: str, faces: Sequence[tuple[float, npt.ArrayLike]],
                         min_quality: float = ENROLL_MIN_QUALITY) -> Embedding:
    """The one usable face of an enrollment photo, from its (quality, embedding) list.

    Faces below ``min_quality`` (background faces, blurs) are ignored; the photo is refused
    with a message naming it when no usable face or more than one remains.
    """
    usable = [np.asarray(e, dtype=np.float32) for q, e in faces if q >= min_quality]
    if not faces:
        raise WatchlistError(f"{photo}: no face found")
    if not usable:
        best = max(q for q, _ in faces)
        raise WatchlistError(f"{photo}: no usable face (best quality {best:.2f} < "
                             f"{min_quality:.2f}: too small, blurred or turned away)")
    if len(usable) > 1:
        raise WatchlistError(f"{photo}: {len(usable)} faces; use a photo of the person alone "
                             "or crop it to their face")
    return usable[0]


def sort_photos(photos: Sequence[tuple[str, FaceList | str]], min_quality: float
                ) -> tuple[list[Embedding], list[str]]:
    """Accepted embeddings and refusal messages, from each photo's faces (or the reason it
    could not be read)."""
    accepted, refused = [], []
    for name, found in photos:
        if isinstance(found, str):
            refused.append(found)
            continue
        try:
            accepted.append(pick_enrollment_face(name, found, min_quality))
        except WatchlistError as exc:
            refused.append(str(exc))
    return accepted, refused


async def embed_photos(photos: Sequence[tuple[str, bytes]], client: TritonFaces,
                       min_quality: float = ENROLL_MIN_QUALITY, in_flight: int = 4,
                       ) -> tuple[list[Embedding], list[str]]:
    """One embedding per accepted photo and a message per refused one, via Triton.

    ``photos`` are (name, JPEG/PNG bytes). An unreadable image is refused, not raised;
    Triton being unreachable raises ``InferenceServerException``.
    """
    from argus.inference.detector import Rejected

    gate = asyncio.Semaphore(in_flight)

    async def one(name: str, data: bytes) -> FaceList | str:
        if len(data) > MAX_PHOTO_BYTES:
            return f"{name}: larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB"
        async with gate:
            try:
                faces, _, _ = await client.infer(data)
            except Rejected:
                return f"{name}: not a readable image (JPEG or PNG)"
        return [(f.quality, f.embedding) for f in faces]

    found = await asyncio.gather(*(one(name, data) for name, data in photos))
    return sort_photos([(name, f) for (name, _), f in zip(photos, found, strict=True)],
                       min_quality)


def embed_photos_local(photos: Sequence[tuple[str, bytes]], models_dir: Path,
                       min_quality: float = ENROLL_MIN_QUALITY,
                       ) -> tuple[list[Embedding], list[str]]:
    """:func:`embed_photos` in this process (the same face code, no Triton)."""
    from argus.inference.faces import load_facelib, local_analyzer

    facelib = load_facelib()
    analyzer = local_analyzer(models_dir)
    found: list[tuple[str, FaceList | str]] = []
    for name, data in photos:
        try:
            image = facelib.decode_jpeg(data)
        except ValueError:
            found.append((name, f"{name}: not a readable image (JPEG or PNG)"))
            continue
        found.append((name, [(f.quality, f.embedding) for f in analyzer.analyze(image)]))
    return sort_photos(found, min_quality)
