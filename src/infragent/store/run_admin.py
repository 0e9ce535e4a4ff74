"""People's changes to runs and guardrails: cancel a run, answer an approval, throw the kill switch,
set a tenant's guardrails. Each is one function over a Connection, in the caller's transaction,
audited in the tenant's chain.

Why a cancel and an approval only *ask* (``cancel_requested_by``, the approval's status) and set
the run's ``next_at`` to now: the run is carried out by the executor that holds its lease
(``store/runs.py``); a person's request must not race it by writing the run's state. The executor
is due at once, reads the request, and the pure core decides (``step_core.next_step`` with
``Cancel`` or ``ApprovalDecision``); ``runs.save_run`` audits what it did.

Why ``decide_approval`` returns a ``Decided`` rather than raising for an expired request: the
expiry must be stored (the request is marked expired and the run woken, so it is escalated at
once) *and* the person told no; an exception would roll the marking back with the transaction.
``Decided.checked()`` raises the refusal after the caller committed.

Why the kill switch is one ``server_kv`` row and not a tenant's setting: it is global (issue #14:
"stops every automatic action at once"). It is audited in the chain of the tenant of whoever threw
it (there is no global chain) and logged at WARNING, so the server log shows it for every tenant.

Validation of guardrails reuses the pure values (``guardrails.Budget``,
``approval.ApprovalPolicy``): the API refuses exactly what the executor could not use.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import orjson
import sqlalchemy as sa

from infragent.errors import ConfigError
from infragent.responder.approval import ApprovalPolicy
from infragent.responder.guardrails import Budget
from infragent.store import audit
from infragent.store.guard_reads import KILL_SWITCH_KEY, GuardRow, KillSwitch, read_guard, read_kill_switch
from infragent.store.run_errors import GuardInputError, RunConflictError, RunError, RunNotFoundError
from infragent.store.run_reads import ApprovalView, RunView, get_approval, get_run
from infragent.store.runbook_schema import guard_settings, run_approvals, runbook_runs
from infragent.store.schema import server_kv

__all__ = [
    "UNSET",
    "Decided",
    "cancel_run",
    "decide_approval",
    "read_guard",
    "read_kill_switch",
    "set_guardrails",
    "set_kill_switch",
]

logger = logging.getLogger(__name__)

ENDED: Final = ("completed", "failed", "cancelled")
#: Longest text kept of a person's reason or note.
MAX_TEXT: Final = 2000


class _Unset(Enum):
    UNSET = "unset"


#: "leave as it is" for ``set_guardrails`` (None means "the default" for the budget).
UNSET: Final = _Unset.UNSET


def _run_row(conn: sa.Connection, client_id: str, run_id: str) -> Any:
    t = runbook_runs.c
    row = conn.execute(
        sa.select(t.id, t.status, t.cancel_requested_by).where(t.client_id == client_id, t.id == run_id)
    ).first()
    if row is None:
        raise RunNotFoundError("run", run_id)
    return row


def cancel_run(conn: sa.Connection, client_id: str, run_id: str, by: str, reason: str, now: float) -> RunView:
    """Ask the executor to cancel the run (it ends it as ``cancelled`` and withdraws a pending
    approval). ``RunNotFoundError`` for an unknown run, ``RunConflictError`` (``ended``) for one
    that has ended. Asking again while the first request is pending changes nothing."""
    audit.lock_tenant(conn, client_id)
    row = _run_row(conn, client_id, run_id)
    if row.status in ENDED:
        raise RunConflictError("ended", f"run {run_id!r} has already ended ({row.status})")
    if row.cancel_requested_by is None:
        t = runbook_runs.c
        conn.execute(
            runbook_runs.update()
            .where(t.client_id == client_id, t.id == run_id)
            .values(cancel_requested_by=by, cancel_reason=reason[:MAX_TEXT], next_at=now)
        )
        audit.append(conn, client_id, by, "run.cancel_requested", run_id, {"reason": reason[:500]}, now)
    return get_run(conn, client_id, run_id)


@dataclass(frozen=True, slots=True)
class Decided:
    """An answer to an approval as stored: the approval now, and the refusal to raise once the
    transaction is committed (an expired request is stored as expired *and* refused)."""

    approval: ApprovalView
    refusal: RunError | None = None

    def checked(self) -> ApprovalView:
        """The approval, or the refusal raised."""
        if self.refusal is not None:
            raise self.refusal
        return self.approval


def _wake(conn: sa.Connection, client_id: str, run_id: str, now: float) -> None:
    t = runbook_runs.c
    conn.execute(
        runbook_runs.update()
        .where(t.client_id == client_id, t.id == run_id, t.status.notin_(ENDED))
        .values(next_at=now)
    )


def decide_approval(
    conn: sa.Connection, client_id: str, approval_id: str, by: str, approve: bool, note: str, now: float
) -> Decided:
    """Answer a pending approval once: approved or rejected by ``by``, audited
    (``approval.approved`` / ``approval.rejected``), and the run woken so the executor acts now.

    Refusals: ``RunNotFoundError`` (raised) for an unknown request; a ``Decided`` carrying a
    ``RunConflictError`` for a request answered already (``decided``), one whose run has ended
    (``ended``), or one past its expiry (``expired``: stored as expired, audited
    ``approval.expired``, the run woken to escalate: nothing is run)."""
    audit.lock_tenant(conn, client_id)
    current = get_approval(conn, client_id, approval_id, now)
    a = run_approvals.c
    detail: dict[str, Any] = {
        "run_id": current.run_id,
        "seq": current.seq,
        "action": current.action,
        "target": current.target,
        "node_id": current.node_id,
        "incident_id": current.incident_id,
    }
    if current.status == "expired":
        marked = conn.execute(
            run_approvals.update()
            .where(a.client_id == client_id, a.id == approval_id, a.status == "pending")
            .values(
                status="expired",
                decided_by="system:expiry",
                decided_at=current.expires_at,
                note="no answer before the approval expired",
            )
        )
        if marked.rowcount == 1:
            audit.append(conn, client_id, "system:expiry", "approval.expired", approval_id, detail, now)
            _wake(conn, client_id, current.run_id, now)
        refusal = RunConflictError(
            "expired",
            f"approval {approval_id!r} expired unanswered at {current.expires_at:.0f}; nothing was run",
        )
        return Decided(get_approval(conn, client_id, approval_id, now), refusal)
    if current.status != "pending":
        message = f"approval {approval_id!r} is already {current.status} by {current.decided_by}"
        return Decided(current, RunConflictError("decided", message))
    run = _run_row(conn, client_id, current.run_id)
    if run.status in ENDED:
        return Decided(current, RunConflictError("ended", f"run {current.run_id!r} has ended ({run.status})"))
    status = "approved" if approve else "rejected"
    done = conn.execute(
        run_approvals.update()
        .where(a.client_id == client_id, a.id == approval_id, a.status == "pending")
        .values(status=status, decided_by=by, decided_at=now, note=note[:MAX_TEXT])
    )
    if done.rowcount != 1:  # answered between our read and our write (no tenant lock on SQLite reads)
        fresh = get_approval(conn, client_id, approval_id, now)
        return Decided(
            fresh, RunConflictError("decided", f"approval {approval_id!r} is already {fresh.status}")
        )
    audit.append(conn, client_id, by, f"approval.{status}", approval_id, detail | {"note": note[:500]}, now)
    _wake(conn, client_id, current.run_id, now)
    return Decided(get_approval(conn, client_id, approval_id, now))


def _put_kv(conn: sa.Connection, key: str, value: str) -> None:
    found = conn.execute(sa.select(server_kv.c.key).where(server_kv.c.key == key)).first()
    if found is None:
        conn.execute(server_kv.insert().values(key=key, value=value))
    else:
        conn.execute(server_kv.update().where(server_kv.c.key == key).values(value=value))


def set_kill_switch(
    conn: sa.Connection, client_id: str, on: bool, by: str, reason: str, now: float, *, setting: bool = False
) -> KillSwitch:
    """Throw (``on``) or release the global kill switch; audited as ``responder.kill_switch`` in the
    caller's tenant and logged. Releasing it does not release the server setting: the returned
    switch stays on while ``setting`` is."""
    audit.lock_tenant(conn, client_id)
    value = {"on": on, "by": by, "at": now, "reason": reason[:MAX_TEXT]}
    _put_kv(conn, KILL_SWITCH_KEY, orjson.dumps(value).decode())
    audit.append(conn, client_id, by, "responder.kill_switch", KILL_SWITCH_KEY, value, now)
    logger.warning("kill switch %s by %s (tenant %s): %s", "ON" if on else "off", by, client_id, reason)
    return read_kill_switch(conn, setting)


def _names(value: object, field: str, longest: int, problems: list[tuple[str, str]]) -> list[str] | None:
    """A list of distinct non-empty names, sorted; a problem (and None) otherwise."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        problems.append((field, "must be a list of names"))
        return None
    names = [v.strip() for v in value]
    for i, name in enumerate(names):
        if not name or len(name) > longest:
            problems.append((f"{field}[{i}]", f"must be a name of 1 to {longest} characters"))
            return None
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        problems.append((field, f"{', '.join(map(repr, twice))} listed twice"))
        return None
    return sorted(names)


def set_guardrails(
    conn: sa.Connection,
    client_id: str,
    *,
    by: str,
    now: float,
    shadow: bool | _Unset = UNSET,
    shadow_runbooks: list[str] | _Unset = UNSET,
    budget_limit: int | _Unset | None = UNSET,
    budget_window_s: float | _Unset | None = UNSET,
    approval_actions: list[str] | _Unset = UNSET,
    approval_llm: bool | _Unset = UNSET,
) -> GuardRow:
    """Change the tenant's guardrails: every argument left ``UNSET`` stays as it is; a budget value
    of None means the server's default. ``GuardInputError`` names every field at fault, and then
    nothing changes. The breaker columns are the executor's and are never written here. Audited as
    ``guardrails.changed`` with the fields set."""
    problems: list[tuple[str, str]] = []
    changes: dict[str, Any] = {}
    for name, flag in (("shadow", shadow), ("approval_llm", approval_llm)):
        if flag is not UNSET:
            changes[name] = bool(flag)
    if shadow_runbooks is not UNSET:
        runbooks = _names(shadow_runbooks, "shadow_runbooks", 200, problems)
        if runbooks is not None:
            changes["shadow_runbooks"] = runbooks
    if approval_actions is not UNSET:
        actions = _names(approval_actions, "approval_actions", 100, problems)
        if actions is not None:
            try:
                ApprovalPolicy(actions=frozenset(actions))
            except ConfigError as exc:
                problems.append(("approval_actions", exc.message))
            else:
                changes["approval_actions"] = actions
    if budget_limit is not UNSET:
        if budget_limit is not None:
            try:
                Budget(limit=budget_limit)
            except ConfigError as exc:
                problems.append(("budget_limit", exc.message))
        changes["budget_limit"] = budget_limit
    if budget_window_s is not UNSET:
        if budget_window_s is not None:
            ok = isinstance(budget_window_s, int | float) and not isinstance(budget_window_s, bool)
            try:
                if not ok or not math.isfinite(float(budget_window_s)):
                    raise ConfigError("budget.window", "must be a positive number of seconds")
                Budget(window_s=float(budget_window_s))
            except ConfigError as exc:
                problems.append(("budget_window_s", exc.message))
        changes["budget_window_s"] = None if budget_window_s is None else float(budget_window_s)
    if problems:
        raise GuardInputError(problems)
    audit.lock_tenant(conn, client_id)
    g = guard_settings.c
    if read_guard(conn, client_id).stored:
        conn.execute(
            guard_settings.update()
            .where(g.client_id == client_id)
            .values(**changes, updated_at=now, updated_by=by)
        )
    else:
        row: dict[str, Any] = {"shadow_runbooks": [], "approval_actions": []} | changes
        conn.execute(
            guard_settings.insert().values(client_id=client_id, updated_at=now, updated_by=by, **row)
        )
    audit.append(conn, client_id, by, "guardrails.changed", client_id, changes, now)
    return read_guard(conn, client_id)
