"""Checks of a ``frames.raw`` record at the edge of every stage that reads frames."""

from __future__ import annotations

from pydantic import ValidationError

from argus.kafka import Rejected
from argus.topology import Topology
from schemas.frames import FrameHeaders


def check_frame(key: bytes | None, value: bytes | None, headers: object, topology: Topology,
                max_bytes: int) -> FrameHeaders:
    """Validate a ``frames.raw`` record; raises ``Rejected`` with the dead-letter reason."""
    if not value:
        raise Rejected("empty", "frame has no bytes")
    if len(value) > max_bytes:
        raise Rejected("oversize", f"frame of {len(value)} bytes exceeds {max_bytes}")
    try:
        meta = FrameHeaders.from_headers(headers)
    except ValidationError as exc:
        raise Rejected("schema", f"frame headers: {exc.errors(include_url=False)}") from None
    if key is not None and key.decode(errors="replace") != meta.camera_id:
        raise Rejected("schema", f"key {key!r} differs from camera_id {meta.camera_id!r}")
    if topology.camera(meta.camera_id) is None:
        raise Rejected("unknown_camera", f"camera {meta.camera_id!r} is not in the topology")
    return meta
