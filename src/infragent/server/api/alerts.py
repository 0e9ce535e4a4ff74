"""Alert instances: ``GET /api/v1/alerts`` — what the tenant's rules say now, per group.

Thin: the persisted instances (``store/alerts.py``), newest-first within firing, pending, then the
rest. The state is the one the evaluator last committed, so it is what survives a restart; a
``value`` that moved without a transition is written at most once a minute (docs/alerting.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from infragent.rules.state import AlertStatus
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.store import alerts
from infragent.store.alerts import InstanceRow

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Status = Literal["inactive", "pending", "firing"]


class AlertOut(BaseModel):
    rule: str
    rule_id: str
    group_key: str
    labels: dict[str, str]
    status: Status
    #: the group's value at the last evaluation written (None: no data)
    value: float | None
    #: since when the alert has this status: fired at (firing), active since (pending), resolved at
    since: float | None
    active_since: float | None
    firing_since: float | None
    #: while firing, when the condition stopped holding (the ``keep_firing_for`` clock)
    keep_firing_since: float | None
    resolved_at: float | None
    last_eval: float | None
    incident_id: str | None
    updated_at: float


def _out(row: InstanceRow, rule: str) -> AlertOut:
    s = row.state
    since = {
        AlertStatus.FIRING: s.firing_since,
        AlertStatus.PENDING: s.active_since,
        AlertStatus.INACTIVE: s.resolved_at,
    }[s.status]
    return AlertOut(
        rule=rule,
        rule_id=row.rule_id,
        group_key=row.group_key,
        labels=row.labels,
        status=s.status.value,
        value=s.last_value,
        since=since,
        active_since=s.active_since,
        firing_since=s.firing_since,
        keep_firing_since=s.keep_firing_since,
        resolved_at=s.resolved_at,
        last_eval=s.last_eval,
        incident_id=row.incident_id,
        updated_at=row.updated_at,
    )


@router.get("", response_model=list[AlertOut])
def list_alerts(
    who: Annotated[Principal, Depends(require("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
    status: Annotated[list[Status] | None, Query(description="only these statuses (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AlertOut]:
    """The tenant's alert instances: firing first, then pending, then those that went inactive."""
    with svc.store.read() as conn:
        found = alerts.list_instances(conn, who.client_id, statuses=status or (), limit=limit)
    return [_out(row, rule) for row, rule in found]
