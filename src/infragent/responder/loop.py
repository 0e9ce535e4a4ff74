"""The responder: claim → plan → decide → act → record, woken by new events, swept as a fallback.

Why a plan step: a claim is one agent's pending events, a decision is about one incident. The plan
(``responder/plan.py``) keeps the events of one undecided incident to decide on and marks the events
of incidents already decided as joined, so a storm of events about one failure is one decision.

Why the decision is stored before the command is sent: if this process dies after sending, the next
claimant finds the recorded decision and re-sends the *same* command id, which the receiver refuses
as a replay instead of running the action twice. Nothing accepted is lost, nothing is done twice.
The refusal is recognised by its reason code (``result.code == "replay"``), never by its wording.

Everything outside the decision comes in through ``responder/ports.py`` (work queue, dispatcher,
latch); this module imports no store module.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from infragent.errors import LlmError
from infragent.model import ActionResult, Decision
from infragent.redact import redact
from infragent.responder import policy, prompt
from infragent.responder.executor import Executor
from infragent.responder.llm.base import LlmClient
from infragent.responder.plan import plan, resends
from infragent.responder.ports import (
    Dispatcher,
    IncidentDecidedError,
    Latch,
    LeaseLostError,
    WorkItem,
    WorkQueue,
)
from infragent.responder.runbooks import Runbook, first_match
from infragent.responder.steps import IncidentFacts, StepRunbook, first_step_runbook

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    lease_s: float = 60.0
    cooldown_s: float = 300.0
    sweep_interval_s: float = 30.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class Responder:
    def __init__(
        self,
        queue: WorkQueue,
        dispatcher: Dispatcher,
        *,
        wakeup: Latch,
        runbooks: Sequence[Runbook],
        llm: LlmClient | None = None,
        config: ResponderConfig | None = None,
        clock: Callable[[], float] = time.time,
        worker: str | None = None,
        step_runbooks: Sequence[StepRunbook] = (),
        executor: Executor | None = None,
    ) -> None:
        self.queue = queue
        self.dispatcher = dispatcher
        self.runbooks = list(runbooks)
        self.llm = llm
        self.config = config or ResponderConfig()
        self.wakeup = wakeup
        self.clock = clock
        self.worker = worker or default_worker_id()
        self.actor = f"responder:{self.worker}"
        self.handled = 0
        #: runbooks as steps: an incident one of them matches gets a run (``executor``) instead
        #: of a single decision
        self.step_runbooks = tuple(step_runbooks)
        self.executor = executor

    def close(self) -> None:
        self.dispatcher.close()
        if self.executor is not None:
            self.executor.close()

    # -- decide ------------------------------------------------------------------------------------

    def decide(self, item: WorkItem) -> Decision:
        """Runbook first, then the LLM if configured; the result is always checked against the allowlist."""
        allowed = {a.name: a for a in item.actions}
        latest = item.events[-1]
        runbook = first_match(self.runbooks, latest)
        if runbook is not None:
            return policy.check_allowed(runbook.decide(latest), allowed)
        if self.llm is None:
            return policy.escalate(
                "policy", f"no runbook matches event type {latest.type!r} and no LLM is configured"
            )
        # Redacted as it is built: the audit keeps exactly the text the vendor received.
        user = prompt.build_user_prompt(item.node_id, item.events, allowed)
        audited_prompt = f"[system]\n{prompt.SYSTEM}\n[user]\n{user}"
        try:
            raw = self.llm.complete_json(prompt.SYSTEM, user, policy.decision_schema(allowed))
        except LlmError as exc:
            return policy.escalate("llm", f"LLM call failed: {exc}", prompt=audited_prompt)
        return policy.parse_llm_answer(raw, allowed, prompt=audited_prompt, answer=redact(raw))

    # -- act ---------------------------------------------------------------------------------------

    def handle(self, claimed: WorkItem) -> int:
        """Decide on one incident of the claim (or finish an earlier claimant's decision), mark the
        events of already decided incidents as joined; return how many events were marked processed."""
        now = self.clock()
        item = plan(claimed)
        if not item.events:
            return self._join(item)
        prior = item.prior
        run = self._start_run(item, now) if prior is None else None
        if run is not None:
            return run
        if prior is not None and resends(prior):
            # An earlier responder decided and may have sent; re-send the same command id.
            decision = Decision(
                source="runbook"
                if prior.source == "runbook"
                else "llm"
                if prior.source == "llm"
                else "policy",
                action=prior.action,
                target=prior.target,
                params=prior.params,
                rationale=prior.rationale,
            )
            command_id: str | None = prior.command_id
        else:
            decision = self.decide(item)
            try:
                command_id = self.queue.record_decision(item, decision, self.clock(), self.actor)
            except IncidentDecidedError:
                # Another claim decided this incident meanwhile (its events came from another agent).
                return self._join(replace(item, events=(), joined=item.joined + item.events))
        cooldown_until = None
        outcome = decision.action
        if command_id is not None and item.command_mode == "pull":
            # The agent fetches it on its next poll and reports the result itself.
            self.queue.queue_for_pull(item, command_id, self.clock(), self.actor)
            cooldown_until = self.clock() + self.config.cooldown_s
            outcome = f"{decision.action}:queued"
        elif command_id is not None:
            result = self._send(item, command_id, resend=prior is not None)
            cooldown_until = self.clock() + self.config.cooldown_s
            outcome = f"{decision.action}:{result.status}"
        self.queue.complete(item, self.clock(), cooldown_until, self.actor, outcome)
        processed = len(item.events) + len(item.joined)
        self.handled += processed
        logger.info(  # node id and rationale quote what the host reported: redacted like the prompt
            "handled %d event(s) of %s, incident %s: %s (%s) in %.0f ms; %d joined decided incidents",
            len(item.events),
            redact(item.node_id),
            item.incident_id,
            outcome,
            redact(decision.rationale),
            (self.clock() - now) * 1000,
            len(item.joined),
        )
        return processed

    def _start_run(self, item: WorkItem, now: float) -> int | None:
        """Queue a run when a step runbook matches the item's incident; the events processed, or
        None when no step runbook matches (the single decision of today follows)."""
        if not self.step_runbooks or item.incident_id is None:
            return None
        latest = item.events[-1]
        labels = {"type": latest.type, "service": latest.service, "node_id": item.node_id}
        facts = IncidentFacts(
            incident_id=item.incident_id,
            severity=latest.severity.value,
            event_type=latest.type,
            service=latest.service,
            node_id=item.node_id,
            labels=labels,
        )
        runbook = first_step_runbook(self.step_runbooks, facts)
        if runbook is None:
            return None
        try:
            run_id = self.queue.start_run(item, runbook, facts, now, self.actor)
        except IncidentDecidedError:
            return self._join(replace(item, events=(), joined=item.joined + item.events))
        self.queue.complete(item, self.clock(), None, self.actor, f"run:{runbook.name}")
        processed = len(item.events) + len(item.joined)
        self.handled += processed
        logger.info("incident %s of %s: runbook %r queued as run %s", item.incident_id, redact(item.node_id),
                    runbook.name, run_id)  # fmt: skip
        return processed

    def _join(self, item: WorkItem) -> int:
        """Mark events whose incident already has a decision processed, deciding nothing."""
        self.queue.complete(item, self.clock(), None, self.actor, "joined")
        self.handled += len(item.joined)
        logger.info(
            "%d event(s) of %s joined incidents already decided: %s",
            len(item.joined),
            redact(item.node_id),
            ", ".join(sorted({e.incident_id or "-" for e in item.joined})),
        )
        return len(item.joined)

    def _send(self, item: WorkItem, command_id: str, *, resend: bool = False) -> ActionResult:
        self.queue.renew(item, self.clock(), self.config.lease_s)
        url = item.webhook_url
        command = self.queue.mark_sent(item, command_id, self.clock(), self.actor, url)
        result = self.dispatcher.send(url, item.webhook_secret, command)
        if resend and result.http_status == 401 and result.code == "replay":
            # The receiver already had this command id from the responder that stopped mid-way: it ran
            # (at most) once there, and its result was lost with that responder.
            result = ActionResult(
                status="error",
                output="delivered earlier by a responder that stopped before recording the result; "
                "the receiver refused the re-send as a replay, so the action did not run twice",
                http_status=401,
                attempts=result.attempts,
                code=result.code,
            )
        self.queue.record_result(item, command_id, result, self.clock(), self.actor)
        return result

    # -- loop --------------------------------------------------------------------------------------

    def drain(self) -> int:
        """Handle every claimable work item now; return how many events were handled."""
        count = 0
        while True:
            item = self.queue.claim_next(self.worker, self.config.lease_s, self.clock())
            if item is None:
                if self.executor is not None:
                    count += self.executor.drain()
                return count
            try:
                count += self.handle(item)
            except LeaseLostError:
                logger.warning("lost the lease on %s; another responder took it over", redact(item.node_id))

    def run(self, stop: threading.Event) -> None:
        logger.info("responder %s started", self.worker)
        while not stop.is_set():
            try:
                self.drain()
                now = self.clock()
                timeout = self.config.sweep_interval_s
                next_end = self.queue.next_due(now)
                if self.executor is not None:
                    # alert incidents (opened by a server's evaluator) and runs queued by a server's
                    # scheduler are found by polling: nothing wakes this process for them
                    timeout = min(timeout, self.executor.poll_s)
                    run_due = self.executor.next_due(now)
                    if run_due is not None:
                        next_end = run_due if next_end is None else min(next_end, run_due)
                if next_end is not None:
                    timeout = min(timeout, max(0.01, next_end - now + 0.01))
            except Exception:
                logger.exception("responder step failed; retrying in 1 s")
                timeout = 1.0
            self.wakeup.wait(timeout)
        logger.info("responder %s stopped", self.worker)

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="responder", daemon=True)
        thread.start()
        return thread, stop
