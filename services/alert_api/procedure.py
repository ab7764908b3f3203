"""The rule's procedure of an alert as a checklist (``argus.procedures`` for the steps,
``argus.stores.procedure`` for the ticks):

``GET /v1/alerts/{id}/procedure``          read      the steps, each done or not, by whom
``POST /v1/alerts/{id}/procedure/{step}``  operator  tick or untick a step (audited)
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict

from argus.procedures import Procedures
from argus.stores import alerts as alert_sink
from argus.stores import procedure as checklist
from services.alert_api.deps import ERRORS, Operator, Reader
from services.alert_api.models import Problem
from services.alert_api.watchlists import backend


class Step(BaseModel):
    index: int
    text: str
    done: bool = False
    by: str | None = None
    at: float | None = None


class Checklist(BaseModel):
    alert_id: str
    rule: str
    steps: list[Step]


class TickRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    done: bool


router = APIRouter(tags=["actions"])
NOT_FOUND: dict[int | str, dict[str, object]] = {**ERRORS, 404: {"model": Problem}}


async def _checklist(request: Request, alert_id: str) -> tuple[Checklist, list[str]]:
    client: aioredis.Redis = request.app.state.runtime.redis
    alert = await alert_sink.get_alert(client, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r} (never raised, or expired)")
    procedures: Procedures = request.app.state.procedures
    texts = procedures.steps(alert.rule)
    done = await checklist.ticks(client, alert_id)
    steps = [Step(index=i, text=t, **(done[i].model_dump() if i in done else {}))
             for i, t in enumerate(texts)]
    return Checklist(alert_id=alert_id, rule=alert.rule, steps=steps), texts


@router.get("/v1/alerts/{alert_id}/procedure", response_model=Checklist, responses=NOT_FOUND)
async def procedure_route(request: Request, alert_id: str, _: Reader) -> Checklist:
    """The steps of the alert's rule's procedure (none if the rule has none)."""
    return (await _checklist(request, alert_id))[0]


@router.post("/v1/alerts/{alert_id}/procedure/{step}", response_model=Checklist,
             responses={**NOT_FOUND, 409: {"model": Problem}})
async def tick_route(request: Request, alert_id: str,
                     step: Annotated[int, Path(ge=0, description="0-based")],
                     body: TickRequest, principal: Operator) -> Checklist:
    """Tick (``done: true``) or untick a step; recorded in the alert's audit trail."""
    _, texts = await _checklist(request, alert_id)
    if step >= len(texts):
        raise HTTPException(404, f"the procedure of this alert has {len(texts)} step(s)")
    try:
        await checklist.tick(request.app.state.runtime.redis, alert_id, step, texts[step],
                             body.done, principal.name,
                             audit_retention_s=backend(request).audit_retention_s)
    except alert_sink.AlertNotFound:
        raise HTTPException(404, f"no alert {alert_id!r} (never raised, or expired)") from None
    except checklist.ClosedAlert as exc:
        raise HTTPException(409, str(exc)) from None
    return (await _checklist(request, alert_id))[0]
