"""Request and response bodies of the incident API (pydantic, at the edge only): docs/api.md "Incidents"."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infragent.incidents.model import Incident, IncidentStatus
from infragent.store.incidents import IncidentChange, TimelineRecord

NOTE_MAX = 10_000


class IncidentOut(BaseModel):
    id: str
    fingerprint: str = Field(
        description="sha256 of tenant + rule + group labels, or event type + service + node"
    )
    title: str
    severity: str
    status: IncidentStatus
    source: Literal["alert", "event"]
    rule_name: str | None
    labels: dict[str, str]
    opened_at: float
    updated_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None = Field(description="when the episode ended: resolved or escalated")
    resolved_by: str | None
    reopen_count: int
    flap_count: int = Field(description="reopenings within incident_flap_window_s")
    flapping: bool
    reopened_at: list[float]

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        return cls(
            id=incident.id,
            fingerprint=incident.fingerprint,
            title=incident.title,
            severity=incident.severity,
            status=incident.status,
            source=incident.source,
            rule_name=incident.rule_name,
            labels=incident.labels,
            opened_at=incident.opened_at,
            updated_at=incident.updated_at,
            acknowledged_at=incident.acknowledged_at,
            acknowledged_by=incident.acknowledged_by,
            resolved_at=incident.resolved_at,
            resolved_by=incident.resolved_by,
            reopen_count=incident.reopen_count,
            flap_count=incident.flap_count,
            flapping=incident.flapping,
            reopened_at=list(incident.reopened_at),
        )


class TimelineEntryOut(BaseModel):
    id: int = Field(description="increasing within the tenant; the stream's event id")
    at: float
    kind: str = Field(
        description="opened, reopened, joined, alert, event, status, note, decision, command, result, "
        "flapping"
    )
    actor: str = Field(description='who: "rules", "node:<node_id>", "key:<key_id>", "responder"')
    detail: dict[str, Any]

    @classmethod
    def of(cls, record: TimelineRecord) -> TimelineEntryOut:
        e = record.entry
        return cls(id=record.id, at=e.at, kind=e.kind, actor=e.actor, detail=e.detail)


class IncidentDetailOut(IncidentOut):
    timeline: list[TimelineEntryOut]


class IncidentPageOut(BaseModel):
    incidents: list[IncidentOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class IncidentChangeOut(BaseModel):
    """The data of one ``incident`` event of the stream: the incident as it is now and the new entry."""

    incident: IncidentOut
    entry: TimelineEntryOut

    @classmethod
    def of(cls, change: IncidentChange) -> IncidentChangeOut:
        record = TimelineRecord(change.id, change.incident.id, change.entry)
        return cls(incident=IncidentOut.of(change.incident), entry=TimelineEntryOut.of(record))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteIn(Strict):
    text: str = Field(min_length=1, max_length=NOTE_MAX)


class ResolveIn(Strict):
    note: str | None = Field(default=None, min_length=1, max_length=NOTE_MAX)
