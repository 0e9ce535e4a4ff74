"""Runbooks as ordered steps: the runbook, its steps, and the incident it runs for.

Why values of their own: the pure state machine (``step_core.next_step``) is a function of these,
a run's state (``step_run.py``) and ``now`` only, so every path of a runbook (success, a verify that
times out, an approval that expires, a ``goto`` loop) is a table case with no clock, store or
network. The file format that builds a ``StepRunbook`` is ``step_file.py``.

A ``Step`` is an id, a body (one of seven kinds), ``on_failure``, ``on_success`` and a ``timeout``:

- ``check``: a probe (an agent check's name, ``expect`` up or down) or a metric condition (the
  rules' threshold: selector, function, window, op, value); ok when it holds;
- ``act``: an allowlisted action with a target and parameters, on the agent or the SDK
  (``on``), ``approval: required | auto``; ok when the receiver ran it;
- ``wait``: seconds; never fails;
- ``verify``: the signal that opened the incident recovers (its alert resolves, its check is up
  again) within the timeout;
- ``notify``: a message to the incident's notification routes;
- ``ask_llm``: the LLM proposes the next action from the allowlist; it runs as an ``act``
  (approval required unless the step says ``auto``);
- ``escalate``: ends the run, handing the incident to a person with a summary.

Templates (an act's target and params, a message, a summary, a question) may name the incident's
fields: ``{service}``, ``{type}`` (alias ``{event_type}``), ``{node_id}``, ``{rule}``,
``{severity}``, ``{incident_id}`` and ``{labels[NAME]}``. They are filled by ``render`` only, which
looks names up and never evaluates attributes or format specs of a value.
"""

from __future__ import annotations

import fnmatch
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from infragent.incidents.model import Incident
from infragent.rules.model import Threshold

StepKind = Literal["check", "act", "wait", "verify", "notify", "ask_llm", "escalate"]
STEP_KINDS: Final[tuple[StepKind, ...]] = get_args(StepKind)
ApprovalMode = Literal["required", "auto"]
APPROVAL_MODES: Final[tuple[ApprovalMode, ...]] = get_args(ApprovalMode)
SignalName = Literal["alert", "check", "any"]
SIGNALS: Final[tuple[SignalName, ...]] = get_args(SignalName)
ProbeState = Literal["up", "down"]
Receiver = Literal["agent", "sdk"]
RECEIVERS: Final[tuple[Receiver, ...]] = get_args(Receiver)

#: A step's timeout when it gives none (seconds): how long a check, a command's answer, a
#: notification's enqueueing or an LLM answer may take; for ``verify``, the recovery window.
DEFAULT_TIMEOUTS: Final[Mapping[StepKind, float]] = {
    "check": 30.0,
    "act": 60.0,
    "wait": 0.0,
    "verify": 300.0,
    "notify": 30.0,
    "ask_llm": 60.0,
    "escalate": 0.0,
}
#: How long an approval request waits before it counts as rejected (the issue's 15 minutes).
DEFAULT_APPROVAL_EXPIRY_S: Final = 900.0
#: The loop guard: at most this many step executions per run, so a ``goto`` loop ends.
DEFAULT_MAX_EXECUTIONS: Final = 20
#: The loop guard's ceiling whatever a runbook asks (the file format refuses more).
MAX_EXECUTIONS_CAP: Final = 100
#: The template fields besides ``labels[NAME]``.
TEMPLATE_FIELDS: Final = ("service", "type", "event_type", "node_id", "rule", "severity", "incident_id")


# -- the runbook ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnFailure:
    """What follows a failed step: the next step in order, an escalation, or the step ``goto``."""

    then: Literal["next", "escalate", "goto"] = "escalate"
    goto: str | None = None

    def __str__(self) -> str:
        return f"goto {self.goto}" if self.then == "goto" else self.then


@dataclass(frozen=True, slots=True)
class OnSuccess:
    """What follows a step that succeeded: the next step in order (after the last: complete),
    completing the run now, or the step ``goto``. Why besides ``on_failure``: steps are ordered,
    so without it a failure branch placed after the success path (ask the LLM, then page) would
    also run after a success."""

    then: Literal["next", "complete", "goto"] = "next"
    goto: str | None = None

    def __str__(self) -> str:
        return f"goto {self.goto}" if self.then == "goto" else self.then


@dataclass(frozen=True, slots=True)
class Check:
    """Exactly one of ``probe`` (an agent check, ok when its state is ``expect``) and
    ``condition`` (a metric threshold, ok when it holds)."""

    probe: str | None = None
    expect: ProbeState = "up"
    condition: Threshold | None = None
    kind: Literal["check"] = "check"


@dataclass(frozen=True, slots=True)
class Act:
    """An action of the receiver's allowlist; ``approval`` None takes the runbook's default,
    ``on`` None sends it where the incident's events came from."""

    action: str
    target: str | None = "{service}"
    params: dict[str, str] = field(default_factory=dict)
    on: Receiver | None = None
    approval: ApprovalMode | None = None
    kind: Literal["act"] = "act"


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True, slots=True)
class Verify:
    """Which recovery counts: the alert resolving, the check being up again, or either."""

    signal: SignalName = "any"
    kind: Literal["verify"] = "verify"


@dataclass(frozen=True, slots=True)
class Notify:
    message: str
    kind: Literal["notify"] = "notify"


@dataclass(frozen=True, slots=True)
class AskLlm:
    """The LLM proposes an action; every proposal needs approval unless ``approval`` is auto."""

    question: str = ""
    approval: ApprovalMode = "required"
    kind: Literal["ask_llm"] = "ask_llm"


@dataclass(frozen=True, slots=True)
class Escalate:
    summary: str = ""
    kind: Literal["escalate"] = "escalate"


StepBody = Check | Act | Wait | Verify | Notify | AskLlm | Escalate


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    body: StepBody
    on_failure: OnFailure = OnFailure()
    #: None: the kind's default (``DEFAULT_TIMEOUTS``)
    timeout_s: float | None = None
    on_success: OnSuccess = OnSuccess()

    @property
    def kind(self) -> StepKind:
        return self.body.kind

    @property
    def timeout(self) -> float:
        return DEFAULT_TIMEOUTS[self.kind] if self.timeout_s is None else self.timeout_s


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """The fields of an incident a runbook matches on and its templates name."""

    incident_id: str
    severity: str
    rule: str | None = None
    event_type: str | None = None
    service: str | None = None
    node_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, incident: Incident) -> IncidentFacts:
        """An event's incident carries its type, service and node as labels (``incidents.core``);
        an alert's has its rule and the alert's labels (``service`` among them when the rule has it)."""
        labels = dict(incident.labels)
        event = incident.source == "event"
        return cls(
            incident_id=incident.id,
            severity=incident.severity,
            rule=incident.rule_name,
            event_type=labels.get("type") if event else None,
            service=labels.get("service"),
            node_id=labels.get("node_id") if event else labels.get("node_id", labels.get("host")),
            labels=labels,
        )

    def value(self, name: str) -> str | None:
        """A template field's value (``TEMPLATE_FIELDS`` or ``labels[NAME]``); None when unset."""
        if name.startswith("labels[") and name.endswith("]"):
            return self.labels.get(name[len("labels[") : -1])
        if name == "type":
            name = "event_type"
        if name not in TEMPLATE_FIELDS:
            return None
        got = getattr(self, name)
        return None if got is None else str(got)


@dataclass(frozen=True, slots=True)
class IncidentMatch:
    """Globs per field; a field left out (None) matches anything, a given one needs the field
    present (``rule: "*"`` matches every alert's incident and no event's). All must match."""

    rules: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None
    severities: tuple[str, ...] | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, facts: IncidentFacts) -> bool:
        return (
            _globs_match(self.rules, facts.rule)
            and _globs_match(self.event_types, facts.event_type)
            and _globs_match(self.services, facts.service)
            and _globs_match(self.severities, facts.severity)
            and all(_globs_match((glob,), facts.labels.get(name)) for name, glob in self.labels)
        )


def _globs_match(globs: tuple[str, ...] | None, value: str | None) -> bool:
    if globs is None:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, g) for g in globs)


@dataclass(frozen=True, slots=True)
class StepRunbook:
    name: str
    steps: tuple[Step, ...]
    match: IncidentMatch = IncidentMatch()
    #: the approval of act steps that do not say
    approval: ApprovalMode = "auto"
    approval_expiry_s: float = DEFAULT_APPROVAL_EXPIRY_S
    #: record what would be sent, send nothing (``step_core``)
    dry_run: bool = False
    max_executions: int = DEFAULT_MAX_EXECUTIONS

    def matches(self, facts: IncidentFacts) -> bool:
        return self.match.matches(facts)

    def index(self, step_id: str) -> int | None:
        return next((i for i, s in enumerate(self.steps) if s.id == step_id), None)


def first_step_runbook(
    runbooks: tuple[StepRunbook, ...] | list[StepRunbook], facts: IncidentFacts
) -> StepRunbook | None:
    """The first runbook in file order that matches the incident: order is the precedence."""
    return next((rb for rb in runbooks if rb.matches(facts)), None)


def placeholders(template: str) -> list[str]:
    """The field names of ``template``; ValueError for a lone brace, a conversion (``!r``) or a
    format spec (``:>8``): a template fills in text, it does not format values."""
    names: list[str] = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"{{{name}}} may not carry a conversion or format spec")
        names.append(name)
    return names


def unknown_placeholders(template: str) -> list[str]:
    """The names of ``template`` that are no template field (ValueError as ``placeholders``)."""
    return [
        n
        for n in placeholders(template)
        if n not in TEMPLATE_FIELDS and not (n.startswith("labels[") and n.endswith("]") and len(n) > 8)
    ]


def render(template: str, facts: IncidentFacts) -> str | None:
    """``template`` with its fields filled in; None when one has no value for this incident (an
    act with an unfilled target must fail, not run against an empty name)."""
    out: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, name, _, _ in parsed:
        out.append(literal)
        if name is not None:
            value = facts.value(name)
            if value is None:
                return None
            out.append(value)
    return "".join(out)
