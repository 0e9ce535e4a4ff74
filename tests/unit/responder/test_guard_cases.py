"""The guardrail and schedule cases (tests/unit/responder/guard_cases/*.yaml), table-driven.

Each file names its ``kind`` (budget, breaker, approval, mediate, next_run, due_runs) and holds
cases of that kind; a case is inputs and the expected outcome, read by the runner of its kind.
Settings and schedules in the cases are written in their file formats and read by
``guard_file``/``schedule_file``, so the cases exercise those readers too. A failure names the file
and the case.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.model import ActionSpec
from infragent.responder import approval as ap
from infragent.responder.breaker import BreakerConfig, BreakerState, breaker_change, evaluate
from infragent.responder.guard_file import check_guard_text
from infragent.responder.guardrails import (
    ActionRecord,
    Budget,
    GuardContext,
    Proposal,
    Verdict,
    mediate,
)
from infragent.responder.schedule import ScheduleSpec, due_runs, latest_due, next_run
from infragent.responder.schedule_file import check_schedule_text

CASE_DIR = Path(__file__).parent / "guard_cases"
FILES = sorted(CASE_DIR.glob("*.yaml"))
KINDS = ("budget", "breaker", "approval", "mediate", "next_run", "due_runs")


def _load() -> list[Any]:
    params = []
    for path in FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["kind"] in KINDS, f"{path.name}: unknown kind {data['kind']!r}"
        for case in data["cases"]:
            params.append(pytest.param(data["kind"], case, id=f"{path.stem}: {case['name']}"))
    return params


CASES = _load()


def test_there_are_at_least_30_cases_of_every_kind_together() -> None:
    kinds = {p.values[0] for p in CASES}
    assert len(CASES) >= 30 and kinds == set(KINDS)
    names = [p.id for p in CASES]
    assert len(names) == len(set(names)), "case names repeat within a file"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _records(rows: list[dict[str, Any]]) -> list[ActionRecord]:
    return [ActionRecord(**row) for row in rows]


def _check_verdict(got: Verdict, expect: dict[str, Any]) -> None:
    assert got.kind == expect["kind"], got
    if "check" in expect:
        assert got.check == expect["check"], got
    if "reason" in expect:
        assert expect["reason"] in got.reason, got
    if "retry_at" in expect:
        assert got.retry_at == expect["retry_at"], got
    if "would" in expect:
        assert got.would == expect["would"], got
    assert got.sends == (expect["kind"] == "allow")


def run_budget(case: dict[str, Any]) -> None:
    budget = Budget(**case.get("budget", {}))
    ask = case["ask"]
    got = budget.allow(
        _records(case["history"]), ask["host"], ask["action"], ask["now"], shadow=ask.get("shadow", False)
    )
    _check_verdict(got, case["expect"])


def run_breaker(case: dict[str, Any]) -> None:
    config = BreakerConfig(**case.get("config", {}))
    state = BreakerState()
    for i, step in enumerate(case["steps"]):
        after = evaluate(state, step["unhealthy"], step["total"], step["now"], config)
        where = f"step {i}: {step}"
        assert after.open == step["open"], where
        if "change" in step:
            assert breaker_change(state, after) == step["change"], where
        if "reason" in step:
            assert step["reason"] in after.reason, where
        state = after


PROPOSAL = {"tenant": "acme", "host": "web-1", "action": "restart", "source": "runbook", "target": "web"}
ALLOWED = {
    "restart": ActionSpec("restart", {"name": "[a-z0-9-]+"}),
    "clear_cache": ActionSpec("clear_cache"),
    "reboot": ActionSpec("reboot"),
}


def _policy(rows: dict[str, Any] | None) -> ap.ApprovalPolicy:
    rows = dict(rows or {})
    if "actions" in rows:
        rows["actions"] = frozenset(rows["actions"])
    if "roles" in rows:
        rows["roles"] = frozenset(rows["roles"])
    return ap.ApprovalPolicy(**rows)


def _approval(proposal: Proposal, rows: dict[str, Any], policy: ap.ApprovalPolicy) -> ap.Approval:
    rows = dict(rows)
    other = rows.pop("for", None)
    asked = replace(proposal, **other) if other else proposal
    made = ap.request(asked, "ap-1", "asked", rows.pop("requested_at"), policy)
    return replace(made, **rows)


def run_approval(case: dict[str, Any]) -> None:
    policy = _policy(case.get("policy"))
    expect = case["expect"]
    if case["op"] == "needs":
        got = ap.needs_approval(case["action"], case.get("step"), case["source"], policy)
        assert (got is None) == (expect["needs"] is None), got
        assert expect["needs"] is None or expect["needs"] in (got or "")
        return
    proposal = Proposal(**PROPOSAL)
    approval = _approval(proposal, {"requested_at": case["requested_at"], **case.get("approval", {})}, policy)
    if case["op"] == "request":
        result = approval
    elif case["op"] == "expire":
        result = ap.expire(approval, case["now"])
    else:
        answer = ap.approve if case["op"] == "approve" else ap.reject
        if "error" in expect:
            with pytest.raises(ap.ApprovalError) as caught:
                answer(approval, case["by"], case["role"], case["now"], case.get("note", ""), policy)
            assert caught.value.code == expect["error"] and caught.value.status == expect["http_status"]
            return
        result = answer(approval, case["by"], case["role"], case["now"], case.get("note", ""), policy)
    for key, value in expect.items():
        assert getattr(result, key) == value, (key, result)


def run_mediate(case: dict[str, Any]) -> None:
    proposal = Proposal(**{**PROPOSAL, **case.get("proposal", {})})
    rows = dict(case.get("context", {}))
    checked = check_guard_text(yaml.safe_dump(rows.pop("settings", {})))
    assert checked.ok and checked.settings is not None, checked.lines
    breaker = rows.pop("breaker", {})
    context = GuardContext(
        tenant=rows.pop("tenant", "acme"),
        allowed=ALLOWED,
        settings=checked.settings,
        history=_records(rows.pop("history", [])),
        breaker=BreakerState(open=breaker.get("open", False), reason=breaker.get("reason", "")),
        kill_switch=rows.pop("kill_switch", False),
        approval=(
            _approval(proposal, rows.pop("approval"), checked.settings.approval)
            if "approval" in rows
            else None
        ),
    )
    assert rows == {}, f"unknown context keys {sorted(rows)}"
    _check_verdict(mediate(proposal, context, case["now"]), case["expect"])


def _spec(rows: dict[str, Any]) -> ScheduleSpec:
    checked = check_schedule_text(yaml.safe_dump(rows))
    assert checked.schedule is not None, checked.lines
    return checked.schedule.spec


def run_next_run(case: dict[str, Any]) -> None:
    spec, tz = _spec(case["spec"]), case.get("tz")
    after = _ts(case["after"])
    runs = []
    while len(runs) < max(1, len(case["expect"])):
        at = next_run(spec, after, tz)
        if at is None:
            break
        assert at > after and math.isfinite(at)
        runs.append(at)
        after = at
    assert runs == [_ts(t) for t in case["expect"]]


def run_due_runs(case: dict[str, Any]) -> None:
    spec, tz = _spec(case["spec"]), case.get("tz")
    last, now = _ts(case["last_run"]), _ts(case["now"])
    got = due_runs(spec, last, now, case["policy"], tz, case.get("grace_s", 60.0))
    assert got == [_ts(t) for t in case["expect"]]
    if "latest" in case:
        want = None if case["latest"] is None else _ts(case["latest"])
        assert latest_due(spec, last, now, tz) == want


RUNNERS = {
    "budget": run_budget,
    "breaker": run_breaker,
    "approval": run_approval,
    "mediate": run_mediate,
    "next_run": run_next_run,
    "due_runs": run_due_runs,
}


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_guard_case(kind: str, case: dict[str, Any]) -> None:
    RUNNERS[kind](case)
