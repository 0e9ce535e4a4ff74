"""Aggregation groups as tables (``cases/grouping.yaml``): member changes on a simulated clock, the
messages the group sends and when; escalation steps due."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.notify.grouping import (
    GroupState,
    Member,
    apply_flush,
    apply_hold,
    decide_flush,
    due_escalations,
    hold,
    next_escalation_at,
    on_member_change,
)
from infragent.notify.model import EscalationStep, RouteMatch

DATA: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "cases" / "grouping.yaml").read_text())


def _match(route: dict[str, Any], steps: tuple[EscalationStep, ...] = ()) -> RouteMatch:
    return RouteMatch(
        route_id="r",
        receivers=("x",),
        group_by=("alertname",),
        group_wait_s=float(route.get("group_wait", 30)),
        group_interval_s=float(route.get("group_interval", 300)),
        repeat_interval_s=float(route.get("repeat_interval", 3600)),
        mute_times=(),
        active_times=(),
        notify_on=frozenset(route.get("notify_on", ["firing", "resolved"])),
        escalation=steps,
        template={},
    )


def _run(case: dict[str, Any]) -> tuple[list[dict[str, Any]], GroupState | None]:
    """The pipeline's loop for one group, on a clock that jumps to the next change or due flush."""
    match = _match(case.get("route", {}))
    events = sorted(case["events"], key=lambda e: e["at"])
    silenced = case.get("silenced", [])
    state: GroupState | None = None
    members: dict[str, Member] = {}
    sent: list[dict[str, Any]] = []
    clock = 0.0
    for _ in range(1000):
        next_event = events[0]["at"] if events else math.inf
        due = state.next_flush_at if state is not None and state.next_flush_at is not None else math.inf
        if next_event <= max(due, clock) and next_event <= case["until"]:
            event = events.pop(0)
            clock = float(event["at"])
            if state is None:
                state = GroupState(created_at=clock, next_flush_at=None)
            members[event["id"]] = Member(event["id"], event["status"], clock)
            state = replace(state, next_flush_at=on_member_change(state, match, clock))
        elif state is not None and max(due, clock) <= case["until"]:
            clock = max(due, clock)
            held = {s["id"] for s in silenced if s["from"] <= clock < s["to"]}
            flush = decide_flush(state, members.values(), match, clock, suppressed=held)
            if flush is not None:
                sent.append(
                    {
                        "at": clock,
                        "kind": flush.kind,
                        "firing": list(flush.firing),
                        "resolved": list(flush.resolved),
                    }
                )
                state = apply_flush(state, flush, clock)
                dropped = flush.drop
            else:
                held_state = hold(state, members.values(), match, clock, suppressed=held)
                state = apply_hold(state, held_state)
                dropped = held_state.drop
            for ident in dropped:
                del members[ident]
        else:
            return sent, state
    raise AssertionError("the simulated group never settled")


@pytest.mark.parametrize("case", DATA["groups"], ids=lambda c: c["name"])
def test_grouping_case(case: dict[str, Any]) -> None:
    sent, state = _run(case)
    assert sent == case["expect"]
    if "next" in case:
        assert state is not None and state.next_flush_at == case["next"]


@pytest.mark.parametrize("case", DATA["escalations"], ids=lambda c: c["name"])
def test_escalation_case(case: dict[str, Any]) -> None:
    steps = tuple(EscalationStep(float(a), (f"step-{i}",)) for i, a in enumerate(case["after"]))
    match = _match({}, steps)
    fired = set(case.get("fired", []))
    acknowledged = case.get("acknowledged", False)
    assert due_escalations(match, case["opened_at"], acknowledged, fired, case["now"]) == case["due"]
    assert next_escalation_at(match, case["opened_at"], acknowledged, fired) == case["next"]


def test_a_change_never_postpones_an_earlier_flush() -> None:
    match = _match({})
    state = GroupState(created_at=0.0, next_flush_at=10.0, sent_firing=frozenset({"a"}), sent_at=-290.0)
    assert on_member_change(state, match, 5.0) == 10.0
    assert on_member_change(replace(state, next_flush_at=None), match, 5.0) == 10.0
    assert on_member_change(replace(state, next_flush_at=5000.0), match, 5.0) == 10.0


def test_the_log_after_a_flush_holds_what_was_sent() -> None:
    match = _match({})
    state = GroupState(created_at=0.0, next_flush_at=30.0)
    members = [Member("a", "firing", 0.0), Member("b", "resolved", 1.0)]
    flush = decide_flush(state, members, match, 30.0)
    assert flush is not None and flush.drop == ("b",) and flush.resolved == ()
    after = apply_flush(state, flush, 30.0)
    assert (after.sent_firing, after.sent_resolved, after.sent_at, after.next_flush_at) == (
        frozenset({"a"}),
        frozenset(),
        30.0,
        3630.0,
    )
    assert decide_flush(after, [members[0]], match, 100.0) is None
