"""``GET /v1/alerts/{id}/export``: a case file to hand over, with its integrity checkable.

A zip (operator keys: it takes evidence out of the system) holding:

- ``alert.json``     the alert as stored (evidence list, lifecycle, history)
- ``timeline.json``  the events that made the alert and the operator actions, in time order
- ``audit.json``     the alert's audit trail (oldest first)
- ``evidence/*.jpg`` every kept snapshot the evidence names, bystanders' faces pixelated as
  ``GET /v1/snapshots/{ref}`` serves them (503 if the face model is unreachable: never
  exported unblurred)
- ``export.json``    who exported which version when; which snapshots were missing (expired)
- ``SHA256SUMS``     ``sha256sum -c`` format, one line per file above

Every export is appended to the stream ``argus:audit:exports`` (ts, actor, alert id and
version, the zip's SHA-256 and size), so the copy handed over can be matched to its record.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Request, Response

from argus.inference.faces import snapshot_with_keep
from argus.log import get_logger
from argus.stores import alerts as alert_sink
from argus.stores.frame_cache import SnapshotKeyError
from schemas.alerts import Alert
from schemas.audit import AuditEntry
from services.alert_api.deps import ERRORS, Operator
from services.alert_api.metrics import EXPORTS
from services.alert_api.models import Problem
from services.alert_api.snapshots import pixelate
from services.alert_api.watchlists import backend

log = get_logger(__name__)

AUDIT = "argus:audit:exports"
MAX_AUDIT = 1000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def iso(ts: float) -> str:
    """A Unix time as ISO 8601 UTC.

    >>> iso(0)
    '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat()


def file_name(ref: str) -> str:
    """A snapshot reference as a safe file name in the zip.

    >>> file_name("frames.raw/cam-1/7")
    'evidence/frames.raw_cam-1_7.jpg'
    """
    return f"evidence/{_UNSAFE.sub('_', ref)}.jpg"


def timeline(alert: Alert) -> list[dict[str, Any]]:
    """The evidence events and the operator actions of ``alert``, oldest first."""
    items: list[dict[str, Any]] = [
        {"ts": e.ts, "time": iso(e.ts), "kind": f"{e.source}_event", "event_id": e.event_id,
         "camera_id": e.camera_id, "sensor_id": e.sensor_id, "snapshot_ref": e.snapshot_ref}
        for e in alert.evidence]
    items += [{"ts": h.ts, "time": iso(h.ts), "kind": h.action.value, "actor": h.actor,
               "comment": h.comment} for h in alert.history]
    return sorted(items, key=lambda i: i["ts"])


def sha256sums(files: dict[str, bytes]) -> bytes:
    """``sha256sum`` lines for ``files`` (name → content).

    >>> sha256sums({"a.txt": b""}).decode()
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.txt\\n'
    """
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in files.items()).encode()


def build_zip(files: dict[str, bytes]) -> bytes:
    """The zip of ``files`` plus their ``SHA256SUMS`` (fixed timestamps: the same case
    content gives the same bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**files, "SHA256SUMS": sha256sums(files)}.items():
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return out.getvalue()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


async def _audit(client: aioredis.Redis, actor: str, alert: Alert, digest: str, size: int,
                 retention_s: int) -> None:
    now = time.time()
    await client.xadd(AUDIT, {"ts": f"{now:.3f}", "actor": actor, "action": "case.export",
                              "alert_id": alert.alert_id, "version": str(alert.version),
                              "sha256": digest, "bytes": str(size)},
                      minid=f"{int((now - retention_s) * 1000)}-0", approximate=True)


router = APIRouter(tags=["alerts"])


@router.get("/v1/alerts/{alert_id}/export", response_class=Response, responses={
    **ERRORS, 200: {"content": {"application/zip": {}}, "description": "The case zip"},
    404: {"model": Problem}, 503: {"model": Problem, "description": "No face model"}})
async def export_route(request: Request, alert_id: str, principal: Operator) -> Response:
    """The alert's case file: alert, timeline, audit trail, evidence images, SHA256SUMS."""
    client: aioredis.Redis = request.app.state.runtime.redis
    alert = await alert_sink.get_alert(client, alert_id)
    if alert is None:
        EXPORTS.labels("not_found").inc()
        raise HTTPException(404, f"no alert {alert_id!r} (never raised, or expired)")
    trail: list[AuditEntry] = await alert_sink.audit_entries(client, MAX_AUDIT, alert_id)
    files: dict[str, bytes] = {
        "alert.json": _json(alert.model_dump(mode="json")),
        "timeline.json": _json(timeline(alert)),
        "audit.json": _json([e.model_dump(mode="json") for e in reversed(trail)]),
    }
    images, missing = [], []
    for ref in dict.fromkeys(e.snapshot_ref for e in alert.evidence if e.snapshot_ref):
        try:
            jpeg, matched = await snapshot_with_keep(client, ref,
                                                     request.app.state.runtime.evidence_key)
        except SnapshotKeyError as exc:
            log.error("snapshot cannot be opened", extra={"error": str(exc)})
            jpeg, matched = None, []
        if jpeg is None:
            missing.append(ref)
            continue
        body, blurred = await pixelate(request, jpeg, matched)
        files[file_name(ref)] = body
        images.append({"ref": ref, "file": file_name(ref), "faces_pixelated": blurred})
    now = time.time()
    files["export.json"] = _json({"alert_id": alert.alert_id, "version": alert.version,
                                  "exported_at": iso(now), "exported_by": principal.name,
                                  "images": images, "missing_snapshots": missing})
    data = build_zip(files)
    digest = hashlib.sha256(data).hexdigest()
    await _audit(client, principal.name, alert, digest, len(data),
                 backend(request).audit_retention_s)
    EXPORTS.labels("ok").inc()
    log.info("alert_api.export", extra={"alert_id": alert_id, "actor": principal.name,
                                        "bytes": len(data), "images": len(images)})
    name = _UNSAFE.sub("_", alert_id)[:100]
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="case-{name}.zip"',
        "Cache-Control": "no-store", "X-Argus-Export-SHA256": digest})
