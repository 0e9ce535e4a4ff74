"""Complete mediation of a proposed action: the allowlist, parameter patterns, and the LLM answer.

Pure: no I/O, no clock. Anything that does not validate becomes ``escalate`` with the reason —
never a guess, never a "closest" action.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from infragent.model import ESCALATE, PASSIVE_ACTIONS, ActionSpec, Decision, DecisionSource

MAX_RATIONALE = 2_000
#: What a command's target may be: a name (a service, a unit, a container), never shell, a path
#: climbing out (``..``), whitespace or quotes. Why a fixed pattern and not the action's: an SDK
#: handler receives the target as is (to pick the service to restart), and a target is chosen by a
#: runbook template or by the LLM from text the hosts reported, so it is untrusted like a parameter.
TARGET_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,199}")


def escalate(source: DecisionSource, why: str, **kw: Any) -> Decision:
    return Decision(source=source, action=ESCALATE, rationale=why, **kw)


def decision_schema(allowed: Mapping[str, ActionSpec]) -> dict[str, Any]:
    """The JSON schema the LLM must answer in: only allowed actions, none or escalate."""
    return {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": sorted(allowed) + sorted(PASSIVE_ACTIONS)},
            "target": {"type": ["string", "null"]},
            "params": {"type": "object", "additionalProperties": {"type": "string"}},
            "rationale": {"type": "string"},
        },
        "required": ["action", "target", "params", "rationale"],
        "additionalProperties": False,
    }


def check_allowed(decision: Decision, allowed: Mapping[str, ActionSpec]) -> Decision:
    """Return the decision if the agent allows it with these parameters, else an escalation saying why."""
    if not decision.acts:
        return decision
    spec = allowed.get(decision.action)
    if spec is None:
        why = f"action {decision.action!r} is not on the agent's allowlist {sorted(allowed)}"
        return escalate(decision.source, why, prompt=decision.prompt, answer=decision.answer)
    target = decision.target
    if target is not None and (
        not isinstance(target, str) or TARGET_PATTERN.fullmatch(target) is None or ".." in target
    ):
        why = f"target {target!r} is not a plain name ({TARGET_PATTERN.pattern}, no '..')"
        return escalate(decision.source, why, prompt=decision.prompt, answer=decision.answer)
    for name, value in decision.params.items():
        pattern = spec.params.get(name)
        if pattern is None:
            why = f"parameter {name!r} is not declared for action {decision.action!r}"
            return escalate(decision.source, why, prompt=decision.prompt, answer=decision.answer)
        if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
            why = f"parameter {name!r}={value!r} does not match {pattern!r}"
            return escalate(decision.source, why, prompt=decision.prompt, answer=decision.answer)
    return decision


def parse_llm_answer(raw: str, allowed: Mapping[str, ActionSpec], *, prompt: str, answer: str) -> Decision:
    """Validate an LLM's raw answer against the schema and the allowlist."""

    def fail(why: str) -> Decision:
        return escalate("llm", f"LLM answer rejected: {why}", prompt=prompt, answer=answer)

    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return fail("not valid JSON")
    if not isinstance(data, dict):
        return fail("not a JSON object")
    extra = set(data) - {"action", "target", "params", "rationale"}
    if extra:
        return fail(f"unexpected fields {sorted(extra)}")
    action, target = data.get("action"), data.get("target")
    params, rationale = data.get("params", {}), data.get("rationale", "")
    if not isinstance(action, str) or not action:
        return fail("'action' missing or not a string")
    if target is not None and not isinstance(target, str):
        return fail("'target' must be a string or null")
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        return fail("'params' must map strings to strings")
    if not isinstance(rationale, str):
        return fail("'rationale' must be a string")
    decision = Decision(
        source="llm",
        action=action,
        target=target,
        params=dict(params),
        rationale=rationale[:MAX_RATIONALE] or "(no rationale given)",
        prompt=prompt,
        answer=answer,
    )
    return check_allowed(decision, allowed)
