"""A run of a step runbook: its state, what the responder observed since the last decision, and the
instruction it is given next.

Why observations in and instructions out rather than callbacks: ``step_core.next_step`` stays a
pure function of (runbook, run, observation, now), so the loop can store the run, restart, and
carry on from what is stored; and every path is a table case. Each instruction that waits for an
answer names the step execution it belongs to (``seq``, counting from 1 in the run); an
observation answering it carries the same ``seq``, so a late answer to an earlier execution (a
``goto`` loop runs a step again) is recognised as stale and ignored.

What each instruction asks of the loop, and the observation that answers it:

==================  ===============================================  ==================================
instruction         the loop                                         answered by
==================  ===============================================  ==================================
``send_command``    mediates (guardrails), records, sends once       ``CommandResult``, ``Refused``,
                    under ``command.key``                            ``NeedsApproval``
``would_send``      records the command (dry run), sends nothing     (nothing: carry on with ``then``)
``start_wait``      nothing                                          ``Tick`` at ``until``
``evaluate_check``  evaluates the probe or the metric condition      ``StepDone``
``await_approval``  asks for approval (a notification)               ``ApprovalDecision``, ``Tick``
``await_recovery``  watches the incident's alert and check           ``AlertResolved``, ``CheckUp``, ``Tick``
``notify``          enqueues the message to the incident's routes    ``StepDone``
``ask_llm``         asks the LLM (bounded, redacted context)         ``LlmProposal``
``escalate``        escalates the incident with ``summary``          (the run has ended: FAILED)
``complete``        resolves the incident if ``verified``            (the run has ended: COMPLETED)
``fail``            escalates with ``reason``: the run broke         (the run has ended: FAILED)
``cancelled``       withdraws a pending approval request             (the run has ended: CANCELLED)
``idle``            nothing; call again at ``until`` with ``Tick``     anything
==================  ===============================================  ==================================

Every waiting instruction has a deadline (``until``, ``deadline``, ``expires_at``): the loop calls
``next_step`` with ``Tick`` then, and the core decides what the passing of time means.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from infragent.model import Decision, ResultStatus
from infragent.responder.steps import Check, IncidentFacts, Receiver, SignalName, StepKind


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED: Final = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
#: How a step execution ended. ``would_send``: a dry run recorded the command instead of sending it;
#: ``refused``: the guardrails refused the command; ``rejected``/``expired``: its approval.
StepOutcome = Literal["ok", "failed", "timeout", "rejected", "expired", "refused", "would_send", "cancelled"]
#: How a run ended: ``escalated`` by design (a step, a failure path, a guard), ``failed`` when the run
#: itself broke (its runbook changed under it), ``cancelled`` by a person.
RunOutcome = Literal["completed", "escalated", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Command:
    """A command decided by an act step or an LLM proposal. ``key`` (run id and execution number)
    is the same however often it is sent, so a receiver refuses a second run as a replay."""

    key: str
    action: str
    target: str | None
    params: dict[str, str]
    source: Literal["runbook", "llm"] = "runbook"
    on: Receiver | None = None
    approved_by: str | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    step_id: str
    seq: int
    kind: StepKind
    outcome: StepOutcome
    started_at: float
    ended_at: float
    detail: str = ""
    command: Command | None = None


# -- what happened since the last call (observations) --------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Begin a queued run; ``dry_run`` (the tenant's shadow mode) adds to the runbook's own."""

    dry_run: bool = False
    kind: Literal["start"] = "start"


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing happened but time passed: deadlines (a wait's end, a timeout, an expiry) are due."""

    kind: Literal["tick"] = "tick"


@dataclass(frozen=True, slots=True)
class StepDone:
    """The result of a check, a notification or anything else the loop carried out for ``seq``."""

    seq: int
    outcome: Literal["ok", "failed", "timeout"]
    detail: str = ""
    kind: Literal["step_done"] = "step_done"


@dataclass(frozen=True, slots=True)
class CommandResult:
    seq: int
    status: ResultStatus
    output: str = ""
    kind: Literal["command_result"] = "command_result"


@dataclass(frozen=True, slots=True)
class Refused:
    """The guardrails refused the command of ``seq`` (budget, breaker, kill switch): escalate."""

    seq: int
    reason: str
    kind: Literal["refused"] = "refused"


@dataclass(frozen=True, slots=True)
class NeedsApproval:
    """The guardrails require a person's yes for the command of ``seq`` (per action, say)."""

    seq: int
    reason: str = ""
    kind: Literal["needs_approval"] = "needs_approval"


@dataclass(frozen=True, slots=True)
class AlertResolved:
    kind: Literal["alert_resolved"] = "alert_resolved"


@dataclass(frozen=True, slots=True)
class CheckUp:
    kind: Literal["check_up"] = "check_up"


@dataclass(frozen=True, slots=True)
class SignalDown:
    """The recovered signal failed again (the alert fires, the check is down): not recovered."""

    kind: Literal["signal_down"] = "signal_down"


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    seq: int
    decision: Literal["approved", "rejected", "expired"]
    by: str = ""
    kind: Literal["approval"] = "approval"


@dataclass(frozen=True, slots=True)
class LlmProposal:
    """The LLM's answer for the ask_llm step ``seq``, already validated against the allowlist
    (``policy.parse_llm_answer``: anything invalid is an ``escalate`` decision)."""

    seq: int
    decision: Decision
    kind: Literal["llm_proposal"] = "llm_proposal"


@dataclass(frozen=True, slots=True)
class Cancel:
    by: str
    reason: str = ""
    kind: Literal["cancel"] = "cancel"


Observation = (
    Start
    | Tick
    | StepDone
    | CommandResult
    | Refused
    | NeedsApproval
    | AlertResolved
    | CheckUp
    | SignalDown
    | ApprovalDecision
    | LlmProposal
    | Cancel
)


# -- what the loop must do next (instructions) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendCommand:
    step_id: str
    seq: int
    command: Command
    deadline: float
    kind: Literal["send_command"] = "send_command"


@dataclass(frozen=True, slots=True)
class WouldSend:
    """Dry run: ``command`` is what would have been sent; the run went on to ``then``."""

    step_id: str
    seq: int
    command: Command
    then: Instruction
    kind: Literal["would_send"] = "would_send"


@dataclass(frozen=True, slots=True)
class StartWait:
    step_id: str
    seq: int
    until: float
    kind: Literal["start_wait"] = "start_wait"


@dataclass(frozen=True, slots=True)
class EvaluateCheck:
    step_id: str
    seq: int
    check: Check
    deadline: float
    kind: Literal["evaluate_check"] = "evaluate_check"


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    step_id: str
    seq: int
    command: Command
    expires_at: float
    reason: str = ""
    kind: Literal["await_approval"] = "await_approval"


@dataclass(frozen=True, slots=True)
class AwaitRecovery:
    step_id: str
    seq: int
    signal: SignalName
    deadline: float
    kind: Literal["await_recovery"] = "await_recovery"


@dataclass(frozen=True, slots=True)
class SendNotification:
    step_id: str
    seq: int
    message: str
    deadline: float
    kind: Literal["notify"] = "notify"


@dataclass(frozen=True, slots=True)
class QueryLlm:
    step_id: str
    seq: int
    question: str
    deadline: float
    kind: Literal["ask_llm"] = "ask_llm"


@dataclass(frozen=True, slots=True)
class EscalateIncident:
    summary: str
    kind: Literal["escalate"] = "escalate"


@dataclass(frozen=True, slots=True)
class Complete:
    """``verified``: a verify step of this run saw the signal recover, so the incident may be
    resolved by the responder; without it the run is complete but the incident stays as it is."""

    summary: str
    verified: bool
    kind: Literal["complete"] = "complete"


@dataclass(frozen=True, slots=True)
class Fail:
    reason: str
    kind: Literal["fail"] = "fail"


@dataclass(frozen=True, slots=True)
class Cancelled:
    by: str
    reason: str
    kind: Literal["cancelled"] = "cancelled"


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to do now; ``until`` None: nothing is due (the run waits for news, or has ended)."""

    until: float | None
    reason: str = ""
    kind: Literal["idle"] = "idle"


Instruction = (
    SendCommand
    | WouldSend
    | StartWait
    | EvaluateCheck
    | AwaitApproval
    | AwaitRecovery
    | SendNotification
    | QueryLlm
    | EscalateIncident
    | Complete
    | Fail
    | Cancelled
    | Idle
)


# -- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """The step execution in progress: the instruction the loop was given for it (given again by
    ``step_core.resume`` after a restart, with the same ``seq`` and command key), its deadline,
    and the command it decided, if any."""

    step_id: str
    step_kind: StepKind
    seq: int
    started_at: float
    instruction: Instruction
    deadline: float | None = None
    command: Command | None = None


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    runbook: str
    facts: IncidentFacts
    created_at: float
    status: RunStatus = RunStatus.QUEUED
    dry_run: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    cursor: Cursor | None = None
    #: every step execution that ended, in order (a step run twice by a goto is here twice)
    results: tuple[StepResult, ...] = ()
    #: step executions begun (the loop guard counts these)
    executions: int = 0
    #: the signals seen recovered and not failed again since ("alert", "check")
    recovered: tuple[str, ...] = ()
    verified_at: float | None = None
    outcome: RunOutcome | None = None
    summary: str = ""

    @property
    def ended(self) -> bool:
        return self.status in ENDED


#: At most this many step executions are named in a summary: the first few and the last ones.
SUMMARY_STEPS: Final = 12


def summarize(run: Run) -> str:
    """What the run did, one clause per step execution: the readable part of an escalation. A long
    ``goto`` loop is cut in the middle, so an escalation stays readable (and small)."""
    if not run.results:
        return "no step ran"
    parts = []
    results = list(run.results)
    skipped = len(results) - SUMMARY_STEPS
    if skipped > 0:
        results = results[:3] + results[-(SUMMARY_STEPS - 3) :]
    for i, r in enumerate(results):
        if skipped > 0 and i == 3:
            parts.append(f"… {skipped} more …")
        what = f"{r.step_id} ({r.kind}"
        if r.command is not None:
            target = f" {r.command.target}" if r.command.target else ""
            what += f" {r.command.action}{target}"
        parts.append(f"{what}): {r.outcome}" + (f" ({r.detail})" if r.detail else ""))
    return "; ".join(parts)
