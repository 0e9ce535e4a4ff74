from __future__ import annotations

import json

import pytest

from infragent.model import ActionSpec, Decision
from infragent.responder import policy

ALLOWED = {"restart": ActionSpec("restart", {"name": r"[a-z0-9_-]+"})}


def _answer(**kw: object) -> str:
    base: dict[str, object] = {"action": "restart", "target": "web", "params": {}, "rationale": "down"}
    base.update(kw)
    return json.dumps(base)


@pytest.mark.parametrize(
    ("raw", "expected_action", "why"),
    [
        (_answer(), "restart", "down"),
        (_answer(params={"name": "nginx"}), "restart", "down"),
        (_answer(action="none"), "none", "down"),
        (_answer(action="escalate"), "escalate", "down"),
        ('{"action": "restart", ', "escalate", "not valid JSON"),
        ("[1, 2]", "escalate", "not a JSON object"),
        (_answer(action="shell"), "escalate", "not on the agent's allowlist"),
        (_answer(action="rm -rf /"), "escalate", "not on the agent's allowlist"),
        (_answer(params={"name": "nginx; rm -rf /"}), "escalate", "does not match"),
        (_answer(params={"cmd": "x"}), "escalate", "not declared"),
        (_answer(params={"name": 3}), "escalate", "must map strings"),
        (_answer(target=["a"]), "escalate", "'target' must be"),
        (_answer(extra="x"), "escalate", "unexpected fields"),
        (json.dumps({"target": "web"}), "escalate", "'action' missing"),
    ],
)
def test_llm_answers_validated(raw: str, expected_action: str, why: str) -> None:
    d = policy.parse_llm_answer(raw, ALLOWED, prompt="p", answer=raw)
    assert d.action == expected_action
    assert why in d.rationale
    assert d.source == "llm" and d.prompt == "p" and d.answer == raw


def test_runbook_action_outside_allowlist_escalates() -> None:
    d = policy.check_allowed(Decision(source="runbook", action="reboot", rationale="rb"), ALLOWED)
    assert d.action == "escalate" and "reboot" in d.rationale


def test_schema_lists_only_allowed_and_passive_actions() -> None:
    schema = policy.decision_schema(ALLOWED)
    assert schema["properties"]["action"]["enum"] == ["restart", "escalate", "none"]
    assert schema["additionalProperties"] is False
