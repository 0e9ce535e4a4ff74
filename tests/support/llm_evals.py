"""The eval harness: an incident snapshot from a case file, through the real path, to a verdict.

The path is the one an ``ask_llm`` step takes: ``responder.context.build_context`` → a real
``LlmClient`` (OpenAI-compatible, or Gemini) over loopback HTTP → the LLM stand-in, whose "model" is
``support.llm_brain.Brain`` → ``policy.parse_llm_answer`` → ``guardrails.mediate``. Nothing of ours
is mocked; only the vendor is stood in for.

A case file (tests/evals/cases/*.yaml) holds:

    name: web-down-restart            # unique
    why: what the case checks, for a person reading a failure
    vendor: openai                    # or gemini
    incident: {title, severity, status, labels, rule, opened_ago_s, flapping, reopen_count}
    timeline: [{ago_s, kind, actor, detail}]
    events: [{ago_s, type, service, severity, data}]
    metrics: [{name, labels, min, avg, max, last, count}]
    history: [{ago_s, action, target, params, outcome, runbook}]
    allowed: {restart: {params: {service: "[a-z]+"}, description: ...}}
    question: ...                     # optional
    guard: {kill_switch, approval_llm, approved, budget_used, shadow}   # optional
    acceptable: [{action: restart, params: {service: web}}, {action: escalate}]
    verdicts: [needs_approval]        # optional: the acceptable guardrail verdicts
    secrets: [p-1]                    # optional: planted strings the vendor must never see

Times are seconds before ``NOW``. Without ``verdicts``, an action must wait for approval (the LLM's
proposals need one by default) and ``none``/``escalate`` pass as ``allow`` (passive).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infragent.incidents.model import Incident, IncidentStatus, TimelineEntry
from infragent.model import ActionSpec, Decision, Event, Severity
from infragent.responder.approval import ApprovalPolicy, approve, request
from infragent.responder.context import ContextInputs, LlmContext, MetricSummary, PastAction, build_context
from infragent.responder.guardrails import (
    ActionRecord,
    GuardContext,
    GuardSettings,
    Proposal,
    Verdict,
    mediate,
)
from infragent.responder.llm.base import LlmClient
from infragent.responder.policy import decision_schema, parse_llm_answer

NOW = 1_700_000_000.0
TENANT = "tenant-eval"
HOST = "host-1"


@dataclass(frozen=True)
class Guard:
    """The guardrail state a case runs under."""

    kill_switch: bool = False
    approval_llm: bool = True
    #: a person approved the command the model proposed (an approval covering it is on record)
    approved: bool = False
    #: automatic actions of the proposed action already sent to the host inside the budget's window
    budget_used: int = 0
    shadow: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    why: str
    vendor: str
    inputs: ContextInputs
    acceptable: tuple[Mapping[str, Any], ...]
    guard: Guard = Guard()
    verdicts: frozenset[str] | None = None
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    context: LlmContext
    raw: str
    decision: Decision
    verdict: Verdict
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def _ago(item: Mapping[str, Any]) -> float:
    return NOW - float(item.get("ago_s", 0))


def inputs_of(doc: Mapping[str, Any]) -> ContextInputs:
    """The ``ContextInputs`` of a case document (see the module docstring)."""
    inc = doc.get("incident", {})
    incident = Incident(
        id=inc.get("id", "inc-1"),
        client_id=TENANT,
        fingerprint="fp",
        title=inc.get("title", "incident"),
        severity=inc.get("severity", "critical"),
        status=IncidentStatus(inc.get("status", "open")),
        source=inc.get("source", "event"),
        labels={str(k): str(v) for k, v in inc.get("labels", {"host": HOST}).items()},
        opened_at=NOW - float(inc.get("opened_ago_s", 300)),
        updated_at=NOW,
        rule_name=inc.get("rule"),
        reopen_count=int(inc.get("reopen_count", 0)),
        flapping=bool(inc.get("flapping", False)),
    )
    timeline = [
        TimelineEntry(_ago(t), t.get("kind", "note"), t.get("actor", "system"), dict(t.get("detail", {})))
        for t in doc.get("timeline", [])
    ]
    events = [
        Event(
            f"e{i}",
            TENANT,
            "agent-1",
            e.get("node", HOST),
            e.get("type", "event"),
            e.get("service", ""),
            Severity(e.get("severity", "critical")),
            dict(e.get("data", {})),
            _ago(e),
            incident_id=incident.id,
        )
        for i, e in enumerate(doc.get("events", []))
    ]
    metrics = [
        MetricSummary(
            m["name"], dict(m.get("labels", {})), m["min"], m["avg"], m["max"], m["last"], m["count"]
        )
        for m in doc.get("metrics", [])
    ]
    history = [
        PastAction(
            _ago(p),
            p["action"],
            p.get("target"),
            dict(p.get("params", {})),
            p.get("outcome"),
            p.get("runbook"),
        )
        for p in doc.get("history", [])
    ]
    allowed = {
        name: ActionSpec(name, dict((spec or {}).get("params", {})), (spec or {}).get("description", ""))
        for name, spec in doc.get("allowed", {}).items()
    }
    question = doc.get("question", "The incident below is open. Choose the next step.")
    return ContextInputs(incident, timeline, events, metrics, history, allowed, question, HOST)


def load_case(path: Path) -> Case:
    doc = yaml.safe_load(path.read_text())
    verdicts = doc.get("verdicts")
    return Case(
        name=doc["name"],
        why=doc.get("why", ""),
        vendor=doc.get("vendor", "openai"),
        inputs=inputs_of(doc),
        acceptable=tuple(doc["acceptable"]),
        guard=Guard(**doc.get("guard", {})),
        verdicts=frozenset(verdicts) if verdicts is not None else None,
        secrets=tuple(doc.get("secrets", ())),
    )


def load_cases(directory: Path) -> list[Case]:
    return [load_case(p) for p in sorted(directory.glob("*.yaml"))]


def guard_context(guard: Guard, allowed: Mapping[str, ActionSpec], proposal: Proposal | None) -> GuardContext:
    """What ``mediate`` weighs for a case: its settings, the budget spent, a recorded approval."""
    settings = GuardSettings(approval=ApprovalPolicy(llm=guard.approval_llm), shadow=guard.shadow)
    history: list[ActionRecord] = []
    approval = None
    if proposal is not None:
        history = [ActionRecord(HOST, proposal.action, NOW - 60 * (i + 1)) for i in range(guard.budget_used)]
        if guard.approved:
            asked = request(proposal, "apr-1", "every action the LLM proposes requires approval", NOW - 30)
            approval = approve(asked, "user:ops", "operator", NOW - 10)
    return GuardContext(TENANT, allowed, settings, history, kill_switch=guard.kill_switch, approval=approval)


def decide(context: LlmContext, allowed: Mapping[str, ActionSpec], client: LlmClient) -> tuple[str, Decision]:
    """One round trip: the model's raw answer and the validated decision."""
    raw = client.complete_json(context.system, context.user, decision_schema(allowed))
    audited = f"[system]\n{context.system}\n[user]\n{context.user}"
    return raw, parse_llm_answer(raw, allowed, prompt=audited, answer=raw)


def mediate_decision(decision: Decision, guard: Guard, allowed: Mapping[str, ActionSpec]) -> Verdict:
    proposal = Proposal.of(decision, TENANT, HOST)
    return mediate(proposal, guard_context(guard, allowed, proposal), NOW)


def _matches(option: Mapping[str, Any], decision: Decision) -> bool:
    if option.get("action") != decision.action:
        return False
    if "params" in option and dict(option["params"]) != decision.params:
        return False
    return "target" not in option or option["target"] == decision.target


def run_case(case: Case, client: LlmClient) -> Outcome:
    """Run ``case`` through the real path and say what, if anything, is not acceptable."""
    context = build_context(case.inputs, NOW)
    raw, decision = decide(context, case.inputs.allowed, client)
    verdict = mediate_decision(decision, case.guard, case.inputs.allowed)
    problems = []
    if not any(_matches(o, decision) for o in case.acceptable):
        problems.append(
            f"decision {decision.action} {decision.params} ({decision.rationale}) is not acceptable"
        )
    expected = case.verdicts or frozenset({"needs_approval"} if decision.acts else {"allow"})
    if verdict.kind not in expected:
        problems.append(
            f"verdict {verdict.kind} ({verdict.check}: {verdict.reason}) not in {sorted(expected)}"
        )
    return Outcome(context, raw, decision, verdict, problems)
