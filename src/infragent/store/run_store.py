"""``SqlRunStore``: the runbook executor's ``RunStore`` (``responder/run_ports.py``) over the database.

Each method is one transaction. What a run observes is derived from the rows each time (a
cancel request, the alert still firing or not, the last check event of the run's service, an
approval's answer, a pulled command's result), so nothing has to be delivered to a run and
nothing is lost if a responder dies: the next holder reads the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from infragent.model import ActionResult
from infragent.responder.context import build_context
from infragent.responder.guardrails import GuardContext, Proposal
from infragent.responder.ports import IncidentDecidedError
from infragent.responder.run_ports import Receiver, RunRow, Sending
from infragent.responder.step_run import (
    AlertResolved,
    ApprovalDecision,
    AwaitApproval,
    Cancel,
    CheckUp,
    CommandResult,
    Complete,
    EscalateIncident,
    Fail,
    Instruction,
    Observation,
    Run,
    RunStatus,
    SendCommand,
    SendNotification,
    SignalDown,
    Start,
    WouldSend,
)
from infragent.responder.steps import Check, IncidentFacts, StepRunbook, first_step_runbook
from infragent.rules.conditions import compare
from infragent.rules.windows import window_value
from infragent.store import commands as command_rows
from infragent.store import guard_state, run_effects, runs
from infragent.store.agents import get_agent
from infragent.store.base import Database
from infragent.store.incident_reads import get_incident, incident_from_row
from infragent.store.incidents import _still_firing
from infragent.store.llm_inputs import read_context_inputs
from infragent.store.metrics import SqlMetricStore
from infragent.store.remediation import decided_incidents
from infragent.store.runbook_schema import run_approvals
from infragent.store.schema import clients, commands, incidents
from infragent.wire.commands import Command as WireCommand
from infragent.wire.commands import CommandStatus

_RESULT_OF = {
    CommandStatus.DONE.value: "ok",
    CommandStatus.FAILED.value: "error",
    CommandStatus.REJECTED.value: "rejected",
    CommandStatus.EXPIRED.value: "timeout",
}


class SqlRunStore:
    def __init__(self, db: Database, *, kill_switch: bool = False, budget: tuple[int, float] = (3, 1800.0),
                 breaker: tuple[float, int] = (0.4, 3)) -> None:  # fmt: skip
        self.db = db
        self.kill_switch = kill_switch
        self.budget = budget
        self.breaker = breaker

    # -- starting and claiming ---------------------------------------------------------------------

    def start_for_alerts(self, runbooks: Sequence[StepRunbook], now: float, actor: str) -> int:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(incidents).where(incidents.c.source == "alert", incidents.c.status == "open")
            ).all()
            found = [incident_from_row(r) for r in rows]
            by_client: dict[str, list[str]] = {}
            for inc in found:
                by_client.setdefault(inc.client_id, []).append(inc.id)
            decided = {cid: decided_incidents(conn, cid, ids) for cid, ids in by_client.items()}
        started = 0
        for inc in found:
            if inc.id in decided[inc.client_id]:
                continue
            facts = IncidentFacts.of(inc)
            runbook = first_step_runbook(list(runbooks), facts)
            if runbook is None:
                continue
            try:
                with self.db.write() as conn:
                    runs.insert_run(
                        conn,
                        client_id=inc.client_id,
                        runbook=runbook,
                        facts=facts,
                        node_id=facts.node_id,
                        incident_id=inc.id,
                        now=now,
                        actor=actor,
                    )
                started += 1
            except IncidentDecidedError:
                continue
        return started

    def claim(self, worker: str, lease_s: float, now: float) -> list[RunRow]:
        with self.db.write() as conn:
            return runs.claim_runs(conn, worker, lease_s, now)

    def next_due(self, now: float) -> float | None:
        with self.db.read() as conn:
            return runs.next_due(conn, now)

    def release(self, row: RunRow, next_at: float) -> None:
        with self.db.write() as conn:
            runs.release_run(conn, row, next_at)

    # -- what happened -----------------------------------------------------------------------------

    def observe(self, row: RunRow, now: float) -> list[Observation]:
        out: list[Observation] = []
        run = row.run
        with self.db.read() as conn:
            if row.cancel_requested_by:
                out.append(Cancel(row.cancel_requested_by, row.cancel_reason or ""))
            if run.status is RunStatus.QUEUED:
                out.append(Start(dry_run=guard_state.shadowed(conn, row.client_id, row.runbook)))
            out.extend(self._signal(conn, row))
            cursor = run.cursor
            if cursor is not None and isinstance(cursor.instruction, AwaitApproval):
                answer = conn.execute(
                    sa.select(run_approvals.c.status, run_approvals.c.decided_by).where(
                        run_approvals.c.run_id == row.id, run_approvals.c.seq == cursor.seq
                    )
                ).first()
                if answer is not None and answer.status in ("approved", "rejected", "expired"):
                    out.append(ApprovalDecision(cursor.seq, answer.status, answer.decided_by or ""))
            if cursor is not None and isinstance(cursor.instruction, SendCommand):
                got = conn.execute(
                    sa.select(commands.c.status, commands.c.output).where(
                        commands.c.id == runs.command_id_of(cursor.instruction.command.key)
                    )
                ).first()
                if got is not None and got.status in _RESULT_OF:
                    out.append(CommandResult(cursor.seq, _RESULT_OF[got.status], got.output or ""))  # type: ignore[arg-type]
        return out

    def _signal(self, conn: sa.Connection, row: RunRow) -> list[Observation]:
        """The state of the signal that opened the incident: the alert firing or not; for an
        event's incident, the last check event of its service on its node."""
        if row.incident_id is None:
            return []
        incident = get_incident(conn, row.client_id, row.incident_id)
        if incident is None:
            return []
        if incident.source == "alert":
            return [SignalDown() if _still_firing(conn, row.client_id, row.incident_id) else AlertResolved()]
        facts = row.run.facts
        if not facts.service or not facts.node_id:
            return []
        last = guard_state.last_check_event(
            conn, row.client_id, facts.node_id, facts.service, since=incident.opened_at
        )
        if last == "app_recovered":
            return [CheckUp()]
        if last == "app_down":
            return [SignalDown()]
        return []

    def receiver(self, row: RunRow) -> Receiver | None:
        if not row.node_id:
            return None
        with self.db.read() as conn:
            agent = get_agent(conn, row.client_id, row.node_id)
            client = conn.execute(
                sa.select(clients.c.webhook_url, clients.c.webhook_secret).where(
                    clients.c.id == row.client_id
                )
            ).first()
        if agent is None or client is None:
            return None
        return Receiver(
            agent.node_id, agent.command_mode, client.webhook_url, client.webhook_secret, agent.actions
        )

    def guard(
        self, row: RunRow, proposal: Proposal, receiver: Receiver | None, now: float, key: str
    ) -> GuardContext:
        with self.db.write() as conn:  # the breaker's state is stored when it changes
            return guard_state.guard_context(
                conn,
                row,
                proposal,
                receiver,
                now,
                key=key,
                kill_switch=self.kill_switch,
                budget=self.budget,
                breaker=self.breaker,
            )

    # -- saving, with the step's effect ------------------------------------------------------------

    def save(
        self,
        row: RunRow,
        run: Run,
        instruction: Instruction,
        now: float,
        actor: str,
        *,
        next_at: float | None,
        lease_s: float,
        release: bool,
        receiver: Receiver | None = None,
        approval_reason: str = "",
    ) -> tuple[RunRow, Sending | None]:
        with self.db.write() as conn:
            sending: Sending | None = None
            mttr: float | None = None
            before = row.run.cursor
            expired = (
                before is not None
                and isinstance(before.instruction, AwaitApproval)
                and (run.cursor is None or run.cursor.seq != before.seq)
            )
            if expired and before is not None:
                run_effects.expire_approval(conn, row, before.seq, now, actor)
            effect = instruction.then if isinstance(instruction, WouldSend) else instruction
            if isinstance(instruction, WouldSend):
                run_effects.record_would_send(conn, row, instruction.command, now, actor)
            if isinstance(effect, SendCommand) and not isinstance(instruction, WouldSend):
                if receiver is not None:
                    sending = run_effects.record_command(conn, row, effect.command, receiver, now, actor)
            elif isinstance(effect, AwaitApproval):
                run_effects.request_approval(conn, row, effect, now, actor)
            elif isinstance(effect, SendNotification):
                run_effects.note(conn, row, effect.message, now, actor)
            elif isinstance(effect, EscalateIncident | Fail):
                summary = effect.summary if isinstance(effect, EscalateIncident) else effect.reason
                run_effects.escalate(conn, row, summary, now, actor)
            elif isinstance(effect, Complete) and effect.verified:
                mttr = run_effects.resolve(conn, row, effect.summary, now, actor)
            saved = runs.save_run(
                conn,
                row,
                run,
                now=now,
                actor=actor,
                next_at=next_at,
                lease_s=lease_s,
                release=release,
                mttr_s=mttr,
            )
        return saved, sending

    def sent(self, row: RunRow, command_id: str, url: str, now: float, actor: str) -> WireCommand:
        with self.db.write() as conn:
            return command_rows.mark_sent(conn, row.client_id, command_id, now, actor, url)

    def record_result(
        self, row: RunRow, command_id: str, result: ActionResult, now: float, actor: str
    ) -> None:
        with self.db.write() as conn:
            command_rows.record_result(conn, row.client_id, command_id, result, now, actor, "push")
            guard_state.record_outcome(conn, row.client_id, command_id, result.status)

    # -- reads for steps ---------------------------------------------------------------------------

    def evaluate_check(self, row: RunRow, check: Check, now: float) -> tuple[str, str]:
        if check.probe is not None:
            with self.db.read() as conn:
                return guard_state.probe_state(conn, row, check)
        c = check.condition
        if c is None or not row.node_id:
            return "failed", "the check has neither a probe nor a metric condition for a host"
        metrics = SqlMetricStore(self.db.engine)
        found: list[str] = []
        for series in metrics.list_series(row.client_id, host=row.node_id, name=c.selector.metric):
            if not c.selector.matches(series.name, dict(series.labels)):
                continue
            samples = metrics.query_range(
                row.client_id, row.node_id, series.name, series.labels, now - c.window_s, now
            )
            ts = np.array([t for t, _ in samples], dtype=np.float64)
            values = np.array([v for _, v in samples], dtype=np.float64)
            value = window_value(c.function, ts, values, now - c.window_s, now)
            if value is None:
                continue
            if compare(value, c.op, c.value):
                return "ok", f"{c.function}({series.name}) = {value:g} {c.op} {c.value:g}"
            found.append(f"{value:g}")
        if not found:
            return (
                "failed",
                f"no samples of {c.selector.metric} on {row.node_id} in the last {c.window_s:g} s",
            )
        return "failed", f"{c.function}({c.selector.metric}) = {', '.join(found)}, not {c.op} {c.value:g}"

    def llm_context(
        self, row: RunRow, question: str, receiver: Receiver | None, now: float
    ) -> tuple[str, str]:
        """The bounded, redacted context (``responder/context.py``) of the run's incident; the
        steps run so far join the question. ``IncidentNotFoundError`` for a run without one."""
        facts = row.run.facts
        done = "; ".join(f"{r.step_id} ({r.kind}): {r.outcome}" for r in row.run.results[-10:])
        asked = question + (f"\nSteps of runbook {row.runbook!r} so far: {done}" if done else "")
        with self.db.read() as conn:
            inputs = read_context_inputs(
                conn, row.client_id, facts.incident_id, row.node_id or facts.node_id or "", asked, now
            )
        context = build_context(inputs, now)
        return context.system, context.user
