"""``check_guard_text``: a tenant's guardrail settings, every mistake at its 1-based line and column,
all in one pass; a valid text gives the settings, an empty one the defaults."""

from __future__ import annotations

import pytest

from infragent.responder.approval import ApprovalPolicy
from infragent.responder.breaker import BreakerConfig
from infragent.responder.guard_file import check_guard_text
from infragent.responder.guardrails import Budget, GuardSettings

FULL = """\
budget:
  max_actions: 2
  window: 10m
breaker:
  open_above: 50%
  close_at: 0.1
  min_unhealthy: 2
  close_after: 90
approval:
  actions: [reboot, failover]
  llm: false
  expires_after: 5m
  roles: [admin]
shadow: true
shadow_runbooks: [restart-web]
"""


def test_a_full_text_gives_its_settings() -> None:
    checked = check_guard_text(FULL)
    assert checked.ok and checked.lines == []
    assert checked.settings == GuardSettings(
        budget=Budget(2, 600.0),
        breaker=BreakerConfig(0.5, 0.1, 2, 90.0),
        approval=ApprovalPolicy(frozenset({"reboot", "failover"}), False, 300.0, frozenset({"admin"})),
        shadow=True,
        shadow_runbooks=frozenset({"restart-web"}),
    )


@pytest.mark.parametrize("text", ["", "  \n", "{}\n", "budget: {}\nbreaker: {}\napproval: {}\n"])
def test_what_is_left_out_keeps_the_defaults(text: str) -> None:
    checked = check_guard_text(text)
    assert checked.ok and checked.settings == GuardSettings()


def test_json_is_accepted_too() -> None:
    checked = check_guard_text('{"budget": {"max_actions": 5, "window": 3600}, "shadow": false}')
    assert checked.settings == GuardSettings(budget=Budget(5, 3600.0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("budget: [\n", ["2:1: not valid YAML"], id="yaml-syntax"),
        pytest.param("- 1\n", ["1:1: guardrails must be a mapping, not a list"], id="root-list"),
        pytest.param(
            "budgets: {}\n", ["1:1: unknown key 'budgets' in guardrails; allowed: budget, breaker"], id="typo"
        ),
        pytest.param("budget: 3\n", ["1:9: guardrails.budget must be a mapping, not a number"], id="section"),
        pytest.param(
            "budget:\n  max_actions: 2.5\n  window: 0\n",
            [
                "2:16: guardrails.budget.max_actions: must be a whole number, 0 or more",
                "3:11: guardrails.budget.window: must be longer than 0",
            ],
            id="budget-values",
        ),
        pytest.param(
            "budget:\n  window: 30x\n",
            ["2:13: guardrails.budget.window: bad duration '30x': a unit"],
            id="duration-column",
        ),
        pytest.param(
            "budget:\n  limit: 3\n",
            ["2:3: unknown key 'limit' in guardrails.budget; allowed: max_actions, window"],
            id="section-key",
        ),
        pytest.param(
            "breaker: {open_above: 140%}\n",
            ["1:23: guardrails.breaker.open_above: must be a share from 0 to 1"],
            id="share-range",
        ),
        pytest.param(
            "breaker:\n  open_above: 100%\n",
            ["2:15: guardrails.breaker.open_above: must be below 100%"],
            id="share-100",
        ),
        pytest.param(
            "breaker:\n  open_above: 30%\n  close_at: 35%\n",
            ["3:13: guardrails.breaker.close_at (35%) must not be above open_above (30%)"],
            id="hysteresis-band",
        ),
        pytest.param(
            "breaker:\n  open_above: 10%\n",
            ["2:15: guardrails.breaker.close_at (20%) must not be above open_above (10%)"],
            id="default-close-above",
        ),
        pytest.param(
            "breaker:\n  min_unhealthy: 0\n  close_after: -1\n",
            [
                "2:18: guardrails.breaker.min_unhealthy: must be a whole number, 1 or more",
                "3:16: guardrails.breaker.close_after must not be negative",
            ],
            id="breaker-values",
        ),
        pytest.param(
            "approval:\n  roles: [operator, viewer]\n",
            ["2:21: guardrails.approval.roles: 'viewer' cannot approve; choose from operator, admin"],
            id="viewer-approves",
        ),
        pytest.param(
            "approval:\n  roles: []\n",
            ["2:10: guardrails.approval.roles: at least one role must be able to approve"],
            id="no-approver",
        ),
        pytest.param(
            "approval:\n  actions: [reboot, reboot]\n  llm: maybe\n",
            [
                "2:21: guardrails.approval.actions: 'reboot' is listed twice",
                "3:8: guardrails.approval.llm must be true or false, not a string",
            ],
            id="approval-values",
        ),
        pytest.param(
            "shadow: 1\nshadow_runbooks: restart-web\n",
            [
                "1:9: guardrails.shadow must be true or false, not a number",
                "2:18: guardrails.shadow_runbooks must be a list, not a string",
            ],
            id="shadow-values",
        ),
    ],
)
def test_each_mistake_is_reported_at_its_place(text: str, expected: list[str]) -> None:
    checked = check_guard_text(text)
    assert checked.settings is None and not checked.ok
    assert len(checked.lines) == len(expected), checked.lines
    for line, want in zip(checked.lines, expected, strict=True):
        assert line.startswith(want), (line, want)


def test_problems_name_their_source() -> None:
    checked = check_guard_text("shadow: 1\n", source="tenant acme")
    assert [str(p) for p in checked.problems] == [
        "tenant acme:1:9: guardrails.shadow must be true or false, not a number"
    ]
