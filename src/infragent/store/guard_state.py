"""What the guardrails weigh, read from the database: a tenant's settings, the kill switch, the
action history of the budget's window, the circuit breaker (re-judged and stored when it changes),
and the approval on record for a command; plus the reads of ``check`` steps.

Why the breaker is judged here, at the moment of a command: it is about the fleet *now* (hosts
with an active incident among the tenant's hosts), and storing it only when it changes keeps its
``since`` and ``calm_since`` across restarts, so it closes after its calm period and not before.
"""

from __future__ import annotations

import sqlalchemy as sa

from infragent.responder.approval import Approval, ApprovalPolicy
from infragent.responder.breaker import BreakerConfig, BreakerState, breaker_change, evaluate
from infragent.responder.guardrails import ActionRecord, Budget, GuardContext, GuardSettings, Proposal
from infragent.responder.run_ports import Receiver, RunRow
from infragent.responder.steps import Check, IncidentFacts
from infragent.store import audit
from infragent.store.dashboard import CHECK_EVENTS
from infragent.store.guard_reads import GuardRow, read_guard, read_kill_switch
from infragent.store.incident_reads import incident_from_row
from infragent.store.runbook_schema import action_history, guard_settings, run_approvals
from infragent.store.runs import command_id_of
from infragent.store.schema import agents, events, incidents

ACTIVE_INCIDENT = ("open", "acknowledged", "remediating", "escalated")


def shadowed(conn: sa.Connection, client_id: str, runbook: str) -> bool:
    """Whether a run of ``runbook`` starts in shadow mode (the tenant's, or the runbook's)."""
    guard = read_guard(conn, client_id)
    return guard.shadow or runbook in guard.shadow_runbooks


def settings_of(guard: GuardRow, budget: tuple[int, float], breaker: tuple[float, int]) -> GuardSettings:
    """The tenant's stored guardrails over the server's defaults (``budget``, ``breaker``)."""
    share, minimum = breaker
    config = BreakerConfig(open_above=share, close_at=share / 2, min_unhealthy=minimum)
    return GuardSettings(
        budget=guard.budget(Budget(*budget)),
        breaker=config,
        approval=ApprovalPolicy(actions=frozenset(guard.approval_actions), llm=guard.approval_llm),
        shadow=guard.shadow,
        shadow_runbooks=frozenset(guard.shadow_runbooks),
    )


def _breaker(
    conn: sa.Connection, client_id: str, guard: GuardRow, config: BreakerConfig, now: float
) -> BreakerState:
    before = BreakerState(
        open=guard.breaker_open,
        since=guard.breaker_since,
        calm_since=guard.breaker_calm_since,
        reason=guard.breaker_reason,
    )
    hosts = set(conn.execute(sa.select(agents.c.node_id).where(agents.c.client_id == client_id)).scalars())
    # unhealthy: an active incident of warning or critical severity (an ``app_recovered`` event's
    # info incident is no sign of trouble)
    active = conn.execute(
        sa.select(incidents).where(
            incidents.c.client_id == client_id,
            incidents.c.status.in_(ACTIVE_INCIDENT),
            incidents.c.severity.in_(("warning", "critical")),
        )
    ).all()
    unhealthy = {IncidentFacts.of(incident_from_row(r)).node_id for r in active} & hosts
    after = evaluate(before, len(unhealthy), len(hosts), now, config)
    change = breaker_change(before, after)
    if change is not None or after.calm_since != before.calm_since:
        values = {
            "breaker_open": after.open,
            "breaker_since": after.since,
            "breaker_calm_since": after.calm_since,
            "breaker_reason": after.reason,
            "updated_at": now,
        }
        if not guard.stored:
            conn.execute(
                guard_settings.insert().values(
                    client_id=client_id,
                    shadow_runbooks=[],
                    approval_actions=[],
                    updated_by="responder",
                    **values,
                )
            )
        else:
            conn.execute(
                guard_settings.update().where(guard_settings.c.client_id == client_id).values(**values)
            )
    if change is not None:
        detail = {"unhealthy": after.unhealthy, "total": after.total, "reason": after.reason}
        audit.append(conn, client_id, "responder", f"breaker.{change}", client_id, detail, now)
    return after


def guard_context(
    conn: sa.Connection,
    row: RunRow,
    proposal: Proposal,
    receiver: Receiver | None,
    now: float,
    *,
    key: str,
    kill_switch: bool,
    budget: tuple[int, float],
    breaker: tuple[float, int],
) -> GuardContext:
    """The context of ``mediate`` for the run's command ``key`` (its own history row excluded:
    a re-send after a take-over is the same action, not one more)."""
    guard = read_guard(conn, row.client_id)
    settings = settings_of(guard, budget, breaker)
    since = now - settings.budget.window_s
    h = action_history
    own = command_id_of(key)
    history = [
        ActionRecord(r.node_id, r.action, r.at, r.automatic, r.shadow)
        for r in conn.execute(
            sa.select(h.c.node_id, h.c.action, h.c.at, h.c.automatic, h.c.shadow).where(
                h.c.client_id == row.client_id,
                h.c.node_id == proposal.host,
                h.c.action == proposal.action,
                h.c.at > since,
                sa.or_(h.c.command_id.is_(None), h.c.command_id != own),
            )
        )
    ]
    seq = int(key.rsplit(":", 1)[-1])
    found = conn.execute(
        sa.select(run_approvals).where(run_approvals.c.run_id == row.id, run_approvals.c.seq == seq)
    ).first()
    approval = None
    if found is not None:
        approval = Approval(
            id=found.id,
            tenant=found.client_id,
            host=found.node_id or "",
            action=found.action,
            target=found.target,
            params=dict(found.params),
            reason=found.reason,
            requested_at=found.requested_at,
            expires_at=found.expires_at,
            status=found.status,
            decided_by=found.decided_by,
            decided_at=found.decided_at,
            note=found.note or "",
            runbook=found.runbook,
        )
    allowed = {a.name: a for a in receiver.actions} if receiver is not None else {}
    breaker_state = _breaker(conn, row.client_id, guard, settings.breaker, now)
    return GuardContext(
        tenant=row.client_id,
        allowed=allowed,
        settings=settings,
        history=history,
        breaker=breaker_state,
        breaker_opened_now=breaker_state.open and not guard.breaker_open,
        kill_switch=read_kill_switch(conn, kill_switch).on,
        approval=approval,
    )


def record_outcome(conn: sa.Connection, client_id: str, command_id: str, status: str) -> None:
    conn.execute(
        action_history.update()
        .where(action_history.c.client_id == client_id, action_history.c.command_id == command_id)
        .values(outcome=status[:16])
    )


def last_check_event(
    conn: sa.Connection, client_id: str, node_id: str | None, service: str | None, since: float | None = None
) -> str | None:
    """The newest transition (``app_down`` or ``app_recovered``) of check ``service`` on host
    ``node_id`` (received at ``since`` or later); None when it sent none."""
    e = events.c
    q = (
        sa.select(e.type)
        .join(agents, agents.c.id == e.agent_id)
        .where(
            e.client_id == client_id,
            agents.c.node_id == node_id,
            e.service == service,
            e.type.in_(CHECK_EVENTS),
        )
        .order_by(e.received_at.desc())
        .limit(1)
    )
    if since is not None:
        q = q.where(e.received_at >= since)
    found = conn.execute(q).scalar()
    return None if found is None else str(found)


def probe_state(conn: sa.Connection, row: RunRow, check: Check) -> tuple[str, str]:
    """A probe step: the last check event of ``check.probe`` on the run's host, against ``expect``."""
    node = row.node_id
    last = last_check_event(conn, row.client_id, node, check.probe)
    # the agent reports transitions only: a check that never went down is up
    state = "up" if last is None or last == "app_recovered" else "down"
    ok = state == check.expect
    return ("ok" if ok else "failed"), f"check {check.probe!r} on {node} is {state} (expected {check.expect})"
