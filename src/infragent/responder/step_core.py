"""The runbook state machine: ``next_step(runbook, run, observation, now) -> (run, instruction)``.

Pure: no I/O, no clock, no randomness; ``now`` comes in, the command key is the run's id and the
execution number. The loop (next) stores the run after every call and carries out the instruction;
it calls again with what it observed, or with ``Tick`` when an instruction's deadline is due.

The rules, each a case in ``tests/unit/responder/step_cases/``:

- A queued run starts on ``Start``; anything else waits. ``Cancel`` ends any run that has not
  ended (CANCELLED); an ended run ignores everything (``Idle``).
- A step that succeeds follows its ``on_success``: ``next`` (the next step in order; after the
  last, the run is COMPLETED), ``complete``, or ``goto <id>``. ``Complete.verified`` says whether a
  verify step saw the signal recover (only then may the responder resolve the incident). A step
  that fails (failed, timeout) follows its ``on_failure``: ``next`` (after the last step:
  escalate), ``escalate``, or ``goto <id>``.
- The loop guard: a run begins at most ``max_executions`` step executions (at most
  ``MAX_EXECUTIONS_CAP``); the next would-be one escalates instead, so a ``goto`` loop ends.
- ``act``: target and params are filled from the incident (a field without a value fails the step:
  nothing is sent to an empty name). With approval required (the step's, else the runbook's; an
  LLM's proposal unless its step says auto) the run is WAITING_APPROVAL until ``expires_at``
  (the runbook's ``approval_expiry_s``, 15 min by default). Approved: the command is sent. Rejected,
  or expired (by the loop's word or by the clock: an approval arriving after the expiry is too
  late): the run escalates, nothing is sent, whatever ``on_failure`` says: a person said no or
  was not there, and the runbook's next automatic step must not stand in for them. The guardrails
  may ask for an approval (``NeedsApproval``) or refuse (``Refused``: escalate, never retry).
- Dry run (the runbook's ``dry_run``, or the tenant's shadow mode given at ``Start``): a command is
  recorded as ``would_send`` and treated as done; the instruction is ``WouldSend`` wrapping what
  comes next. Only commands are held back: checks, waits, verifies and notifications run as usual,
  so a shadow run shows whether the runbook would have been needed, and an incident that a shadow
  run does not fix still reaches a person.
- ``verify`` succeeds at once if the signal recovered since the run started (and did not fail
  again), else when it recovers before the step's timeout. For verify and approvals the deadline
  comes first (a recovery or a yes reported after it is late); for the answer of a command, a
  check, a notification or the LLM the answer comes first (it says what really happened).
- An observation for another execution (its ``seq`` is not the step in progress) changes nothing.
- The run breaks (FAILED, outcome ``failed``, instruction ``Fail``) only when the runbook changed
  under it: the step in progress or a ``goto`` target is gone.
"""

from __future__ import annotations

from dataclasses import replace

from infragent.model import ESCALATE, NO_ACTION
from infragent.responder.step_run import (
    AlertResolved,
    ApprovalDecision,
    AwaitApproval,
    AwaitRecovery,
    Cancel,
    Cancelled,
    CheckUp,
    Command,
    CommandResult,
    Complete,
    Cursor,
    EscalateIncident,
    EvaluateCheck,
    Fail,
    Idle,
    Instruction,
    LlmProposal,
    NeedsApproval,
    Observation,
    QueryLlm,
    Refused,
    Run,
    RunOutcome,
    RunStatus,
    SendCommand,
    SendNotification,
    SignalDown,
    Start,
    StartWait,
    StepDone,
    StepOutcome,
    StepResult,
    WouldSend,
    summarize,  # re-exported: the summary of an escalation
)
from infragent.responder.steps import (
    MAX_EXECUTIONS_CAP,
    Act,
    AskLlm,
    Check,
    Escalate,
    IncidentFacts,
    Notify,
    Step,
    StepRunbook,
    Verify,
    Wait,
    render,
)

Result = tuple[Run, Instruction]


def new_run(run_id: str, runbook: StepRunbook, facts: IncidentFacts, now: float) -> Run:
    """A QUEUED run of ``runbook`` for the incident ``facts``; ``Start`` begins it."""
    return Run(id=run_id, runbook=runbook.name, facts=facts, created_at=now, dry_run=runbook.dry_run)


def resume(run: Run) -> Instruction:
    """The instruction the run waits on, as it was given (same ``seq``, same command key): what a
    responder that took the run over after a crash carries on with."""
    if run.ended:
        return Idle(None, f"the run has ended ({run.status})")
    if run.cursor is None:
        return Idle(None, "the run is queued: waiting for Start")
    return run.cursor.instruction


def next_step(runbook: StepRunbook, run: Run, observation: Observation, now: float) -> Result:
    """The run after ``observation`` at ``now``, and what the loop must do next."""
    if run.ended:
        return run, Idle(None, f"the run has ended ({run.status})")
    if isinstance(observation, Cancel):
        return _cancel(run, observation, now)
    if run.status is RunStatus.QUEUED:
        if not isinstance(observation, Start):
            return run, Idle(None, "the run is queued: waiting for Start")
        run = replace(
            run, status=RunStatus.RUNNING, started_at=now, dry_run=run.dry_run or observation.dry_run
        )
        if not runbook.steps:
            return _complete(run, now)
        return _begin(runbook, run, runbook.steps[0], now)
    run = _note_signal(run, observation)
    cursor = run.cursor
    if cursor is None:  # not a state next_step leaves a run in: fail closed
        return _fail(run, now, "the run is running but no step is in progress")
    index = runbook.index(cursor.step_id)
    if index is None:
        return _fail(run, now, f"step {cursor.step_id!r} is no longer in runbook {runbook.name!r}")
    return _advance(runbook, run, runbook.steps[index], cursor, observation, now)


# -- the step in progress -------------------------------------------------------------------------


def _advance(
    runbook: StepRunbook, run: Run, step: Step, cursor: Cursor, obs: Observation, now: float
) -> Result:
    """The current step after ``obs``: finished one way or another, or still waiting (Idle)."""
    seq, wait = cursor.seq, cursor.instruction
    answers = getattr(obs, "seq", None) == seq
    if isinstance(wait, StartWait):
        if now >= wait.until:
            return _done(runbook, run, step, "ok", now)
    elif isinstance(wait, AwaitRecovery):
        if now >= wait.deadline:
            return _done(runbook, run, step, "timeout", now, f"no recovery within {step.timeout:g} s")
        if _recovered(run, wait.signal):
            return _done(runbook, replace(run, verified_at=now), step, "ok", now)
    elif isinstance(wait, AwaitApproval):
        expired = now >= wait.expires_at or (
            answers and isinstance(obs, ApprovalDecision) and obs.decision == "expired"
        )
        if expired:
            why = f"the approval of {_what(wait.command)} expired unanswered; nothing was run"
            return _escalate_step(run, "expired", now, why, wait.command)
        if answers and isinstance(obs, Refused):
            return _escalate_step(run, "refused", now, obs.reason, wait.command)
        if answers and isinstance(obs, ApprovalDecision):
            if obs.decision == "rejected":
                who = f" by {obs.by}" if obs.by else ""
                why = f"{_what(wait.command)} was rejected{who}; nothing was run"
                return _escalate_step(run, "rejected", now, why, wait.command)
            approved = replace(wait.command, approved_by=obs.by or "?")
            return _send(runbook, run, step, cursor, approved, now)
    elif isinstance(wait, SendCommand):
        if answers and isinstance(obs, CommandResult):
            ok = obs.status == "ok"
            detail = obs.output[:200] if ok else f"{obs.status}: {obs.output[:200]}".rstrip(": ")
            return _done(runbook, run, step, "ok" if ok else "failed", now, detail, wait.command)
        if answers and isinstance(obs, Refused):
            return _escalate_step(run, "refused", now, obs.reason, wait.command)
        if answers and isinstance(obs, NeedsApproval):
            if wait.command.approved_by is not None:
                why = f"the guardrails asked again to approve {_what(wait.command)}, already approved"
                return _escalate_step(run, "refused", now, why, wait.command)
            return _await_approval(runbook, run, step, cursor, wait.command, now, obs.reason)
        if now >= wait.deadline:
            why = f"no answer within {step.timeout:g} s"
            return _done(runbook, run, step, "timeout", now, why, wait.command)
    elif isinstance(wait, EvaluateCheck | SendNotification):
        if answers and isinstance(obs, StepDone):
            return _done(runbook, run, step, obs.outcome, now, obs.detail)
        if now >= wait.deadline:
            return _done(runbook, run, step, "timeout", now, f"no result within {step.timeout:g} s")
    elif isinstance(wait, QueryLlm):
        if answers and isinstance(obs, LlmProposal):
            return _proposal(runbook, run, step, cursor, obs, now)
        if now >= wait.deadline:
            return _done(runbook, run, step, "timeout", now, f"no answer within {step.timeout:g} s")
    else:
        return _fail(run, now, f"step {step.id!r} waits on nothing ({wait.kind})")
    return run, Idle(cursor.deadline, f"step {step.id!r} ({step.kind}) is in progress")


def _proposal(
    runbook: StepRunbook, run: Run, step: Step, cursor: Cursor, obs: LlmProposal, now: float
) -> Result:
    d = obs.decision
    if d.action == ESCALATE:
        return _done(runbook, run, step, "failed", now, f"the LLM proposes to escalate: {d.rationale[:200]}")
    if d.action == NO_ACTION:
        return _done(runbook, run, step, "ok", now, f"the LLM proposes no action: {d.rationale[:200]}")
    command = Command(f"{run.id}:{cursor.seq}", d.action, d.target, dict(d.params), source="llm")
    body = step.body
    if isinstance(body, AskLlm) and body.approval == "auto":
        return _send(runbook, run, step, cursor, command, now)
    return _await_approval(runbook, run, step, cursor, command, now, "an LLM-proposed action")


# -- beginning a step ---------------------------------------------------------------------------


def _begin(runbook: StepRunbook, run: Run, step: Step, now: float) -> Result:
    limit = min(runbook.max_executions, MAX_EXECUTIONS_CAP)
    if run.executions >= limit:
        why = f"loop guard: {run.executions} step executions, the run's limit; {step.id!r} is not begun"
        return _escalate(run, now, why)
    seq = run.executions + 1
    run = replace(run, executions=seq)
    body, deadline = step.body, now + step.timeout
    if isinstance(body, Check):
        return _wait_on(run, step, seq, now, EvaluateCheck(step.id, seq, body, deadline))
    if isinstance(body, Wait):
        return _wait_on(run, step, seq, now, StartWait(step.id, seq, now + body.seconds))
    if isinstance(body, Verify):
        if _recovered(run, body.signal):
            run = replace(run, cursor=_cursor(step, seq, now, Idle(None)), verified_at=now)
            return _done(runbook, run, step, "ok", now, "recovered before the step began")
        return _wait_on(run, step, seq, now, AwaitRecovery(step.id, seq, body.signal, deadline))
    if isinstance(body, Notify):
        message = render(body.message, run.facts)
        if message is None:
            run = replace(run, cursor=_cursor(step, seq, now, Idle(None)))
            return _done(
                runbook, run, step, "failed", now, "cannot fill the message from this incident's fields"
            )
        return _wait_on(run, step, seq, now, SendNotification(step.id, seq, message, deadline))
    if isinstance(body, AskLlm):
        question = render(body.question, run.facts) or body.question
        return _wait_on(run, step, seq, now, QueryLlm(step.id, seq, question, deadline))
    if isinstance(body, Escalate):
        summary = render(body.summary, run.facts) or body.summary or f"runbook step {step.id!r}"
        run = replace(run, cursor=_cursor(step, seq, now, Idle(None)))
        return _escalate_step(run, "ok", now, summary)
    return _begin_act(runbook, run, step, body, seq, now)


def _begin_act(runbook: StepRunbook, run: Run, step: Step, body: Act, seq: int, now: float) -> Result:
    cursor = _cursor(step, seq, now, Idle(None))
    run = replace(run, cursor=cursor)
    target = render(body.target, run.facts) if body.target is not None else None
    params = {name: render(value, run.facts) for name, value in body.params.items()}
    missing = [name for name, value in params.items() if value is None]
    if (body.target is not None and not target) or missing:
        what = "the target" if body.target is not None and not target else f"params {', '.join(missing)}"
        why = f"cannot fill {what} from this incident's fields: nothing is sent"
        return _done(runbook, run, step, "failed", now, why)
    filled = {name: value for name, value in params.items() if value is not None}
    command = Command(f"{run.id}:{seq}", body.action, target, filled, source="runbook", on=body.on)
    if (body.approval or runbook.approval) == "required":
        return _await_approval(runbook, run, step, cursor, command, now, f"step {step.id!r} needs approval")
    return _send(runbook, run, step, cursor, command, now)


def _send(runbook: StepRunbook, run: Run, step: Step, cursor: Cursor, command: Command, now: float) -> Result:
    """The command goes out, or in a dry run is recorded as ``would_send`` and the run goes on."""
    if run.dry_run:
        run = replace(run, status=RunStatus.RUNNING)
        run, then = _done(runbook, run, step, "would_send", now, "dry run: nothing was sent", command)
        return run, WouldSend(step.id, cursor.seq, command, then)
    send = SendCommand(step.id, cursor.seq, command, now + step.timeout)
    moved = replace(cursor, instruction=send, deadline=send.deadline, command=command)
    return replace(run, status=RunStatus.RUNNING, cursor=moved), send


def _await_approval(
    runbook: StepRunbook, run: Run, step: Step, cursor: Cursor, command: Command, now: float, reason: str
) -> Result:
    ask = AwaitApproval(step.id, cursor.seq, command, now + runbook.approval_expiry_s, reason)
    moved = replace(cursor, instruction=ask, deadline=ask.expires_at, command=command)
    return replace(run, status=RunStatus.WAITING_APPROVAL, cursor=moved), ask


def _cursor(step: Step, seq: int, now: float, instruction: Instruction) -> Cursor:
    deadline: float | None = getattr(instruction, "deadline", getattr(instruction, "until", None))
    return Cursor(step.id, step.kind, seq, now, instruction, deadline)


def _wait_on(run: Run, step: Step, seq: int, now: float, instruction: Instruction) -> Result:
    return replace(run, status=RunStatus.RUNNING, cursor=_cursor(step, seq, now, instruction)), instruction


# -- ending a step, ending the run ----------------------------------------------------------------


def _record(run: Run, outcome: StepOutcome, now: float, detail: str, command: Command | None) -> Run:
    cursor = run.cursor
    assert cursor is not None
    result = StepResult(
        cursor.step_id, cursor.seq, cursor.step_kind, outcome, cursor.started_at, now, detail, command
    )
    return replace(run, cursor=None, results=(*run.results, result))


def _done(
    runbook: StepRunbook,
    run: Run,
    step: Step,
    outcome: StepOutcome,
    now: float,
    detail: str = "",
    command: Command | None = None,
) -> Result:
    """Record the step's outcome and go where it leads: the next step, ``on_failure``, the end."""
    run = _record(run, outcome, now, detail, command)
    index = runbook.index(step.id)
    assert index is not None
    following = runbook.steps[index + 1] if index + 1 < len(runbook.steps) else None
    if outcome in ("ok", "would_send"):
        then = step.on_success
        if then.then == "goto":
            return _goto(runbook, run, then.goto, now, f"step {step.id!r} ({step.kind}) {outcome}")
        if then.then == "complete" or following is None:
            return _complete(run, now)
        return _begin(runbook, run, following, now)
    why = f"step {step.id!r} ({step.kind}) {outcome}" + (f": {detail}" if detail else "")
    rule = step.on_failure
    if rule.then == "next":
        if following is None:
            return _escalate(run, now, f"{why}, and no step follows it")
        return _begin(runbook, run, following, now)
    if rule.then == "goto":
        return _goto(runbook, run, rule.goto, now, why)
    return _escalate(run, now, why)


def _goto(runbook: StepRunbook, run: Run, step_id: str | None, now: float, why: str) -> Result:
    target = runbook.index(step_id or "")
    if target is None:
        return _fail(run, now, f"{why}; its goto step {step_id!r} is not in runbook {runbook.name!r}")
    return _begin(runbook, run, runbook.steps[target], now)


def _escalate_step(
    run: Run, outcome: StepOutcome, now: float, why: str, command: Command | None = None
) -> Result:
    """End the step and escalate whatever its ``on_failure`` says (an escalate step, a refusal,
    a rejected or expired approval)."""
    return _escalate(_record(run, outcome, now, why, command), now, why)


def _end(run: Run, now: float, status: RunStatus, outcome: RunOutcome, summary: str) -> Run:
    return replace(run, status=status, outcome=outcome, ended_at=now, cursor=None, summary=summary)


def _escalate(run: Run, now: float, why: str) -> Result:
    summary = f"{why}. Runbook {run.runbook!r}: {summarize(run)}"
    return _end(run, now, RunStatus.FAILED, "escalated", summary), EscalateIncident(summary)


def _complete(run: Run, now: float) -> Result:
    verified = run.verified_at is not None
    summary = f"runbook {run.runbook!r} completed{' and verified' if verified else ''}: {summarize(run)}"
    return _end(run, now, RunStatus.COMPLETED, "completed", summary), Complete(summary, verified)


def _fail(run: Run, now: float, why: str) -> Result:
    summary = f"{why}. Runbook {run.runbook!r}: {summarize(run)}"
    return _end(run, now, RunStatus.FAILED, "failed", summary), Fail(summary)


def _cancel(run: Run, obs: Cancel, now: float) -> Result:
    if run.cursor is not None:
        run = _record(run, "cancelled", now, f"cancelled by {obs.by}", run.cursor.command)
    why = f"cancelled by {obs.by}" + (f": {obs.reason}" if obs.reason else "")
    return _end(run, now, RunStatus.CANCELLED, "cancelled", why), Cancelled(obs.by, obs.reason)


def _note_signal(run: Run, obs: Observation) -> Run:
    if isinstance(obs, AlertResolved | CheckUp):
        name = "alert" if isinstance(obs, AlertResolved) else "check"
        return run if name in run.recovered else replace(run, recovered=(*run.recovered, name))
    if isinstance(obs, SignalDown):
        return replace(run, recovered=())
    return run


def _recovered(run: Run, signal: str) -> bool:
    return bool(run.recovered) if signal == "any" else signal in run.recovered


def _what(command: Command) -> str:
    return f"{command.action} {command.target}" if command.target else command.action
