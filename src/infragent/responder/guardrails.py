"""Guardrails: every check between a proposed action and a command, in one function that fails closed.

Why one function (``mediate``): complete mediation means no path to a host skips a check. The loop
calls ``mediate`` right before it would send a command (again after an approval arrives: a yes
does not outrank a kill switch thrown since) and does what the ``Verdict`` says. Pure: no I/O, no
clock; the loop reads the inputs from the store (the automatic actions sent to the host, the
tenant's breaker state and settings, the kill switch, the approval recorded for this command).
Decisions are implemented here; enforcement in the loop lands next.

The order of checks (the first that decides wins):

1. **input**: a proposal and a context that are what they claim (a tenant's own context, finite
   times, string parameters, a known source); anything else escalates.
2. **passive**: ``none`` and ``escalate`` send nothing to a host: allowed even with everything
   else stopped, so an escalation still reaches a person when the kill switch is on.
3. **kill_switch** (global): deny. First of the stops: it must not depend on anything else.
4. **allowlist**: the action on the host's allowlist, each parameter declared and matching its
   pattern (``policy.check_allowed``, the same check the decision passed): else escalate.
5. **breaker** (per tenant, ``evaluate``): open → deny. Before the budget so that a fleet-wide
   outage yields the breaker's one escalation, not one budget escalation per host.
6. **budget** (per host + action): the window is full → escalate, with when the next is allowed.
7. **shadow** (per tenant, or per runbook: the tenant's list or the runbook's own ``dry_run``):
   shadow, naming what live mode would do (allow, or wait for approval). Before approval so that
   nobody is asked to approve a command that will not be sent; after the refusals so that the
   record is what live mode would have sent (in shadow mode the budget counts shadow actions too).
8. **approval** (``approval.needs_approval``): none on record → needs_approval; pending → keep
   waiting; rejected, expired, or a yes given for another command → escalate; approved → on.
9. **allow**.

An exception inside any check becomes an escalation naming it: never an allow.

Verdicts: ``deny`` refuses without a new escalation of its own (a person threw the kill switch;
the breaker escalated once when it opened); ``escalate`` refuses and hands the incident to a
person with the reason as its summary.

**The budget is a sliding window of actual actions**, not Monit's "N restarts within M cycles".
Monit's counter counts restarts over check cycles and, as its maintainers say (tildeslash/monit
issue 1073), does not reset when the service is fine: only a reload or unmonitor/monitor does, so
a counter from yesterday can trip today. Here each automatic action sent to a host counts for
exactly ``window_s`` after it was sent and then drops out on its own: "at most 3 in any 30
minutes", the same whatever the check interval, across server restarts (the history is stored),
and explainable ("the next is allowed at 10:31"). Health does not reset it either, on purpose: a
crash loop looks healthy for a moment after every restart, and a counter reset by health would
restart it forever. Only commands sent count: not refused, not shadow ones (except in shadow
mode, to simulate live mode), not a person's own commands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from infragent.errors import ConfigError
from infragent.model import ESCALATE, PASSIVE_ACTIONS, ActionSpec, Decision, DecisionSource
from infragent.responder.approval import Approval, ApprovalPolicy, StepApproval, needs_approval
from infragent.responder.breaker import BreakerConfig, BreakerState, breaker_change, evaluate
from infragent.responder.policy import check_allowed

__all__ = [
    "AUTOMATIC_SOURCES",
    "ActionRecord",
    "BreakerConfig",
    "BreakerState",
    "Budget",
    "GuardContext",
    "GuardSettings",
    "Proposal",
    "Verdict",
    "breaker_change",
    "evaluate",
    "mediate",
]

VerdictKind = Literal["allow", "needs_approval", "deny", "shadow", "escalate"]
Check = Literal[
    "input", "passive", "kill_switch", "allowlist", "breaker", "budget", "shadow", "approval", "all"
]
#: Who may propose an automatic action (a person's command is not mediated here).
AUTOMATIC_SOURCES: Final = ("runbook", "llm", "policy")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a proposal, which check said so (``check``) and why (``reason``).

    ``retry_at``: for a full budget, when a slot frees. ``would``: for shadow, what live mode would
    do (``allow`` or ``needs_approval``)."""

    kind: VerdictKind
    reason: str = ""
    check: Check = "all"
    retry_at: float | None = None
    would: VerdictKind | None = None

    @property
    def sends(self) -> bool:
        """Whether the command may be sent now: only an ``allow`` sends."""
        return self.kind == "allow"


def _escalate(check: Check, reason: str, retry_at: float | None = None) -> Verdict:
    return Verdict("escalate", reason, check, retry_at=retry_at)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action sent to a host (from the store): ``automatic`` ones count against the budget;
    ``shadow`` ones were only recorded (shadow mode) and count only in shadow mode."""

    host: str
    action: str
    at: float
    automatic: bool = True
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` automatic actions per host and action in any ``window_s`` (default 3 in
    30 minutes): a sliding window of the actions actually sent (see the module docstring)."""

    limit: int = 3
    window_s: float = 30 * 60.0

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ConfigError("budget.max_actions", "must be a whole number, 0 or more")
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigError("budget.window", "must be a positive number of seconds")

    def in_window(
        self, history: Sequence[ActionRecord], host: str, action: str, now: float, *, shadow: bool = False
    ) -> list[float]:
        """The times of the actions that count at ``now``, oldest first. An action counts until
        ``window_s`` after it; one stamped in the future (clock skew) counts too: skew never frees
        budget."""
        cutoff = now - self.window_s
        return sorted(
            r.at
            for r in history
            if r.host == host
            and r.action == action
            and r.automatic
            and (shadow or not r.shadow)
            and not r.at <= cutoff  # NaN counts: fail closed
        )

    def allow(
        self, history: Sequence[ActionRecord], host: str, action: str, now: float, *, shadow: bool = False
    ) -> Verdict:
        """``allow``, or ``escalate`` with the count, the window and ``retry_at``, when a slot frees."""
        times = self.in_window(history, host, action, now, shadow=shadow)
        if len(times) < self.limit:
            return Verdict(
                "allow", f"{len(times)} of {self.limit} {action!r} on {host} in the window", "budget"
            )
        oldest = times[len(times) - self.limit] if self.limit else now
        retry_at = oldest + self.window_s if math.isfinite(oldest) else None
        minutes = self.window_s / 60
        reason = (
            f"budget exhausted: {len(times)} automatic {action!r} on {host} in the last {minutes:g} min "
            f"(at most {self.limit}); a person must look at it"
        )
        return _escalate("budget", reason, retry_at=retry_at)


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """A tenant's guardrail settings (``guard_file.py`` reads them with line:column errors)."""

    budget: Budget = field(default_factory=Budget)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    #: the whole tenant in shadow mode: decide and record, send nothing
    shadow: bool = False
    #: runbooks in shadow mode (by name), the rest of the tenant live
    shadow_runbooks: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Proposal:
    """A command the responder is about to send: to ``host`` of ``tenant``, proposed by ``source``
    (a runbook's step, the LLM, the policy) in ``runbook`` at its step with approval ``step``."""

    tenant: str
    host: str
    action: str
    source: str
    target: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    runbook: str | None = None
    step: StepApproval | None = None
    #: the runbook declares itself a dry run (the step format's ``dry_run``)
    dry_run: bool = False

    @classmethod
    def of(
        cls,
        decision: Decision,
        tenant: str,
        host: str,
        *,
        runbook: str | None = None,
        step: StepApproval | None = None,
        dry_run: bool = False,
    ) -> Proposal:
        """The proposal of a responder ``Decision``."""
        params = dict(decision.params)
        return cls(
            tenant, host, decision.action, decision.source, decision.target, params, runbook, step, dry_run
        )


@dataclass(frozen=True, slots=True)
class GuardContext:
    """Everything ``mediate`` weighs besides the proposal, as read for the proposal's tenant."""

    tenant: str
    #: the host's allowlist: action name → its parameter patterns
    allowed: Mapping[str, ActionSpec]
    settings: GuardSettings = field(default_factory=GuardSettings)
    #: actions sent to the tenant's hosts, at least those of the budget's window
    history: Sequence[ActionRecord] = ()
    breaker: BreakerState = field(default_factory=BreakerState)
    kill_switch: bool = False
    #: the approval on record for this command, if one was requested
    approval: Approval | None = None
    #: the breaker opened at this very judgment: the refusal it causes is its one escalation
    breaker_opened_now: bool = False


def _input_problem(proposal: object, context: object, now: object) -> str | None:
    """What is wrong with the inputs (their types included: callers are typed, data is not)."""
    if not isinstance(proposal, Proposal) or not isinstance(context, GuardContext):
        return "the proposal or its context is not of the expected type"
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        return f"the time {now!r} is not a finite number"
    if not isinstance(proposal.tenant, str) or proposal.tenant != context.tenant:
        return "the context was read for another tenant"
    if not proposal.host or not isinstance(proposal.host, str):
        return "the proposal names no host"
    if not proposal.action or not isinstance(proposal.action, str):
        return "the proposal names no action"
    if proposal.source not in AUTOMATIC_SOURCES:
        return f"a proposal from {proposal.source!r} is not an automatic action"
    if not isinstance(proposal.params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in proposal.params.items()
    ):
        return "the parameters must map strings to strings"
    if not all(isinstance(r, ActionRecord) and math.isfinite(r.at) for r in context.history):
        return "the action history holds a record without a finite time"
    return None


def _describe(p: Proposal) -> str:
    params = " ".join(f"{k}={v}" for k, v in sorted(p.params.items()))
    return " ".join(x for x in (p.action, p.target or "", params) if x) + f" on {p.host}"


def _shadow_reason(proposal: Proposal, settings: GuardSettings) -> str | None:
    if settings.shadow:
        return f"tenant {proposal.tenant!r} is in shadow mode"
    if proposal.runbook is not None and proposal.runbook in settings.shadow_runbooks:
        return f"runbook {proposal.runbook!r} is in shadow mode"
    if proposal.dry_run:
        return f"runbook {proposal.runbook or '(unnamed)'!r} is a dry run"
    return None


def _approval(proposal: Proposal, context: GuardContext, why: str, now: float) -> Verdict | None:
    """The approval check for a proposal that needs one (``why``); None when it is approved."""
    approval = context.approval
    if approval is None:
        return Verdict("needs_approval", why, "approval")
    if not approval.covers(proposal):
        return _escalate("approval", f"approval {approval.id} was given for another command; not sent")
    status = approval.status_at(now)
    if status == "pending":
        return Verdict(
            "needs_approval", f"{why}; waiting for an answer until {approval.expires_at:.0f}", "approval"
        )
    if status == "rejected":
        note = f": {approval.note}" if approval.note else ""
        return _escalate("approval", f"rejected by {approval.decided_by}{note}; not sent")
    if status == "expired":
        return _escalate("approval", f"approval {approval.id} expired unanswered; not sent")
    return None


def _mediate(proposal: Proposal, context: GuardContext, now: float) -> Verdict:
    problem = _input_problem(proposal, context, now)
    if problem is not None:
        return _escalate("input", f"refused: {problem}")
    if proposal.action in PASSIVE_ACTIONS:
        return Verdict("allow", "sends nothing to a host", "passive")
    if context.kill_switch:
        return Verdict("deny", "the kill switch stops every automatic action", "kill_switch")
    source = cast(DecisionSource, proposal.source)  # one of AUTOMATIC_SOURCES: checked above
    decision = Decision(source, proposal.action, "", proposal.target, dict(proposal.params))
    checked = check_allowed(decision, context.allowed)
    if checked.action == ESCALATE:
        return _escalate("allowlist", checked.rationale)
    if context.breaker.open:
        return Verdict("deny", f"the tenant's circuit breaker is open: {context.breaker.reason}", "breaker")
    settings = context.settings
    shadow = _shadow_reason(proposal, settings)
    spent = settings.budget.allow(
        context.history, proposal.host, proposal.action, now, shadow=shadow is not None
    )
    if not spent.sends:
        return spent
    why = needs_approval(proposal.action, proposal.step, proposal.source, settings.approval)
    if shadow is not None:
        would: VerdictKind = "allow" if why is None else "needs_approval"
        live = "send it" if why is None else f"ask for approval ({why})"
        return Verdict("shadow", f"{shadow}: would {live}: {_describe(proposal)}", "shadow", would=would)
    if why is not None:
        waiting = _approval(proposal, context, why, now)
        if waiting is not None:
            return waiting
    return Verdict("allow", f"every check passed: {_describe(proposal)}", "all")


def mediate(proposal: Proposal, context: GuardContext, now: float) -> Verdict:
    """The verdict on sending ``proposal``'s command at ``now``: the checks of the module docstring
    in their order; an exception in any of them escalates (fail closed), never allows."""
    try:
        return _mediate(proposal, context, now)
    except Exception as exc:  # noqa: BLE001 - fail closed: whatever went wrong, nothing is sent
        return _escalate("input", f"guardrail check failed ({type(exc).__name__}); not sent")
