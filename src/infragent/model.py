"""Shared value types of the loop: events, decisions, commands, results.

Why frozen dataclasses: these cross threads (responder workers) and layers (store → responder →
dispatch); immutability keeps a decision from being edited after it was audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class EventStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"


#: Decisions that are always allowed because they never touch a host.
NO_ACTION = "none"
ESCALATE = "escalate"
PASSIVE_ACTIONS = frozenset({NO_ACTION, ESCALATE})

DecisionSource = Literal["runbook", "llm", "policy", "user"]  # user: remote control from a person
ResultStatus = Literal["ok", "error", "rejected", "timeout", "unreachable"]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action an agent or SDK instance says it can run, with a regex per parameter."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    client_id: str
    agent_id: str
    node_id: str
    type: str
    service: str
    severity: Severity
    data: dict[str, Any]
    received_at: float
    processed_at: float | None = None
    #: the incident the event opened or joined (None: not recorded on one, e.g. stored before incidents)
    incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the responder chose and why; ``action`` is an allowed action name, ``none`` or ``escalate``."""

    source: DecisionSource
    action: str
    rationale: str
    target: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    prompt: str | None = None
    answer: str | None = None

    @property
    def acts(self) -> bool:
        return self.action not in PASSIVE_ACTIONS


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What became of one command; ``code`` is the receiver's machine-readable refusal reason
    (``wire.commands.SignatureCode`` on a 401), read instead of the text of ``output``."""

    status: ResultStatus
    output: str = ""
    http_status: int | None = None
    attempts: int = 1
    code: str | None = None
