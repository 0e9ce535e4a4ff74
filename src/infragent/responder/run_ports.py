"""What the runbook executor needs from the outside world: the store of runs, as a Protocol.

Why each method is one transaction that carries the run's new state *and* its effect on the world
(an approval request, a recorded command, an incident escalated or resolved): a responder that
dies between the two would either lose the effect (an escalation nobody sees) or repeat it. Only
three effects leave the database and so happen after the save: sending a command (made safe to
repeat by its stable id: a receiver refuses a replay), asking the LLM, and reading a check.

``responder/executor.py`` drives the runs through these; ``store/run_store.py`` implements them;
a write whose lease was lost raises ``LeaseLostError`` (``responder/ports.py``) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from infragent.model import ActionResult, ActionSpec
from infragent.responder.guardrails import GuardContext, Proposal
from infragent.responder.step_run import Command, Instruction, Observation, Run
from infragent.responder.steps import Check, StepRunbook
from infragent.wire.commands import Command as WireCommand


@dataclass(frozen=True, slots=True)
class RunRow:
    """A claimed run: its row's identity and fence, and the core's ``Run``."""

    id: str
    client_id: str
    incident_id: str | None
    schedule_id: str | None
    node_id: str | None
    runbook: str
    run: Run
    lease_epoch: int
    lease_owner: str | None
    cancel_requested_by: str | None = None
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where a run's commands go: the agent of the run's host, as registered."""

    node_id: str
    command_mode: str
    webhook_url: str
    webhook_secret: str
    actions: tuple[ActionSpec, ...]


@dataclass(frozen=True, slots=True)
class Sending:
    """A command recorded (decision + command rows + action history) and ready to go out:
    ``wire`` is the signed body's content for a push; None when the agent pulls it or when it
    was finished before (a resume after the result was stored)."""

    command_id: str
    wire: WireCommand | None
    status: str


class RunStore(Protocol):
    def start_for_alerts(self, runbooks: Sequence[StepRunbook], now: float, actor: str) -> int:
        """Queue a run for each active alert incident whose episode is undecided and which a
        runbook matches; how many were queued. (Event incidents are started by the responder.)"""
        ...

    def claim(self, worker: str, lease_s: float, now: float) -> list[RunRow]: ...

    def next_due(self, now: float) -> float | None: ...

    def observe(self, row: RunRow, now: float) -> list[Observation]:
        """What happened since: a cancel, the signal's state, an approval's answer, a pulled
        command's result. The executor adds ``Start``/``Tick`` itself."""
        ...

    def receiver(self, row: RunRow) -> Receiver | None: ...

    def guard(
        self, row: RunRow, proposal: Proposal, receiver: Receiver | None, now: float, key: str
    ) -> GuardContext:
        """Everything ``guardrails.mediate`` weighs, read for the run's tenant (the breaker
        re-evaluated and stored when it changes)."""
        ...

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
        """Store ``run`` and, in the same transaction, the effect of ``instruction``: a
        ``SendCommand`` recorded (``Sending``), an approval requested, a would-be command recorded,
        a notification, the incident escalated (``EscalateIncident``, ``Fail``) or resolved with its
        MTTR (``Complete`` verified)."""
        ...

    def release(self, row: RunRow, next_at: float) -> None:
        """Give the run's lease up until ``next_at`` (fenced like ``save``)."""
        ...

    def sent(self, row: RunRow, command_id: str, url: str, now: float, actor: str) -> WireCommand:
        """Mark a pushed command sent (before the POST) and return its body."""
        ...

    def record_result(
        self, row: RunRow, command_id: str, result: ActionResult, now: float, actor: str
    ) -> None: ...

    def evaluate_check(self, row: RunRow, check: Check, now: float) -> tuple[str, str]:
        """("ok" | "failed", why) for a check step: a probe's last state or a metric condition."""
        ...

    def llm_context(
        self, row: RunRow, question: str, receiver: Receiver | None, now: float
    ) -> tuple[str, str]:
        """(system, user) prompts for an ``ask_llm`` step: bounded and redacted."""
        ...


__all__ = ["Command", "Receiver", "RunRow", "RunStore", "Sending"]
