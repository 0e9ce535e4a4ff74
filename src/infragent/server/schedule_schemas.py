"""Request and response bodies of the schedules API (pydantic, at the edge only): docs/api.md
"Schedules".

Why the spec fields are loose (``every`` a duration string or seconds, ``at`` ISO 8601 or seconds):
they are read by ``store/schedule_specs.spec_doc``, the same reader as the CLI's, which names the
field at fault (a cron's bad field with its column). The answers are typed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infragent.store.schedules import StoredSchedule


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleIn(Strict):
    name: str = Field(min_length=1, max_length=100, description="Unique in the tenant.")
    runbook: str = Field(min_length=1, max_length=200, description="A step runbook the server loads.")
    cron: str | None = Field(default=None, description="5 fields: minute hour day-of-month month weekday.")
    every: str | float | None = Field(
        default=None, description="An interval: a duration (15m, 1h30m) or seconds; at least a minute."
    )
    start: str | float | None = Field(
        default=None, description="Where an interval counts from (ISO 8601 or Unix seconds; default 0)."
    )
    at: str | float | None = Field(default=None, description="Once, at this time (ISO 8601 or Unix seconds).")
    timezone: str | None = Field(
        default=None, description="IANA zone of a cron expression and of times without an offset (UTC)."
    )
    missed: Literal["run_once", "skip"] = Field(
        default="skip", description="A run missed while no server was up: run it once late, or skip it."
    )
    node_id: str | None = Field(default=None, max_length=255, description="The host the run acts on.")
    labels: dict[str, str] = Field(default_factory=dict, description="What the runbook's templates may name.")
    enabled: bool = True


class EnabledIn(Strict):
    enabled: bool


class LastRunOut(BaseModel):
    due_at: float
    claimed_by: str = Field(description="The server process that claimed the run (host:pid:nonce).")
    claimed_at: float
    run_id: str | None = Field(description="The run started; null when it failed (the audit says why).")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class ScheduleOut(BaseModel):
    id: str
    name: str
    runbook: str
    spec: dict[str, float | str] = Field(description='{"cron"} | {"every_s", "start"} | {"at"}')
    described: str = Field(description="The spec in words: cron '30 2 * * *' in Europe/Berlin (At 02:30).")
    timezone: str | None
    missed: str
    node_id: str | None
    labels: dict[str, str]
    enabled: bool
    next_run_at: float | None = Field(description="Unix seconds; null when disabled or no run is left.")
    next_run: str | None = Field(description="next_run_at as ISO 8601 (UTC).")
    last_run: LastRunOut | None
    created_at: float
    created_by: str

    @classmethod
    def of(cls, s: StoredSchedule) -> ScheduleOut:
        last = s.last_run
        return cls(
            id=s.id,
            name=s.name,
            runbook=s.runbook,
            spec=dict(s.spec_doc),
            described=s.described,
            timezone=s.tz,
            missed=s.missed,
            node_id=s.node_id,
            labels=dict(s.labels),
            enabled=s.enabled,
            next_run_at=s.next_run_at,
            next_run=None if s.next_run_at is None else _iso(s.next_run_at),
            last_run=None
            if last is None
            else LastRunOut(
                due_at=last.due_at, claimed_by=last.claimed_by, claimed_at=last.claimed_at, run_id=last.run_id
            ),
            created_at=s.created_at,
            created_by=s.created_by,
        )


class ScheduleListOut(BaseModel):
    schedules: list[ScheduleOut]


class ScheduleProblemOut(BaseModel):
    field: str | None
    message: str


class ScheduleRefusedOut(BaseModel):
    detail: str
    problems: list[ScheduleProblemOut]
