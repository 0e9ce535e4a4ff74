"""The store's reads and people's changes of runbook runs (both databases): run views with the step
in progress, approvals answered once, expiry, cancel, guardrails validation, effectiveness."""

from __future__ import annotations

import pytest

from infragent.responder.step_run import ApprovalDecision, CommandResult, Start
from infragent.store import audit, guard_reads, run_admin, run_effect, run_reads
from infragent.store.records import Registration
from infragent.store.run_errors import GuardInputError, RunConflictError, RunNotFoundError
from infragent.store.sql import SqlStore
from support.run_rows import (
    APPROVED_RESTART,
    PLAIN_RESTART,
    add_action,
    add_approval,
    advance,
    end_run,
    queue_run,
    row_of,
)

T0 = 10_000.0


@pytest.fixture
def tenant(client_reg: Registration) -> str:
    return client_reg.client.id


def _waiting(store: SqlStore, tenant: str) -> tuple[str, str]:
    """A run waiting for approval of its restart, and the pending approval."""
    run_id = queue_run(store, tenant, APPROVED_RESTART, T0)
    advance(store, run_id, APPROVED_RESTART, Start(), T0 + 1)
    return run_id, add_approval(store, tenant, run_id, 1, T0 + 1)


def test_a_run_view_shows_the_step_in_progress_and_the_steps_that_ended(store: SqlStore, tenant: str) -> None:
    run_id = queue_run(store, tenant, PLAIN_RESTART, T0)
    advance(store, run_id, PLAIN_RESTART, Start(), T0 + 1)
    with store.read() as conn:
        [view] = run_reads.list_runs(conn, tenant)
    assert view.status == "running" and view.current is not None
    assert (view.current.step_id, view.current.waiting_for, view.current.action) == (
        "restart",
        "command",
        "restart",
    )
    assert view.current.deadline is not None and view.current.deadline > T0 + 1
    advance(store, run_id, PLAIN_RESTART, CommandResult(1, "ok", "restarted"), T0 + 2)
    with store.read() as conn:
        done = run_reads.get_run(conn, tenant, run_id)
    assert done.status == "completed" and done.current is None
    [step] = done.steps
    assert (step.seq, step.step_id, step.outcome, step.action, step.target) == (
        1,
        "restart",
        "ok",
        "restart",
        "web",
    )
    assert step.command_id is not None


def test_list_filters_and_pages(store: SqlStore, tenant: str) -> None:
    ids = [queue_run(store, tenant, PLAIN_RESTART, T0 + i) for i in range(3)]
    other = queue_run(store, tenant, APPROVED_RESTART, T0 + 5)
    with store.read() as conn:
        assert [v.id for v in run_reads.list_runs(conn, tenant, runbook="plain-restart")] == ids[::-1]
        page = run_reads.list_runs(conn, tenant, limit=2)
        assert [v.id for v in page] == [other, ids[2]]
        older = run_reads.list_runs(conn, tenant, limit=2, before=page[-1].created_at)
        assert [v.id for v in older] == [ids[1], ids[0]]
        assert run_reads.list_runs(conn, tenant, status="completed") == []
        assert run_reads.list_runs(conn, "another-tenant") == []
        with pytest.raises(RunNotFoundError):
            run_reads.get_run(conn, "another-tenant", other)


def test_an_approval_is_answered_once_and_wakes_the_run(store: SqlStore, tenant: str) -> None:
    run_id, approval_id = _waiting(store, tenant)
    with store.read() as conn:
        [pending] = run_reads.list_approvals(conn, tenant, T0 + 100, status="pending")
    assert pending.seconds_left == pytest.approx(801.0)
    with store.write() as conn:
        decided = run_admin.decide_approval(conn, tenant, approval_id, "user:op", True, "go", T0 + 100)
    assert decided.checked().status == "approved" and decided.approval.decided_by == "user:op"
    assert row_of(store, run_id).next_at == T0 + 100
    with store.write() as conn:
        again = run_admin.decide_approval(conn, tenant, approval_id, "user:other", False, "", T0 + 101)
    assert isinstance(again.refusal, RunConflictError) and again.refusal.code == "decided"
    with pytest.raises(RunConflictError):
        again.checked()
    with store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, tenant, [approval_id])]
    assert kinds == ["approval.approved"]
    run = advance(store, run_id, APPROVED_RESTART, ApprovalDecision(1, "approved", "user:op"), T0 + 102)
    assert run.cursor is not None and run.cursor.instruction.kind == "send_command"


def test_an_expired_approval_is_refused_and_stored_expired(store: SqlStore, tenant: str) -> None:
    run_id, approval_id = _waiting(store, tenant)
    late = T0 + 1 + 900
    with store.write() as conn:
        decided = run_admin.decide_approval(conn, tenant, approval_id, "user:op", True, "", late)
    assert decided.refusal is not None and decided.refusal.code == "expired" and decided.refusal.status == 409
    with store.read() as conn:
        stored = run_reads.get_approval(conn, tenant, approval_id, late)
        kinds = [e.kind for e in audit.entries(conn, tenant, [approval_id])]
        assert [a.id for a in run_reads.list_approvals(conn, tenant, late, status="expired")] == [approval_id]
    assert (
        stored.status == "expired" and stored.decided_by == "system:expiry" and kinds == ["approval.expired"]
    )
    assert row_of(store, run_id).next_at == late


def test_a_pending_approval_past_its_expiry_lists_as_expired(store: SqlStore, tenant: str) -> None:
    _, approval_id = _waiting(store, tenant)
    with store.read() as conn:
        assert run_reads.list_approvals(conn, tenant, T0 + 2000, status="pending") == []
        [view] = run_reads.list_approvals(conn, tenant, T0 + 2000)
    assert (view.id, view.status, view.seconds_left) == (approval_id, "expired", 0.0)


def test_cancel_asks_once_and_refuses_an_ended_run(store: SqlStore, tenant: str) -> None:
    run_id = queue_run(store, tenant, PLAIN_RESTART, T0)
    with store.write() as conn:
        view = run_admin.cancel_run(conn, tenant, run_id, "key:a", "wrong host", T0 + 5)
        run_admin.cancel_run(conn, tenant, run_id, "key:b", "again", T0 + 6)
    assert (view.cancel_requested_by, view.cancel_reason) == ("key:a", "wrong host")
    row = row_of(store, run_id)
    assert (row.cancel_requested_by, row.next_at) == ("key:a", T0 + 5)
    end_run(store, run_id, status="cancelled", outcome="cancelled", ended_at=T0 + 7)
    with store.write() as conn, pytest.raises(RunConflictError) as ended:
        run_admin.cancel_run(conn, tenant, run_id, "key:a", "", T0 + 8)
    assert ended.value.code == "ended"
    with store.write() as conn, pytest.raises(RunNotFoundError):
        run_admin.cancel_run(conn, "another-tenant", run_id, "key:a", "", T0 + 8)


def test_guardrails_are_validated_and_changed_field_by_field(store: SqlStore, tenant: str) -> None:
    with store.read() as conn:
        assert not run_admin.read_guard(conn, tenant).stored
    with store.write() as conn:
        run_admin.set_guardrails(conn, tenant, by="key:a", now=T0, shadow=True, budget_limit=5)
        row = run_admin.set_guardrails(conn, tenant, by="key:a", now=T0 + 1, approval_actions=["reboot"])
    assert (row.shadow, row.budget_limit, row.approval_actions, row.budget_window_s) == (
        True,
        5,
        ("reboot",),
        None,
    )
    with store.write() as conn, pytest.raises(GuardInputError) as bad:
        run_admin.set_guardrails(
            conn,
            tenant,
            by="key:a",
            now=T0 + 2,
            budget_limit=-1,
            budget_window_s=0.0,
            approval_actions=["a", "a"],
        )
    fields = [f for f, _ in bad.value.problems]
    assert fields == ["approval_actions", "budget_limit", "budget_window_s"]
    with store.read() as conn:
        view = guard_reads.guardrails(conn, tenant)
    assert view.guard.budget_limit == 5 and view.budget.limit == 5 and view.budget.window_s == 1800.0


def test_the_kill_switch_is_stored_audited_and_fails_closed(store: SqlStore, tenant: str) -> None:
    with store.read() as conn:
        assert not guard_reads.read_kill_switch(conn).on
        assert guard_reads.read_kill_switch(conn, setting=True).on
    with store.write() as conn:
        on = run_admin.set_kill_switch(conn, tenant, True, "key:a", "fleet outage", T0)
    assert (on.on, on.by, on.reason) == (True, "key:a", "fleet outage")
    with store.write() as conn:
        off = run_admin.set_kill_switch(conn, tenant, False, "key:a", "", T0 + 1, setting=True)
    assert (off.stored_on, off.on) == (False, True)
    with store.read() as conn:
        assert [e.kind for e in audit.entries(conn, tenant, ["responder.kill_switch"])] == [
            "responder.kill_switch"
        ] * 2


def test_effectiveness_per_runbook_and_action(store: SqlStore, tenant: str) -> None:
    ok = [queue_run(store, tenant, PLAIN_RESTART, T0 + i) for i in range(3)]
    for i, run_id in enumerate(ok):
        mttr = [10.0, 20.0, 40.0][i]
        end_run(
            store,
            run_id,
            status="completed",
            outcome="completed",
            ended_at=T0 + 50,
            verified_at=T0 + 50,
            mttr_s=mttr,
        )
        add_action(store, tenant, run_id, "restart", T0 + i)
    escalated = queue_run(store, tenant, PLAIN_RESTART, T0 + 10)
    end_run(store, escalated, status="failed", outcome="escalated", ended_at=T0 + 60)
    add_action(store, tenant, escalated, "restart", T0 + 10, outcome="error")
    unverified = queue_run(store, tenant, PLAIN_RESTART, T0 + 11)
    end_run(store, unverified, status="completed", outcome="completed", ended_at=T0 + 60)
    cancelled = queue_run(store, tenant, PLAIN_RESTART, T0 + 12)
    end_run(store, cancelled, status="cancelled", outcome="cancelled", ended_at=T0 + 60)
    dry = queue_run(store, tenant, PLAIN_RESTART, T0 + 13)
    end_run(
        store,
        dry,
        status="completed",
        outcome="completed",
        ended_at=T0 + 60,
        verified_at=T0 + 60,
        dry_run=True,
    )
    add_action(store, tenant, dry, "restart", T0 + 13, outcome="would_send", shadow=True)
    queue_run(store, tenant, PLAIN_RESTART, T0 + 14)  # still active
    with store.read() as conn:
        got = run_effect.effectiveness(conn, tenant, T0 + 100)
    [rb] = got.runbooks
    assert (rb.runs, rb.counted, rb.succeeded, rb.escalations, rb.cancelled, rb.dry_runs, rb.active) == (
        8,
        5,
        3,
        1,
        1,
        1,
        1,
    )
    assert rb.success_rate == pytest.approx(3 / 5)
    assert (rb.mttr_median_s, rb.mttr_p95_s) == (20.0, 40.0)
    assert len(rb.last_runs) == run_effect.LAST_RUNS and rb.last_runs[0].created_at == T0 + 14
    [act] = got.actions
    assert (act.name, act.actions, act.runs, act.counted, act.succeeded, act.errors) == (
        "restart",
        4,
        4,
        4,
        3,
        1,
    )
    assert act.success_rate == pytest.approx(3 / 4)
    with store.read() as conn:
        later = run_effect.effectiveness(conn, tenant, T0 + 100, since=T0 + 12)
    assert later.runbooks[0].runs == 3 and later.actions == ()


def test_p95_is_nearest_rank() -> None:
    assert run_effect.p95([]) is None
    assert run_effect.p95([5.0]) == 5.0
    assert run_effect.p95([float(i) for i in range(1, 21)]) == 19.0
    assert run_effect.p95([float(i) for i in range(1, 101)]) == 95.0
