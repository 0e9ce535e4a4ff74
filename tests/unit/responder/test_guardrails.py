"""``mediate`` fails closed and never lets a stop be bypassed; the values refuse bad settings.

The decision cases themselves are data (guard_cases/*.yaml, ``test_guard_cases.py``); these are
the properties a table cannot state: every combination of stops, an exception inside a check,
inputs of the wrong type.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from infragent.errors import ConfigError
from infragent.model import ActionSpec, Decision
from infragent.responder import approval as ap
from infragent.responder.breaker import BreakerConfig, BreakerState, breaker_change, evaluate
from infragent.responder.guardrails import (
    ActionRecord,
    Budget,
    GuardContext,
    GuardSettings,
    Proposal,
    mediate,
)

ALLOWED = {"restart": ActionSpec("restart", {"name": "[a-z]+"})}
PROPOSAL = Proposal("acme", "web-1", "restart", "runbook", "web", {"name": "web"})
FULL = tuple(ActionRecord("web-1", "restart", at) for at in (0.0, 10.0, 20.0))


def _context(**kw: Any) -> GuardContext:
    return GuardContext(tenant="acme", allowed=ALLOWED, **kw)


def test_no_combination_of_stops_lets_a_command_through() -> None:
    """Every combination of kill switch, breaker, full budget, shadow mode, source and approval:
    a command is sent only when no stop applies and, for an LLM proposal, a person approved it."""
    statuses: tuple[str | None, ...] = (None, "pending", "approved", "rejected", "expired")
    seen = 0
    for kill, breaker, full, shadow, source, status in itertools.product(
        (False, True), (False, True), (False, True), (False, True), ("runbook", "llm"), statuses
    ):
        proposal = replace(PROPOSAL, source=source)
        approval = None
        if status is not None:
            approval = ap.request(proposal, "ap-1", "asked", 0.0)
            if status == "expired":
                approval = ap.expire(approval, 10_000.0)
            elif status != "pending":
                approval = replace(approval, status=status, decided_by="alice", decided_at=1.0)
        context = _context(
            kill_switch=kill,
            breaker=BreakerState(open=breaker, reason="fleet"),
            history=FULL if full else (),
            settings=GuardSettings(shadow=shadow),
            approval=approval,
        )
        verdict = mediate(proposal, context, 100.0)
        allowed = not (kill or breaker or full or shadow) and (source == "runbook" or status == "approved")
        assert verdict.sends == allowed, (kill, breaker, full, shadow, source, status, verdict)
        if kill:
            assert verdict.kind == "deny" and verdict.check == "kill_switch"
        elif breaker:
            assert verdict.kind == "deny" and verdict.check == "breaker"
        seen += 1
    assert seen == 2**5 * len(statuses)


class _Exploding(Mapping[str, ActionSpec]):
    """An allowlist that fails when read: whatever goes wrong inside a check must not allow."""

    def __getitem__(self, key: str) -> ActionSpec:
        raise RuntimeError("the allowlist could not be read")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("the allowlist could not be read")

    def __len__(self) -> int:
        return 1


def test_an_exception_inside_a_check_escalates_and_never_allows() -> None:
    context = GuardContext(tenant="acme", allowed=_Exploding())
    verdict = mediate(PROPOSAL, context, 100.0)
    assert verdict.kind == "escalate" and verdict.check == "input"
    assert "RuntimeError" in verdict.reason and not verdict.sends


@pytest.mark.parametrize(
    ("proposal", "context", "now", "reason"),
    [
        pytest.param({"not": "a proposal"}, _context(), 1.0, "expected type", id="proposal-dict"),
        pytest.param(PROPOSAL, None, 1.0, "expected type", id="no-context"),
        pytest.param(PROPOSAL, _context(), math.inf, "finite", id="infinite-now"),
        pytest.param(PROPOSAL, _context(), True, "finite", id="bool-now"),
        pytest.param(replace(PROPOSAL, action=""), _context(), 1.0, "no action", id="no-action"),
        pytest.param(replace(PROPOSAL, params={"name": 3}), _context(), 1.0, "strings", id="int-param"),
        pytest.param(
            PROPOSAL,
            _context(history=(ActionRecord("web-1", "restart", math.nan),)),
            1.0,
            "finite time",
            id="nan-history",
        ),
    ],
)
def test_malformed_inputs_escalate(proposal: Any, context: Any, now: Any, reason: str) -> None:
    verdict = mediate(proposal, context, now)
    assert verdict.kind == "escalate" and verdict.check == "input" and reason in verdict.reason


def test_a_proposal_is_made_from_a_decision() -> None:
    decision = Decision("llm", "restart", "it is down", "web", {"name": "web"})
    proposal = Proposal.of(decision, "acme", "web-1", runbook="rb", step="auto")
    assert proposal == Proposal("acme", "web-1", "restart", "llm", "web", {"name": "web"}, "rb", "auto")
    assert mediate(proposal, _context(), 1.0).kind == "needs_approval"


def test_the_budget_names_the_actions_that_count_oldest_first() -> None:
    history = [ActionRecord("web-1", "restart", at) for at in (50.0, 10.0, -5000.0, 30.0)]
    assert Budget().in_window(history, "web-1", "restart", 100.0) == [10.0, 30.0, 50.0]


@pytest.mark.parametrize(
    ("build", "key"),
    [
        pytest.param(lambda: Budget(limit=-1), "budget.max_actions", id="negative-limit"),
        pytest.param(lambda: Budget(limit=True), "budget.max_actions", id="bool-limit"),
        pytest.param(lambda: Budget(window_s=0), "budget.window", id="zero-window"),
        pytest.param(lambda: Budget(window_s=math.inf), "budget.window", id="infinite-window"),
        pytest.param(lambda: BreakerConfig(open_above=1.0), "breaker.open_above", id="open-at-100"),
        pytest.param(lambda: BreakerConfig(close_at=0.5), "breaker.close_at", id="close-above-open"),
        pytest.param(lambda: BreakerConfig(min_unhealthy=0), "breaker.min_unhealthy", id="min-zero"),
        pytest.param(lambda: BreakerConfig(close_after_s=-1), "breaker.close_after", id="negative-after"),
        pytest.param(lambda: ap.ApprovalPolicy(expires_after_s=0), "approval.expires_after", id="expiry"),
        pytest.param(lambda: ap.ApprovalPolicy(roles=frozenset({"viewer"})), "approval.roles", id="viewer"),
        pytest.param(lambda: ap.ApprovalPolicy(roles=frozenset({"root"})), "approval.roles", id="unknown"),
    ],
)
def test_settings_refuse_bad_values(build: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.key == key


def test_operators_and_admins_approve_viewers_do_not() -> None:
    assert frozenset({"operator", "admin"}) == ap.APPROVER_ROLES


def test_an_approval_covers_its_command_only() -> None:
    approval = ap.request(PROPOSAL, "ap-1", "asked", 0.0)
    assert approval.covers(replace(PROPOSAL, params={"name": "web"}, runbook="other"))
    for other in (
        replace(PROPOSAL, tenant="globex"),
        replace(PROPOSAL, host="web-2"),
        replace(PROPOSAL, action="reboot"),
        replace(PROPOSAL, target=None),
        replace(PROPOSAL, params={"name": "web", "force": "yes"}),
    ):
        assert not approval.covers(other), other


def test_an_expired_request_is_expired_whether_or_not_it_was_stored_so() -> None:
    approval = ap.request(PROPOSAL, "ap-1", "asked", 0.0)
    assert approval.status == "pending" and approval.status_at(899.9) == "pending"
    assert approval.status_at(900.0) == "expired"
    assert ap.expire(ap.expire(approval, 900.0), 2000.0) == ap.expire(approval, 900.0)


@pytest.mark.parametrize(
    ("unhealthy", "total", "now"),
    [
        pytest.param(True, 5, 0.0, id="bool"),
        pytest.param(2.5, 5, 0.0, id="fraction"),
        pytest.param(1, -1, 0.0, id="negative-total"),
        pytest.param(1, 5, math.nan, id="nan-now"),
    ],
)
def test_the_breaker_opens_on_counts_that_cannot_be_right(unhealthy: Any, total: Any, now: float) -> None:
    before = BreakerState()
    after = evaluate(before, unhealthy, total, now)
    assert after.open and "automatic actions stop" in after.reason
    assert breaker_change(before, after) == "opened"


def test_an_open_breaker_keeps_its_opening_time_while_counts_change() -> None:
    state = evaluate(BreakerState(), 5, 10, 100.0)
    for now, unhealthy in ((200.0, 6), (300.0, 9), (400.0, 4)):
        state = evaluate(state, unhealthy, 10, now)
        assert state.open and state.since == 100.0 and state.unhealthy == unhealthy
    assert breaker_change(state, state) is None
