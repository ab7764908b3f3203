"""``GET /v1/snapshots/{ref}``: a frame kept as alert evidence, every bystander's face
pixelated.

A stage that keeps a frame (the faces stage on a watchlist match) stores its JPEG under the
reference the alert's evidence carries (``frames.raw/<camera>/<seq>``) and, beside it, the
boxes of the matched faces (:func:`argus.inference.faces.keep_match_snapshots`). At serve time
the API asks Triton's ``faces`` model for every face in the frame and pixelates each one that
is not a matched face (IoU ≥ 0.3 with a stored box): the faces are found where they are,
in any kept frame, and no box of a bystander is ever stored. If the model cannot be reached
the snapshot is not served (503), never served unblurred by accident.

``?blur=none`` returns the stored JPEG unchanged, for operator keys only (403 otherwise).
Every view is appended to the audit stream ``argus:audit:snapshots`` (ts, actor = the API
key's name, ref, blur mode, faces blurred).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Literal

import cv2
import numpy as np
import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from tritonclient.grpc import InferenceServerException

from argus.inference.faces import blur_faces_except, snapshot_with_keep
from argus.inference.triton import Rejected
from argus.log import get_logger
from argus.stores.frame_cache import SnapshotKeyError
from services.alert_api.auth import Role
from services.alert_api.deps import ERRORS, Reader
from services.alert_api.models import Problem
from services.alert_api.watchlists import backend

log = get_logger(__name__)

AUDIT = "argus:audit:snapshots"
MATCH_IOU = 0.3
"""A face found at serve time is the matched one when it overlaps a stored box this much."""
JPEG_QUALITY = 90
Box = Sequence[float]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2).

    >>> box_iou((0, 0, 2, 2), (1, 1, 3, 3))
    0.14285714285714285
    >>> box_iou((0, 0, 1, 1), (2, 2, 3, 3))
    0.0
    """
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def faces_to_keep(found: Sequence[Box], matched: Sequence[Box], min_iou: float = MATCH_IOU
                  ) -> set[int]:
    """The indices of the faces found that are a matched face (each matched box keeps at
    most its best-overlapping face visible).

    >>> faces_to_keep([(0, 0, 1, 1), (0.1, 0, 1.1, 1), (5, 5, 6, 6)], [(0.1, 0, 1.1, 1)])
    {1}
    >>> faces_to_keep([(0, 0, 1, 1)], [])
    set()
    """
    keep = set()
    for box in matched:
        scores = [box_iou(f, box) for f in found]
        if scores and max(scores) >= min_iou:
            keep.add(int(np.argmax(scores)))
    return keep


def redact(jpeg: bytes, faces: Sequence[Box], keep: set[int]) -> bytes:
    """The JPEG with every face but ``keep`` pixelated."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the snapshot is not a readable JPEG")
    out = blur_faces_except(np.asarray(image, np.uint8), faces, keep)
    ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("cannot encode the snapshot")
    return bytes(encoded.tobytes())


async def audit(client: aioredis.Redis, actor: str, ref: str, blur: str, blurred: int,
                retention_s: int) -> None:
    """Append one view to the snapshot audit stream (trimmed only past the retention)."""
    now = time.time()
    await client.xadd(AUDIT, {"ts": f"{now:.3f}", "actor": actor, "action": "snapshot.view",
                              "ref": ref, "blur": blur, "faces_blurred": str(blurred)},
                      minid=f"{int((now - retention_s) * 1000)}-0", approximate=True)


async def pixelate(request: Request, jpeg: bytes, matched: Sequence[Box]) -> tuple[bytes, int]:
    """The JPEG with every face but the matched ones pixelated, and how many were: 500 if
    it is not a readable JPEG, 503 if the face model cannot be reached (never unblurred)."""
    try:
        faces, _, _ = await backend(request).faces().infer(jpeg)
    except Rejected:
        raise HTTPException(500, "the kept snapshot is not a readable JPEG") from None
    except InferenceServerException as exc:
        log.error("snapshot.triton", extra={"error": str(exc)})
        raise HTTPException(503, "the face model is not reachable, so the snapshot "
                                 "cannot be blurred; try again") from None
    boxes = [f.box for f in faces]
    keep = faces_to_keep(boxes, matched)
    body = await run_in_threadpool(redact, jpeg, boxes, keep)
    return body, len(boxes) - len(keep)


router = APIRouter(tags=["snapshots"])


@router.get("/v1/snapshots/{ref:path}", response_class=Response, responses={
    **ERRORS, 200: {"content": {"image/jpeg": {}}, "description": "The JPEG"},
    404: {"model": Problem}, 503: {"model": Problem, "description": "No face model"}})
async def snapshot_route(
        request: Request, principal: Reader,
        ref: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:/-]{1,256}$",
                                 description="e.g. frames.raw/cam-lobby/1234")],
        blur: Annotated[Literal["faces", "none"], Query(
            description="faces (default): every face but the matched one pixelated; "
                        "none: the frame as kept (operator role)")] = "faces",
) -> Response:
    """A kept frame (alert evidence ``snapshot_ref``) with bystanders' faces pixelated."""
    if blur == "none" and not principal.role.allows(Role.OPERATOR):
        raise HTTPException(403, "only operator keys may see a snapshot unblurred")
    client: aioredis.Redis = request.app.state.runtime.redis
    try:
        jpeg, matched = await snapshot_with_keep(client, ref,
                                                 request.app.state.runtime.evidence_key)
    except SnapshotKeyError as exc:
        log.error("snapshot cannot be opened", extra={"error": str(exc)})
        raise HTTPException(503, str(exc)) from None
    if jpeg is None:
        raise HTTPException(404, f"no snapshot {ref!r} (never kept, or expired)")
    blurred = 0
    body = jpeg
    if blur == "faces":
        body, blurred = await pixelate(request, jpeg, matched)
    await audit(client, principal.name, ref, blur, blurred, backend(request).audit_retention_s)
    return Response(body, media_type="image/jpeg", headers={
        "Cache-Control": "no-store", "X-Argus-Faces-Blurred": str(blurred)})
