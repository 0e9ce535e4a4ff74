"""The runbook executor: claims runs, feeds the pure core what happened, carries out what it says.

Why this shape: ``step_core.next_step`` decides everything about a run and does no I/O; this module
is the loop around it. For each claimed run it gathers observations (``RunStore.observe``: a
cancel, the signal's state, an approval's answer, a command's result; then a ``Tick``), and for
each new state the core returns it:

1. **mediates** a command before anything else (``guardrails.mediate``: kill switch, allowlist,
   breaker, budget, shadow, approval; complete mediation, failing closed). Only ``allow`` records
   and sends it; ``needs_approval`` becomes the core's ``NeedsApproval``; every refusal its
   ``Refused`` (the run escalates with the reason);
2. **saves** the new state with the instruction's effect in one transaction (``RunStore.save``);
3. carries out what leaves the database: the POST of a pushed command, the LLM's question, a
   check's read; what they return is the next observation, fed at once.

Crash safety: the state is saved before its instruction is carried out, so a responder taking
the run over after a crash (``RunStore.claim`` after the lease) carries out the cursor's
instruction again (``step_core.resume``): the same ``seq`` and the same command key, hence the
same command id, which a receiver refuses as a replay: no step runs twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from infragent.errors import InfrAgentError, LlmError
from infragent.model import ESCALATE, ActionResult, Decision
from infragent.responder import policy
from infragent.responder.guardrails import Proposal, Verdict, mediate
from infragent.responder.llm.base import LlmClient
from infragent.responder.ports import Dispatcher, LeaseLostError
from infragent.responder.run_ports import Receiver, RunRow, RunStore, Sending
from infragent.responder.step_core import next_step
from infragent.responder.step_run import (
    AwaitApproval,
    Cancel,
    CommandResult,
    EvaluateCheck,
    Fail,
    Instruction,
    LlmProposal,
    NeedsApproval,
    Observation,
    QueryLlm,
    Refused,
    Run,
    RunStatus,
    SendCommand,
    SendNotification,
    StartWait,
    StepDone,
    Tick,
    WouldSend,
)
from infragent.responder.steps import Act, AskLlm, StepRunbook

logger = logging.getLogger(__name__)

#: The most core calls one pass over a run makes (the core's loop guard ends runs long before).
MAX_CALLS = 200


class Executor:
    def __init__(
        self,
        store: RunStore,
        dispatcher: Dispatcher,
        *,
        runbooks: Sequence[StepRunbook],
        worker: str,
        llm: LlmClient | None = None,
        clock: Callable[[], float] = time.time,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        approval_poll_s: float = 5.0,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.runbooks = tuple(runbooks)
        self.by_name = {rb.name: rb for rb in self.runbooks}
        self.worker = worker
        self.actor = f"responder:{worker}"
        self.llm = llm
        self.clock = clock
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.approval_poll_s = approval_poll_s
        #: run id → the (seq, instruction kind) this executor carried out last
        self._carried: dict[str, tuple[int, str]] = {}

    def close(self) -> None:
        self.dispatcher.close()

    # -- the loop ----------------------------------------------------------------------------------

    def drain(self) -> int:
        """Start runs for new alert incidents, then advance every due run; how many were advanced."""
        now = self.clock()
        if self.runbooks:
            self.store.start_for_alerts(self.runbooks, now, self.actor)
        rows = self.store.claim(self.worker, self.lease_s, now)
        for row in rows:
            try:
                self.advance(row)
            except LeaseLostError:
                logger.warning("lost the lease on run %s; another responder took it over", row.id)
                self._carried.pop(row.id, None)
        return len(rows)

    def next_due(self, now: float) -> float | None:
        return self.store.next_due(now)

    def advance(self, row: RunRow) -> RunRow:
        """One pass over a claimed run: everything that can happen now, then release it."""
        now = self.clock()
        runbook = self.by_name.get(row.runbook)
        if runbook is None:
            why = f"runbook {row.runbook!r} is not loaded by this responder; the run cannot go on"
            ended = replace(
                row.run, status=RunStatus.FAILED, outcome="failed", ended_at=now, cursor=None, summary=why
            )
            row, _ = self._save(row, ended, Fail(why), now, release=True)
            return row
        cursor = row.run.cursor
        if cursor is not None and self._carried.get(row.id) != (cursor.seq, cursor.instruction.kind):
            # taken over (or this process restarted): carry out what the run waits on, once more
            row = self._carry(row, runbook, row.run, cursor.instruction, resumed=True)
        observations: list[Observation] = [*self.store.observe(row, now), Tick()]
        for obs in observations:
            if row.run.ended:
                break
            run, instruction = next_step(runbook, row.run, obs, self.clock())
            if run != row.run:
                row = self._carry(row, runbook, run, instruction)
        if not row.run.ended:
            self.store.release(row, self._next_at(row.run, self.clock()))
        else:
            self._carried.pop(row.id, None)
        return row

    def _next_at(self, run: Run, now: float) -> float:
        cursor = run.cursor
        if cursor is None:
            return now + self.poll_s
        wait = cursor.instruction
        if isinstance(wait, StartWait):
            return wait.until
        if isinstance(wait, AwaitApproval):
            return min(wait.expires_at, now + self.approval_poll_s)
        deadline = cursor.deadline if cursor.deadline is not None else now + self.poll_s
        return min(deadline, now + self.poll_s)

    # -- carrying out ------------------------------------------------------------------------------

    def _carry(
        self, row: RunRow, runbook: StepRunbook, run: Run, instruction: Instruction, *, resumed: bool = False
    ) -> RunRow:
        """Save ``run`` with ``instruction``'s effect and carry it out, feeding what it returns to
        the core until the run waits on something (or ends)."""
        for _ in range(MAX_CALLS):
            follow: Observation | None
            if isinstance(instruction, SendCommand):
                row, follow = self._command(row, runbook, run, instruction, resumed)
            else:
                if not resumed:
                    row, _ = self._save(row, run, instruction, self.clock())
                self._mark(row)
                if isinstance(instruction, WouldSend):
                    run, instruction = row.run, instruction.then
                    if isinstance(instruction, SendCommand | WouldSend):
                        continue
                    # the save applied ``then``'s effect with the would-be command
                    follow = None if resumed else self._outside(row, instruction)
                else:
                    follow = self._outside(row, instruction)
            resumed = False
            if follow is None:
                return row
            # from ``run``: a refused command's state was never saved, the refusal follows from it
            after, instruction = next_step(runbook, run, follow, self.clock())
            if after == run:
                return row
            run = after
        logger.error("run %s: more than %d core calls in one pass; stopping here", row.id, MAX_CALLS)
        return row

    def _command(
        self, row: RunRow, runbook: StepRunbook, run: Run, send: SendCommand, resumed: bool
    ) -> tuple[RunRow, Observation | None]:
        """Mediate, then record and send (or turn the verdict into the core's observation)."""
        now = self.clock()
        receiver = self.store.receiver(row)
        proposal = self._proposal(row, runbook, run, send)
        context = self.store.guard(row, proposal, receiver, now, send.command.key)
        verdict = mediate(proposal, context, now)
        if not verdict.sends:
            if verdict.check == "breaker" and not context.breaker_opened_now:
                # open since earlier: its one escalation went out when it opened (with the run
                # that saw it open); this run stops without escalating its incident again
                return row, Cancel("the circuit breaker", verdict.reason)
            if resumed:
                # the command was recorded before the crash; a stop thrown since (kill switch,
                # breaker) must still hold: the run escalates instead of re-sending
                logger.warning("run %s: re-send of %s refused: %s", row.id, send.command.key, verdict.reason)
            return row, self._refusal(send, verdict)
        row, sending = self._save(row, run, send, now, receiver=receiver)
        self._mark(row)
        if sending is None:
            return row, CommandResult(
                send.seq, "unreachable", f"no agent is registered for host {row.node_id}"
            )
        return row, self._send(row, sending, receiver, send, resumed)

    def _proposal(self, row: RunRow, runbook: StepRunbook, run: Run, send: SendCommand) -> Proposal:
        index = runbook.index(send.step_id)
        step = runbook.steps[index] if index is not None else None
        approval = None
        if step is not None and isinstance(step.body, Act):
            approval = step.body.approval or runbook.approval
        elif step is not None and isinstance(step.body, AskLlm):
            approval = step.body.approval
        command = send.command
        return Proposal(
            tenant=row.client_id,
            host=row.node_id or "",
            action=command.action,
            source=command.source,
            target=command.target,
            params=dict(command.params),
            runbook=row.runbook,
            step=approval,
            dry_run=run.dry_run,
        )

    @staticmethod
    def _refusal(send: SendCommand, verdict: Verdict) -> Observation:
        if verdict.kind == "needs_approval":
            return NeedsApproval(send.seq, verdict.reason)
        if verdict.kind == "shadow":
            why = f"{verdict.reason}; shadow mode began after this run started, so nothing is sent"
            return Refused(send.seq, why)
        return Refused(send.seq, f"{verdict.check}: {verdict.reason}")

    def _send(
        self, row: RunRow, sending: Sending, receiver: Receiver | None, send: SendCommand, resumed: bool
    ) -> Observation | None:
        if receiver is None:
            return CommandResult(send.seq, "unreachable", f"no agent is registered for host {row.node_id}")
        if receiver.command_mode == "pull" or sending.status not in ("queued", "sent"):
            return None  # the agent fetches it and reports; or its result is stored: observed next
        now = self.clock()
        wire = self.store.sent(row, sending.command_id, receiver.webhook_url, now, self.actor)
        result = self.dispatcher.send(receiver.webhook_url, receiver.webhook_secret, wire)
        if result.http_status == 401 and result.code == "replay":
            result = ActionResult(
                status="error",
                output="delivered before by a responder that stopped before recording the result; the "
                "receiver refused the re-send as a replay, so the action did not run twice",
                http_status=401,
                attempts=result.attempts,
                code=result.code,
            )
        self.store.record_result(row, sending.command_id, result, self.clock(), self.actor)
        if resumed:
            logger.info(
                "run %s: re-sent %s after taking the run over: %s", row.id, send.command.key, result.status
            )
        return CommandResult(send.seq, result.status, result.output)

    def _outside(self, row: RunRow, instruction: Instruction) -> Observation | None:
        """What leaves the database besides commands: a check's read, the LLM; a notification's
        effect was saved with the state, so it is done."""
        if isinstance(instruction, EvaluateCheck):
            outcome, why = self.store.evaluate_check(row, instruction.check, self.clock())
            return StepDone(instruction.seq, "ok" if outcome == "ok" else "failed", why)
        if isinstance(instruction, SendNotification):
            return StepDone(instruction.seq, "ok", "notified")
        if isinstance(instruction, QueryLlm):
            return LlmProposal(instruction.seq, self._ask(row, instruction))
        return None

    def _ask(self, row: RunRow, query: QueryLlm) -> Decision:
        receiver = self.store.receiver(row)
        allowed = {a.name: a for a in receiver.actions} if receiver is not None else {}
        if self.llm is None:
            return policy.escalate("llm", "no LLM is configured for this responder")
        try:
            system, user = self.store.llm_context(row, query.question, receiver, self.clock())
        except InfrAgentError as exc:  # a run without an incident (a schedule's) has no context
            return policy.escalate("llm", f"no context for the LLM: {exc}")
        audited = f"[system]\n{system}\n[user]\n{user}"
        try:
            raw = self.llm.complete_json(system, user, policy.decision_schema(allowed))
        except LlmError as exc:
            return policy.escalate("llm", f"LLM call failed: {exc}", prompt=audited)
        decision = policy.parse_llm_answer(raw, allowed, prompt=audited, answer=raw[:4000])
        if decision.action == ESCALATE:
            logger.info("run %s: the LLM's answer escalates: %s", row.id, decision.rationale[:200])
        return decision

    # -- saving ------------------------------------------------------------------------------------

    def _save(
        self,
        row: RunRow,
        run: Run,
        instruction: Instruction,
        now: float,
        *,
        receiver: Receiver | None = None,
        release: bool = False,
    ) -> tuple[RunRow, Sending | None]:
        return self.store.save(
            row,
            run,
            instruction,
            now,
            self.actor,
            next_at=self._next_at(run, now),
            lease_s=self.lease_s,
            release=release,
            receiver=receiver,
        )

    def _mark(self, row: RunRow) -> None:
        cursor = row.run.cursor
        if cursor is None:
            self._carried.pop(row.id, None)
        else:
            self._carried[row.id] = (cursor.seq, cursor.instruction.kind)
