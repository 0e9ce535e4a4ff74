"""The responder: claim → decide → act → record, woken by new events, swept as a fallback.

Why the decision is stored before the command is sent: if this process dies after sending, the next
claimant finds the recorded decision and re-sends the *same* command id, which the receiver refuses
as a replay instead of running the action twice. Nothing accepted is lost, nothing is done twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infragent.actions.webhook import WebhookDispatcher
from infragent.errors import LlmError
from infragent.model import ActionResult, Decision
from infragent.responder import policy, prompt
from infragent.responder.llm.base import LlmClient
from infragent.responder.runbooks import Runbook, first_match
from infragent.store.pull import PullQueue
from infragent.store.records import Claim
from infragent.store.sql import LeaseLostError, SqlStore
from infragent.store.wakeup import Wakeup

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
        store: SqlStore,
        dispatcher: WebhookDispatcher,
        *,
        runbooks: Sequence[Runbook],
        llm: LlmClient | None = None,
        config: ResponderConfig | None = None,
        wakeup: Wakeup | None = None,
        clock: Callable[[], float] = time.time,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.runbooks = list(runbooks)
        self.llm = llm
        self.config = config or ResponderConfig()
        self.wakeup = wakeup or Wakeup()
        self.clock = clock
        self.worker = worker or default_worker_id()
        self.actor = f"responder:{self.worker}"
        self.handled = 0

    def close(self) -> None:
        self.dispatcher.close()

    # -- decide ------------------------------------------------------------------------------------

    def decide(self, claim: Claim) -> Decision:
        """Runbook first, then the LLM if configured; the result is always checked against the allowlist."""
        allowed = {a.name: a for a in claim.agent.actions}
        latest = claim.events[-1]
        runbook = first_match(self.runbooks, latest)
        if runbook is not None:
            return policy.check_allowed(runbook.decide(latest), allowed)
        if self.llm is None:
            return policy.escalate(
                "policy", f"no runbook matches event type {latest.type!r} and no LLM is configured"
            )
        user = prompt.build_user_prompt(claim.agent.node_id, claim.events, allowed)
        audited_prompt = prompt.redact(f"[system]\n{prompt.SYSTEM}\n[user]\n{user}")
        try:
            raw = self.llm.complete_json(prompt.SYSTEM, user, policy.decision_schema(allowed))
        except LlmError as exc:
            return policy.escalate("llm", f"LLM call failed: {exc}", prompt=audited_prompt)
        return policy.parse_llm_answer(raw, allowed, prompt=audited_prompt, answer=prompt.redact(raw))

    # -- act ---------------------------------------------------------------------------------------

    def handle(self, claim: Claim) -> None:
        now = self.clock()
        prior = claim.prior
        if prior is not None and prior.command_id is not None and prior.command_status in ("queued", "sent"):
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
            decision = self.decide(claim)
            _, command_id = self.store.record_decision(claim, decision, self.clock(), self.actor)
        cooldown_until = None
        outcome = decision.action
        if command_id is not None and claim.agent.command_mode == "pull":
            # The agent fetches it on its next poll and reports the result itself.
            PullQueue(self.store).queue(claim, command_id, self.clock(), self.actor)
            cooldown_until = self.clock() + self.config.cooldown_s
            outcome = f"{decision.action}:queued"
        elif command_id is not None:
            result = self._send(claim, decision, command_id, resend=prior is not None)
            cooldown_until = self.clock() + self.config.cooldown_s
            outcome = f"{decision.action}:{result.status}"
        self.store.complete(claim, self.clock(), cooldown_until, self.actor, outcome)
        self.handled += len(claim.events)
        logger.info(
            "handled %d event(s) of %s: %s (%s) in %.0f ms",
            len(claim.events),
            claim.agent.node_id,
            outcome,
            decision.rationale,
            (self.clock() - now) * 1000,
        )

    def _send(
        self, claim: Claim, decision: Decision, command_id: str, *, resend: bool = False
    ) -> ActionResult:
        self.store.renew(claim, self.clock(), self.config.lease_s)
        url = claim.client.webhook_url
        self.store.mark_command_sent(claim, command_id, self.clock(), self.actor, url)
        payload = {
            "command_id": command_id,
            "action": decision.action,
            "target": decision.target,
            "params": decision.params,
            "event_ids": claim.event_ids,
            "reason": decision.rationale,
            "issued_at": self.clock(),
        }
        result = self.dispatcher.send(url, claim.client.webhook_secret, command_id, payload)
        if resend and result.http_status == 401 and "replay" in result.output:
            # The receiver already had this command id from the responder that stopped mid-way: it ran
            # (at most) once there, and its result was lost with that responder.
            result = ActionResult(
                status="error",
                output="delivered earlier by a responder that stopped before recording the result; "
                "the receiver refused the re-send as a replay, so the action did not run twice",
                http_status=401,
                attempts=result.attempts,
            )
        self.store.record_result(claim, command_id, result, self.clock(), self.actor)
        return result

    # -- loop --------------------------------------------------------------------------------------

    def drain(self) -> int:
        """Handle every claimable agent now; return how many events were handled."""
        count = 0
        while True:
            claim = self.store.claim(self.worker, self.config.lease_s, self.clock())
            if claim is None:
                return count
            try:
                self.handle(claim)
                count += len(claim.events)
            except LeaseLostError:
                logger.warning("lost the lease on %s; another responder took it over", claim.agent.node_id)

    def run(self, stop: threading.Event) -> None:
        logger.info("responder %s started", self.worker)
        while not stop.is_set():
            try:
                self.drain()
                now = self.clock()
                timeout = self.config.sweep_interval_s
                next_end = self.store.next_cooldown_end(now)
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
