"""Scheduled runbooks: a tenant's schedules, and the claim that starts each due run exactly once.

Why the claim is an INSERT: a due run is named by its ``(schedule_id, due_at)``, the primary key of
``schedule_runs``. Two server processes that find the same run due at once both try to insert that
row; one insert wins and the other inserts nothing, so only the winner starts the run. Before that,
the schedule row is locked (PostgreSQL ``FOR UPDATE SKIP LOCKED``: the other process passes over a
schedule being claimed instead of queueing on it; SQLite's ``BEGIN IMMEDIATE`` admits one writer),
and ``next_run_at`` is advanced in the same transaction, so the loser usually does not even see the
run as due. The run itself (``store.runs.insert_run``) is created in that transaction too: a claimed
run exists exactly when its claim was committed, never one without the other.

What is due: the runs in ``[next_run_at, now]``. The pure core (``responder/schedule.py``) picks at
most one of them by the schedule's missed-run policy: ``run_once`` runs the latest, ``skip`` runs it
only when it is at most a minute late (an ordinary tick's lateness, not a server that was down).
Either way ``next_run_at`` moves past ``now``, so a long downtime never becomes a burst of runs.
Every decision is audited as ``schedule.run`` with its ``outcome``: ``started`` (with the run's id),
``failed`` (the runbook is not loaded on this server, or the run could not be created: the reason is
in the audit, never a silent skip) or ``skipped`` (missed under ``skip``).

The stored spec is ``{"cron": "*/5 * * * *"}``, ``{"every_s": 300, "start": 0}`` or ``{"at": t}``;
``tz`` is the zone of a cron spec. Every refusal is a ``ScheduleError`` carrying its HTTP status and
the field at fault (``cron`` with the 1-based column of the bad field, ``timezone``, ``runbook``
listing the runbooks this server knows).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from infragent.errors import InfrAgentError
from infragent.responder.schedule import (
    MISSED_POLICIES,
    MissedPolicy,
    ScheduleSpec,
    describe,
    due_runs,
    latest_due,
    next_run,
    timezone_problem,
)
from infragent.responder.steps import IncidentFacts, StepRunbook
from infragent.store import audit, runs
from infragent.store.outbox import insert_ignoring
from infragent.store.runbook_schema import schedule_runs, schedules
from infragent.store.schedule_specs import ScheduleError, invalid, spec_from_doc

logger = logging.getLogger(__name__)

MAX_NAME_CHARS: Final = 100
#: Runs of every spec are at least a minute apart, so ``(next_run_at - 1 s, now]`` holds exactly the
#: runs in ``[next_run_at, now]``.
_BEFORE_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class LastRun:
    """The latest claimed run of a schedule: its due time, who claimed it, the run it started."""

    due_at: float
    claimed_by: str
    claimed_at: float
    run_id: str | None


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    id: str
    client_id: str
    name: str
    runbook: str
    spec_doc: dict[str, Any]
    tz: str | None
    missed: str
    node_id: str | None
    labels: dict[str, str]
    enabled: bool
    #: None: disabled, or no run left (a one-off that ran)
    next_run_at: float | None
    #: the due time of the last run started
    last_run_at: float | None
    created_at: float
    created_by: str
    last_run: LastRun | None = field(default=None, compare=False)

    @property
    def spec(self) -> ScheduleSpec:
        return spec_from_doc(self.spec_doc, self.tz)

    @property
    def described(self) -> str:
        return describe(self.spec, self.tz)

    def facts(self) -> IncidentFacts:
        """What a scheduled run's templates and matches see: no incident, the schedule's target."""
        return IncidentFacts(
            incident_id="",
            severity="info",
            node_id=self.node_id,
            service=self.labels.get("service"),
            labels=dict(self.labels),
        )


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """A due run this process claimed: the run it started (``run_id``), or why none (``error``)."""

    schedule: StoredSchedule
    due_at: float
    run_id: str | None
    error: str | None = None


# -- rows --------------------------------------------------------------------------------------------


def _from_row(r: sa.Row[Any], last: LastRun | None = None) -> StoredSchedule:
    return StoredSchedule(
        id=r.id,
        client_id=r.client_id,
        name=r.name,
        runbook=r.runbook,
        spec_doc=dict(r.spec),
        tz=r.tz,
        missed=r.missed,
        node_id=r.node_id,
        labels=dict(r.labels or {}),
        enabled=bool(r.enabled),
        next_run_at=r.next_run_at,
        last_run_at=r.last_run_at,
        created_at=r.created_at,
        created_by=r.created_by,
        last_run=last,
    )


def _last_runs(conn: sa.Connection, schedule_ids: list[str]) -> dict[str, LastRun]:
    if not schedule_ids:
        return {}
    sr = schedule_runs
    latest = (
        sa.select(sr.c.schedule_id, sa.func.max(sr.c.due_at).label("due_at"))
        .where(sr.c.schedule_id.in_(schedule_ids))
        .group_by(sr.c.schedule_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(sr).join(
            latest, sa.and_(sr.c.schedule_id == latest.c.schedule_id, sr.c.due_at == latest.c.due_at)
        )
    )
    return {r.schedule_id: LastRun(r.due_at, r.claimed_by, r.claimed_at, r.run_id) for r in rows}


def list_schedules(conn: sa.Connection, client_id: str) -> list[StoredSchedule]:
    """The tenant's schedules by name, each with its last claimed run."""
    rows = conn.execute(
        sa.select(schedules).where(schedules.c.client_id == client_id).order_by(schedules.c.name)
    ).all()
    last = _last_runs(conn, [r.id for r in rows])
    return [_from_row(r, last.get(r.id)) for r in rows]


def get_schedule(conn: sa.Connection, client_id: str, ident: str) -> StoredSchedule:
    """The tenant's schedule with id or name ``ident``; ``ScheduleError`` 404 when it has none
    (another tenant's schedule is the same as a missing one)."""
    row = conn.execute(
        sa.select(schedules).where(
            schedules.c.client_id == client_id, sa.or_(schedules.c.id == ident, schedules.c.name == ident)
        )
    ).first()
    if row is None:
        raise ScheduleError(404, f"no schedule {ident!r} in this tenant")
    return _from_row(row, _last_runs(conn, [row.id]).get(row.id))


def _known(runbook: str, known: Collection[str]) -> None:
    if runbook in known:
        return
    if not known:
        raise invalid(
            f"unknown runbook {runbook!r}: this server loads no step runbooks (set runbooks_path)", "runbook"
        )
    raise invalid(f"unknown runbook {runbook!r}: known runbooks are {', '.join(sorted(known))}", "runbook")


def create_schedule(
    conn: sa.Connection,
    client_id: str,
    *,
    name: str,
    runbook: str,
    spec: Mapping[str, Any],
    tz: str | None,
    missed: str,
    node_id: str | None,
    labels: Mapping[str, str],
    enabled: bool,
    known_runbooks: Collection[str],
    now: float,
    actor: str,
) -> StoredSchedule:
    """Store a schedule of a known runbook; 422 for a bad field, 409 when the name is taken."""
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise invalid(f"a name of 1 to {MAX_NAME_CHARS} characters", "name")
    _known(runbook, known_runbooks)
    if missed not in MISSED_POLICIES:
        raise invalid(f"must be {' or '.join(MISSED_POLICIES)}, not {missed!r}", "missed")
    if tz is not None and (problem := timezone_problem(tz)) is not None:
        raise invalid(problem, "timezone")
    parsed = spec_from_doc(spec, tz)
    upcoming = next_run(parsed, now, tz)
    if upcoming is None:
        raise invalid("the schedule has no run after now (a one-off in the past?)", "spec")
    taken = conn.execute(
        sa.select(schedules.c.id).where(schedules.c.client_id == client_id, schedules.c.name == name)
    ).first()
    if taken is not None:
        raise ScheduleError(409, f"a schedule named {name!r} already exists", "name")
    schedule_id = str(uuid.uuid4())
    conn.execute(
        schedules.insert().values(
            id=schedule_id,
            client_id=client_id,
            name=name,
            runbook=runbook,
            spec=dict(spec),
            tz=tz,
            missed=missed,
            node_id=node_id,
            labels=dict(labels),
            enabled=enabled,
            next_run_at=upcoming if enabled else None,
            last_run_at=None,
            created_at=now,
            created_by=actor,
        )
    )
    detail = {"name": name, "runbook": runbook, "spec": dict(spec), "tz": tz, "missed": missed}
    audit.append(conn, client_id, actor, "schedule.create", schedule_id, detail, now)
    return get_schedule(conn, client_id, schedule_id)


def set_enabled(
    conn: sa.Connection, client_id: str, ident: str, enabled: bool, *, now: float, actor: str
) -> StoredSchedule:
    """Switch a schedule on (its next run counted from now: runs due while it was off are not
    made up) or off (no next run)."""
    current = get_schedule(conn, client_id, ident)
    upcoming = next_run(current.spec, now, current.tz) if enabled else None
    conn.execute(
        schedules.update().where(schedules.c.id == current.id).values(enabled=enabled, next_run_at=upcoming)
    )
    kind = "schedule.enable" if enabled else "schedule.disable"
    audit.append(conn, client_id, actor, kind, current.id, {"name": current.name}, now)
    return get_schedule(conn, client_id, current.id)


def delete_schedule(conn: sa.Connection, client_id: str, ident: str, *, now: float, actor: str) -> None:
    """Delete a schedule and its claim rows; the runs it started stay (with their ``schedule_id``)."""
    current = get_schedule(conn, client_id, ident)
    conn.execute(schedule_runs.delete().where(schedule_runs.c.schedule_id == current.id))
    conn.execute(schedules.delete().where(schedules.c.id == current.id))
    audit.append(conn, client_id, actor, "schedule.delete", current.id, {"name": current.name}, now)


# -- claiming ----------------------------------------------------------------------------------------


def _due_query(now: float, limit: int, *, postgresql: bool) -> sa.Select[Any]:
    q = (
        sa.select(schedules)
        .where(schedules.c.enabled.is_(True), schedules.c.next_run_at <= now)
        .order_by(schedules.c.next_run_at, schedules.c.id)
        .limit(limit)
    )
    return q.with_for_update(skip_locked=True) if postgresql else q


def has_due(conn: sa.Connection, now: float) -> bool:
    """Whether a claim could find a due schedule (a read: an idle tick takes no write lock)."""
    q = sa.select(schedules.c.id).where(schedules.c.enabled.is_(True), schedules.c.next_run_at <= now)
    return conn.execute(q.limit(1)).first() is not None


def next_due_at(conn: sa.Connection) -> float | None:
    """The earliest next run of any enabled schedule (how long a scheduler may sleep)."""
    q = sa.select(sa.func.min(schedules.c.next_run_at)).where(schedules.c.enabled.is_(True))
    value = conn.execute(q).scalar()
    return None if value is None else float(value)


def claim_due(
    conn: sa.Connection,
    now: float,
    worker: str,
    limit: int,
    runbooks: Mapping[str, StepRunbook],
) -> list[ScheduledRun]:
    """Claim the due runs of up to ``limit`` due schedules for ``worker`` and start each (a
    ``runbook_runs`` row), advancing every schedule looked at past ``now``. Run it in a write
    transaction: lock, claim, run and advance commit together. Returns only the runs this call
    claimed (started or failed); a run another process claimed first is not among them."""
    rows = conn.execute(_due_query(now, limit, postgresql=conn.dialect.name == "postgresql")).all()
    claimed: list[ScheduledRun] = []
    for row in rows:
        schedule = _from_row(row)
        try:
            spec = schedule.spec
        except ScheduleError as exc:  # a row no longer readable: switched off, with the reason audited
            conn.execute(schedules.update().where(schedules.c.id == row.id).values(enabled=False))
            reason = f"the stored spec is invalid ({exc}): the schedule is disabled"
            detail: dict[str, Any] = {"outcome": "failed", "reason": reason}
            audit.append(conn, row.client_id, worker, "schedule.run", row.id, detail, now)
            continue
        after = float(row.next_run_at) - _BEFORE_S
        latest = latest_due(spec, after, now, schedule.tz)
        policy: MissedPolicy = "run_once" if schedule.missed == "run_once" else "skip"
        due = due_runs(spec, after, now, policy, schedule.tz)
        upcoming = next_run(spec, now, schedule.tz)  # past every run due now, made or not
        values: dict[str, Any] = {"next_run_at": upcoming}
        if due:
            values["last_run_at"] = due[0]
        conn.execute(schedules.update().where(schedules.c.id == row.id).values(**values))
        if not due:
            if latest is not None:
                detail = {"outcome": "skipped", "due_at": latest, "missed": schedule.missed}
                audit.append(conn, row.client_id, worker, "schedule.run", row.id, detail, now)
            continue
        run = _claim_one(conn, schedule, due[0], now, worker, runbooks)
        if run is not None:
            claimed.append(run)
    return claimed


def _claim_one(
    conn: sa.Connection,
    schedule: StoredSchedule,
    due_at: float,
    now: float,
    worker: str,
    runbooks: Mapping[str, StepRunbook],
) -> ScheduledRun | None:
    inserted = conn.execute(
        insert_ignoring(conn, schedule_runs, "schedule_id", "due_at")
        .values(
            schedule_id=schedule.id,
            due_at=due_at,
            client_id=schedule.client_id,
            claimed_by=worker,
            claimed_at=now,
            run_id=None,
        )
        .returning(schedule_runs.c.schedule_id)
    ).first()
    if inserted is None:
        return None  # another process claimed this run
    run_id, error = _start(conn, schedule, now, worker, runbooks)
    if run_id is not None:
        conn.execute(
            schedule_runs.update()
            .where(schedule_runs.c.schedule_id == schedule.id, schedule_runs.c.due_at == due_at)
            .values(run_id=run_id)
        )
    detail: dict[str, Any] = {"outcome": "started" if run_id else "failed", "due_at": due_at}
    detail |= {"run_id": run_id, "runbook": schedule.runbook} if run_id else {"reason": error}
    audit.append(conn, schedule.client_id, worker, "schedule.run", schedule.id, detail, now)
    if error is not None:
        logger.warning(
            "schedule %s (%s): run due at %s failed: %s", schedule.name, schedule.id, due_at, error
        )
    return ScheduledRun(schedule, due_at, run_id, error)


def _start(
    conn: sa.Connection,
    schedule: StoredSchedule,
    now: float,
    worker: str,
    runbooks: Mapping[str, StepRunbook],
) -> tuple[str | None, str | None]:
    """Create the run (its id) or say why it could not be (the runbook is not loaded here, or the
    run store refused it); a refusal rolls back only the run's own writes (a savepoint)."""
    runbook = runbooks.get(schedule.runbook)
    if runbook is None:
        known = ", ".join(sorted(runbooks)) or "none (runbooks_path is not set)"
        return None, f"runbook {schedule.runbook!r} is not loaded on this server; loaded: {known}"
    try:
        with conn.begin_nested():
            run_id = runs.insert_run(
                conn,
                client_id=schedule.client_id,
                runbook=runbook,
                facts=schedule.facts(),
                node_id=schedule.node_id,
                incident_id=None,
                schedule_id=schedule.id,
                dry_run=False,
                now=now,
                actor=worker,
            )
    except (InfrAgentError, ValueError) as exc:
        return None, f"the run could not be created: {exc}"
    return run_id, None
