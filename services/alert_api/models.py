"""Request and response bodies of the alert API (the alerts themselves are
``schemas.alerts.Alert``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.alerts import Alert, AlertState, ChangeKind, Severity


class ActionRequest(BaseModel):
    """Body of ``POST /v1/alerts/{id}/ack``, ``/resolve``, ``/assign``, ``/note``,
    ``/escalate``."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=2000,
                         description="Why: recorded in the alert's history and the audit log")
    assignee: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@' -]+$",
        description="assign: the operator the alert is assigned to")
    expected_version: int | None = Field(
        default=None, ge=1, description="Apply only if the alert is still at this version "
        "(409 otherwise): an operator acts on the alert as they saw it")


class AlertSummary(BaseModel):
    """An alert in a list: everything but the evidence and the history."""

    model_config = ConfigDict(extra="ignore")

    alert_id: str
    rule: str
    title: str
    severity: Severity
    state: AlertState
    site_id: str
    zone_id: str
    camera_id: str | None
    lat: float
    lon: float
    first_seen: float
    last_seen: float
    count: int
    version: int
    change: ChangeKind
    created_at: float
    updated_at: float | None
    acknowledged_by: str | None
    acknowledged_at: float | None
    resolved_by: str | None
    resolved_at: float | None
    assigned_to: str | None = None
    evidence_count: int

    @classmethod
    def of(cls, alert: Alert) -> AlertSummary:
        return cls.model_validate({**alert.model_dump(), "evidence_count": len(alert.evidence)})


class AlertList(BaseModel):
    count: int
    alerts: list[AlertSummary]


class Problem(BaseModel):
    """An error answer."""

    detail: str
