"""Approval-required actions: when a person's yes is needed, and the approval's life from request
to approved, rejected or expired.

Why approvals exist: public evaluations of LLM SRE agents solve a minority of scenarios, so an
action the model proposes is a suggestion until a person agrees (HolmesGPT pauses every mutating
tool for a human the same way). Three things ask for a yes, in this order (``needs_approval``):

* the runbook step says ``approval: required``;
* the action is on the tenant's list of approval-required actions (``ApprovalPolicy.actions``),
  whatever proposed it;
* the LLM proposed it and the tenant keeps the default ``ApprovalPolicy.llm = True``.

A runbook step with ``approval: auto`` waives none of the last two: a step cannot vouch for an
action the tenant listed, nor for what a model chose.

An ``Approval`` is a value: ``request`` makes a pending one that expires (default 15 minutes),
``approve`` and ``reject`` record a person's answer, ``expire`` ends an unanswered one. Who may
answer is a role (``APPROVER_ROLES``: the roles whose scopes grant ``operate``, so operators and
admins, never viewers); a refused answer raises ``ApprovalError`` with a machine-readable ``code``
and the HTTP ``status`` the API answers with. The approval names the exact command it approves
(tenant, host, action, target, parameters): ``covers`` is how ``guardrails.mediate`` refuses to
let a yes given for one command run another.

Pure: no I/O, no clock (``now`` is passed), no id generation (the caller names the approval).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal, Protocol

from infragent.auth.scopes import ALL_ROLES, allows, role_scopes
from infragent.errors import ConfigError, InfrAgentError

ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
#: What a runbook step says about approval (the step format's ``approval:`` key).
StepApproval = Literal["required", "auto"]
ApprovalErrorCode = Literal["role", "decided", "expired"]

#: How long a request waits for an answer before it is rejected as expired (issue #14: 15 min).
DEFAULT_EXPIRY_S: Final = 15 * 60.0
#: The roles that may approve or reject: those whose scopes grant ``operate``.
APPROVER_ROLES: Final[frozenset[str]] = frozenset(r for r in ALL_ROLES if allows(role_scopes(r), "operate"))
#: Who ends an unanswered request (``Approval.decided_by`` of an expired one).
EXPIRY_ACTOR: Final = "system:expiry"
_SOURCES: Final = ("runbook", "llm", "policy")


class ApprovalError(InfrAgentError):
    """An answer to an approval refused: ``code`` says why (``role``: the role may not answer, 403;
    ``decided``: it was answered already, 409; ``expired``: it ran out unanswered, 409)."""

    def __init__(self, code: ApprovalErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ApprovalErrorCode = code
        self.status = 403 if code == "role" else 409


class Proposed(Protocol):
    """The command an approval is asked for (``guardrails.Proposal`` is one): what ``request``
    copies and ``covers`` compares. A Protocol so this module needs nothing from ``guardrails``."""

    @property
    def tenant(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def params(self) -> Mapping[str, str]: ...
    @property
    def runbook(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """A tenant's approval rules: ``actions`` always need a yes, ``llm`` makes every LLM-proposed
    action need one (the default), a request waits ``expires_after_s``, ``roles`` may answer."""

    actions: frozenset[str] = frozenset()
    llm: bool = True
    expires_after_s: float = DEFAULT_EXPIRY_S
    roles: frozenset[str] = APPROVER_ROLES

    def __post_init__(self) -> None:
        if not (math.isfinite(self.expires_after_s) and self.expires_after_s > 0):
            raise ConfigError("approval.expires_after", "must be a positive number of seconds")
        unknown = sorted(set(self.roles) - set(ALL_ROLES))
        if unknown:
            raise ConfigError("approval.roles", f"unknown role(s) {unknown}: choose from {list(ALL_ROLES)}")
        if "viewer" in self.roles:
            raise ConfigError("approval.roles", "a viewer only reads: it cannot approve actions")


def needs_approval(
    action: str, step: str | None, source: str, policy: ApprovalPolicy | None = None
) -> str | None:
    """Why ``action`` needs a person's yes before it runs, or None when it does not.

    ``step`` is the runbook step's ``approval`` setting (a ``StepApproval``; None: not proposed by
    a step, or the step says nothing); ``source`` is who proposed it (``runbook``, ``llm``,
    ``policy``). Anything unexpected needs approval (fail closed): an unknown setting or source.
    """
    policy = policy or ApprovalPolicy()
    if step == "required":
        return "the runbook step requires approval"
    if step is not None and step != "auto":
        return f"the runbook step's approval setting {step!r} is not required or auto"
    if action in policy.actions:
        return f"action {action!r} requires approval in this tenant"
    if source not in _SOURCES:
        return f"a proposal from {source!r} is not one the responder makes"
    if source == "llm" and policy.llm:
        return "every action the LLM proposes requires approval"
    return None


@dataclass(frozen=True, slots=True)
class Approval:
    """A request for a person's yes to one exact command, and its answer."""

    id: str
    tenant: str
    host: str
    action: str
    target: str | None
    params: Mapping[str, str]
    #: why approval was required (``needs_approval``), shown to the person asked
    reason: str
    requested_at: float
    expires_at: float
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decided_role: str | None = None
    decided_at: float | None = None
    note: str = ""
    runbook: str | None = None

    def status_at(self, now: float) -> ApprovalStatus:
        """The status at ``now``: a pending request past its expiry is expired, stored or not."""
        if self.status == "pending" and not now < self.expires_at:
            return "expired"
        return self.status

    def covers(self, proposal: Proposed) -> bool:
        """Whether this approval is for exactly ``proposal``'s command on its host and tenant."""
        return (
            self.tenant == proposal.tenant
            and self.host == proposal.host
            and self.action == proposal.action
            and self.target == proposal.target
            and dict(self.params) == dict(proposal.params)
        )


def request(
    proposal: Proposed, approval_id: str, reason: str, now: float, policy: ApprovalPolicy | None = None
) -> Approval:
    """A pending approval of ``proposal``'s command, expiring ``policy.expires_after_s`` after ``now``."""
    policy = policy or ApprovalPolicy()
    return Approval(
        id=approval_id,
        tenant=proposal.tenant,
        host=proposal.host,
        action=proposal.action,
        target=proposal.target,
        params=dict(proposal.params),
        reason=reason,
        requested_at=now,
        expires_at=now + policy.expires_after_s,
        runbook=proposal.runbook,
    )


def _answer(
    approval: Approval,
    status: ApprovalStatus,
    by: str,
    role: str,
    now: float,
    note: str,
    policy: ApprovalPolicy | None,
) -> Approval:
    policy = policy or ApprovalPolicy()
    if role not in policy.roles:
        allowed = ", ".join(sorted(policy.roles)) or "no role"
        raise ApprovalError("role", f"a {role!r} cannot answer approvals here; {allowed} can")
    current = approval.status_at(now)
    if current == "expired":
        raise ApprovalError("expired", f"approval {approval.id} expired unanswered; nothing was run")
    if current != "pending":
        raise ApprovalError(
            "decided", f"approval {approval.id} is already {current} by {approval.decided_by}"
        )
    return replace(approval, status=status, decided_by=by, decided_role=role, decided_at=now, note=note)


def approve(
    approval: Approval, by: str, role: str, now: float, note: str = "", policy: ApprovalPolicy | None = None
) -> Approval:
    """``approval`` approved by ``by`` (with ``role``); ``ApprovalError`` when the role may not
    answer, it was answered already, or it has expired (then store ``expire(approval, now)``)."""
    return _answer(approval, "approved", by, role, now, note, policy)


def reject(
    approval: Approval, by: str, role: str, now: float, note: str = "", policy: ApprovalPolicy | None = None
) -> Approval:
    """``approval`` rejected by ``by`` (with ``role``); refused as ``approve`` is."""
    return _answer(approval, "rejected", by, role, now, note, policy)


def expire(approval: Approval, now: float) -> Approval:
    """``approval`` expired if it is pending and its time is up; unchanged otherwise. An expired
    request counts as a rejection: the command is never sent and the incident is escalated."""
    if approval.status_at(now) != "expired" or approval.status == "expired":
        return approval
    return replace(
        approval,
        status="expired",
        decided_by=EXPIRY_ACTOR,
        decided_role=None,
        decided_at=approval.expires_at,
        note="no answer before the approval expired",
    )
