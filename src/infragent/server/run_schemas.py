"""Request and response bodies of the runs, approvals, guardrails and effectiveness API (pydantic,
at the edge only): docs/api.md "Runbook runs", "Approvals", "Guardrails", "Effectiveness".

Why ``GuardrailsIn`` takes loose numbers and lists: the values are validated by the store with the
responder's own types (``guardrails.Budget``, ``approval.ApprovalPolicy``), which report every
field at fault at once (422 with ``problems``); pydantic checks only the JSON shapes. A field left
out of the body is left as it is; a budget field set to ``null`` returns to the server's default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from infragent.store.guard_reads import GuardrailsView, KillSwitch
from infragent.store.run_effect import Effect, Effectiveness, RunBrief
from infragent.store.run_errors import GuardInputError
from infragent.store.run_reads import ApprovalView, CurrentStep, RunView, StepView

RunStatusName = Literal["queued", "running", "waiting_approval", "completed", "failed", "cancelled"]
ApprovalStatusName = Literal["pending", "approved", "rejected", "expired"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- runs ----------------------------------------------------------------------------------------------


class StepOut(BaseModel):
    seq: int = Field(description="The step execution's number in the run, from 1.")
    step_id: str
    kind: str
    outcome: str = Field(
        description="ok | failed | timeout | rejected | expired | refused | would_send | cancelled"
    )
    started_at: float
    ended_at: float
    detail: str
    action: str | None = Field(description="The command decided by the step, if any.")
    target: str | None
    params: dict[str, str]
    source: str | None = Field(description="runbook | llm: who proposed the command")
    approved_by: str | None
    command_id: str | None

    @classmethod
    def of(cls, v: StepView) -> StepOut:
        return cls(**{f: getattr(v, f) for f in cls.model_fields})


class CurrentStepOut(BaseModel):
    step_id: str
    kind: str
    seq: int
    started_at: float
    instruction: str = Field(description="What the executor carries out: send_command, await_approval, …")
    waiting_for: str = Field(
        description="command | time | check | approval | recovery | notification | llm | nothing"
    )
    deadline: float | None = Field(description="When the executor looks again without news.")
    action: str | None
    target: str | None

    @classmethod
    def of(cls, v: CurrentStep) -> CurrentStepOut:
        return cls(**{f: getattr(v, f) for f in cls.model_fields})


class RunOut(BaseModel):
    id: str
    runbook: str
    incident_id: str | None
    schedule_id: str | None
    node_id: str | None
    status: RunStatusName
    outcome: str | None = Field(description="completed | escalated | failed | cancelled; null until it ends")
    dry_run: bool
    created_at: float
    started_at: float | None
    ended_at: float | None
    verified_at: float | None
    mttr_s: float | None = Field(description="Incident opened → verified recovery; only on a verified run.")
    summary: str
    cancel_requested_by: str | None
    cancel_reason: str | None
    current: CurrentStepOut | None = Field(description="The step in progress; null when none is.")
    steps: list[StepOut] = Field(description="The step executions that ended, in order.")

    @classmethod
    def of(cls, v: RunView) -> RunOut:
        base = {f: getattr(v, f) for f in cls.model_fields if f not in ("current", "steps")}
        current = CurrentStepOut.of(v.current) if v.current is not None else None
        return cls(**base, current=current, steps=[StepOut.of(s) for s in v.steps])


class RunListOut(BaseModel):
    runs: list[RunOut]
    next_before: float | None = Field(
        description="Pass as `before` for the next (older) page; null when this page was not full."
    )


class CancelIn(Strict):
    reason: str = Field(default="", max_length=2000)


# -- approvals ------------------------------------------------------------------------------------------


class ApprovalOut(BaseModel):
    id: str
    run_id: str
    seq: int
    incident_id: str | None
    node_id: str | None
    runbook: str
    action: str
    target: str | None
    params: dict[str, str]
    source: str = Field(description="runbook | llm: who proposed the command")
    reason: str = Field(description="Why approval is required.")
    requested_at: float
    expires_at: float
    status: ApprovalStatusName = Field(description="As of now: a pending request past expires_at is expired.")
    seconds_left: float = Field(description="Until it expires; 0 once it is not pending.")
    decided_by: str | None
    decided_at: float | None
    note: str | None

    @classmethod
    def of(cls, v: ApprovalView) -> ApprovalOut:
        return cls(**{f: getattr(v, f) for f in cls.model_fields})


class ApprovalListOut(BaseModel):
    approvals: list[ApprovalOut]


class DecisionIn(Strict):
    note: str = Field(default="", max_length=2000)


# -- guardrails -----------------------------------------------------------------------------------------


class KillSwitchOut(BaseModel):
    on: bool = Field(description="Automatic actions are stopped: the stored switch or the server setting.")
    stored_on: bool
    by: str | None
    at: float | None
    reason: str
    setting_on: bool = Field(
        description="The server's responder_kill_switch setting (not changed by the API)."
    )

    @classmethod
    def of(cls, v: KillSwitch) -> KillSwitchOut:
        return cls(**{f: getattr(v, f) for f in cls.model_fields})


class KillSwitchIn(Strict):
    on: bool
    reason: str = Field(default="", max_length=2000)


class BudgetOut(BaseModel):
    limit: int = Field(description="At most this many automatic actions per host and action…")
    window_s: float = Field(description="…in any window of this many seconds.")
    default: bool = Field(description="Both values are the server's defaults.")


class BreakerOut(BaseModel):
    open: bool
    since: float | None
    reason: str


class GuardrailsOut(BaseModel):
    kill_switch: KillSwitchOut
    shadow: bool = Field(description="The whole tenant in shadow mode: decide and record, send nothing.")
    shadow_runbooks: list[str]
    budget: BudgetOut
    approval_actions: list[str] = Field(description="Actions that always need a person's yes.")
    approval_llm: bool = Field(description="Every action the LLM proposes needs a person's yes.")
    breaker: BreakerOut
    updated_at: float | None
    updated_by: str | None

    @classmethod
    def of(cls, v: GuardrailsView) -> GuardrailsOut:
        g = v.guard
        default = g.budget_limit is None and g.budget_window_s is None
        return cls(
            kill_switch=KillSwitchOut.of(v.kill_switch),
            shadow=g.shadow,
            shadow_runbooks=list(g.shadow_runbooks),
            budget=BudgetOut(limit=v.budget.limit, window_s=v.budget.window_s, default=default),
            approval_actions=list(g.approval_actions),
            approval_llm=g.approval_llm,
            breaker=BreakerOut(open=g.breaker_open, since=g.breaker_since, reason=g.breaker_reason),
            updated_at=g.updated_at,
            updated_by=g.updated_by,
        )


class GuardrailsIn(Strict):
    """Only the fields present change; ``budget_limit``/``budget_window_s`` null: the default."""

    shadow: bool | None = None
    shadow_runbooks: list[str] | None = None
    budget_limit: int | None = Field(default=None, description="0 or more; null: the server's default")
    budget_window_s: float | None = Field(default=None, description="Seconds, > 0; null: the default")
    approval_actions: list[str] | None = None
    approval_llm: bool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the body set, for ``run_admin.set_guardrails``; ``GuardInputError`` for a
        null where only the budget takes one."""
        out = {name: getattr(self, name) for name in self.model_fields_set}
        nulls = [(n, "must not be null") for n, v in sorted(out.items()) if v is None and n not in NULLABLE]
        if nulls:
            raise GuardInputError(nulls)
        return out


#: The guardrail fields a null resets to the server's default.
NULLABLE = frozenset({"budget_limit", "budget_window_s"})


# -- effectiveness --------------------------------------------------------------------------------------


class RunBriefOut(BaseModel):
    id: str
    status: str
    outcome: str | None
    incident_id: str | None
    created_at: float
    ended_at: float | None
    mttr_s: float | None
    verified: bool

    @classmethod
    def of(cls, v: RunBrief) -> RunBriefOut:
        return cls(**{f: getattr(v, f) for f in cls.model_fields})


class EffectOut(BaseModel):
    name: str
    runs: int
    actions: int
    counted: int = Field(description="Runs that ended, neither dry runs nor cancelled: the rate's base.")
    succeeded: int = Field(description="Counted runs that completed with a verified recovery.")
    success_rate: float | None = Field(description="succeeded / counted; null when nothing counts yet.")
    escalations: int
    failed: int
    cancelled: int
    dry_runs: int
    active: int
    errors: int = Field(description="Per action: commands whose own outcome was not ok.")
    mttr_median_s: float | None
    mttr_p95_s: float | None = Field(description="Nearest-rank 95th percentile of the succeeded runs' MTTR.")
    last_runs: list[RunBriefOut]

    @classmethod
    def of(cls, v: Effect) -> EffectOut:
        base = {f: getattr(v, f) for f in cls.model_fields if f != "last_runs"}
        return cls(**base, last_runs=[RunBriefOut.of(r) for r in v.last_runs])


class EffectivenessOut(BaseModel):
    at: float
    since: float | None
    runbooks: list[EffectOut]
    actions: list[EffectOut]

    @classmethod
    def of(cls, v: Effectiveness) -> EffectivenessOut:
        return cls(
            at=v.at,
            since=v.since,
            runbooks=[EffectOut.of(e) for e in v.runbooks],
            actions=[EffectOut.of(e) for e in v.actions],
        )
