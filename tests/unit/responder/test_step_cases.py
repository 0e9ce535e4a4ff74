"""The step runbook state machine (``step_core.next_step``) through the case files in
``step_cases/*.yaml``: each file is a runbook file (its ``runbooks`` list, read by
``step_file.check_step_text`` as ``infragent runbooks check`` reads it) with ``cases`` beside it.

A case runs one runbook for one incident: a list of ``{at, observe, expect}`` calls, then ``end``,
the run's state at the end. ``observe`` is an observation (``start``, ``tick``, ``alert_resolved``,
``check_up``, ``signal_down``, or a one-key mapping: ``{start: {dry_run: true}}``,
``{command_result: ok | {status, output}}``, ``{step_done: ok | {outcome, detail}}``,
``{refused: reason}``, ``{needs_approval: reason}``, ``{approval: approved | {decision, by}}``,
``{llm: {action, target, params, rationale}}``, ``{cancel: by | {by, reason}}``); one that answers
an instruction takes the ``seq`` of the step in progress unless it gives ``seq``. ``expect`` names
the instruction's ``kind`` (``instruction``) and any of its fields; ``status`` and ``step`` are the
run's status and the instruction's step; ``command`` is compared key by key; ``then`` is a
would-send's next instruction kind; a key ending in ``_has`` is a substring of that field.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.model import Decision
from infragent.responder.run_codec import decode_run, encode_run
from infragent.responder.step_core import new_run, next_step, resume
from infragent.responder.step_file import check_step_text
from infragent.responder.step_run import (
    AlertResolved,
    ApprovalDecision,
    Cancel,
    CheckUp,
    CommandResult,
    Instruction,
    LlmProposal,
    NeedsApproval,
    Observation,
    Refused,
    Run,
    SignalDown,
    Start,
    StepDone,
    Tick,
    WouldSend,
)
from infragent.responder.steps import IncidentFacts

CASE_DIR = Path(__file__).parent / "step_cases"
FILES = sorted(CASE_DIR.glob("*.yaml"))
DEFAULT_FACTS = {
    "incident_id": "inc-1",
    "severity": "critical",
    "event_type": "app_down",
    "service": "web",
    "node_id": "node-1",
}


def _cases() -> list[Any]:
    out = []
    for path in FILES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            out.append(pytest.param(path, case, id=f"{path.stem}: {case['name']}"))
    return out


def _observation(spec: Any, run: Run) -> Observation:
    current = getattr(resume(run), "seq", 0)
    if isinstance(spec, str):
        simple: dict[str, Observation] = {
            "start": Start(),
            "tick": Tick(),
            "alert_resolved": AlertResolved(),
            "check_up": CheckUp(),
            "signal_down": SignalDown(),
        }
        return simple[spec]
    spec = dict(spec)
    seq = spec.pop("seq", current)
    ((kind, value),) = spec.items()
    if kind == "start":
        return Start(**value)
    if kind == "command_result":
        return CommandResult(seq, value) if isinstance(value, str) else CommandResult(seq, **value)
    if kind == "step_done":
        return StepDone(seq, value) if isinstance(value, str) else StepDone(seq, **value)
    if kind == "refused":
        return Refused(seq, value)
    if kind == "needs_approval":
        return NeedsApproval(seq, value)
    if kind == "approval":
        return ApprovalDecision(seq, value) if isinstance(value, str) else ApprovalDecision(seq, **value)
    if kind == "llm":
        decision = Decision(source="llm", rationale=value.pop("rationale", "because"), **value)
        return LlmProposal(seq, decision)
    if kind == "cancel":
        return Cancel(value) if isinstance(value, str) else Cancel(**value)
    raise AssertionError(f"unknown observation {kind!r}")


def _compare(got: Any, expected: dict[str, Any], run: Run, where: str) -> None:
    for key, want in expected.items():
        if key == "instruction":
            actual: Any = got.kind
        elif key == "status":
            actual = str(run.status)
        elif key == "step":
            actual = getattr(got, "step_id", None)
        elif key == "then":
            actual = got.then.kind
        elif key == "command":
            command = asdict(got.command)
            actual = {k: command[k] for k in want}
        elif key.endswith("_has"):
            field = str(getattr(got, key.removesuffix("_has")))
            assert want in field, f"{where}: {key}: {want!r} not in {field!r}"
            continue
        else:
            actual = getattr(got, key)
        assert actual == want, f"{where}: {key} is {actual!r}, expected {want!r} (instruction: {got})"


def _end(run: Run, expected: dict[str, Any], where: str) -> None:
    for key, want in expected.items():
        if key == "results":
            actual: Any = [f"{r.step_id}:{r.outcome}" for r in run.results]
        elif key == "status":
            actual = str(run.status)
        elif key == "verified":
            actual = run.verified_at is not None
        elif key == "commands":
            actual = [f"{r.command.action} {r.command.target}" for r in run.results if r.command is not None]
        elif key.endswith("_has"):
            field = str(getattr(run, key.removesuffix("_has")))
            assert want in field, f"{where}: {key}: {want!r} not in {field!r}"
            continue
        else:
            actual = getattr(run, key)
            actual = list(actual) if isinstance(actual, tuple) else actual
        assert actual == want, f"{where}: {key} is {actual!r}, expected {want!r}"


def test_there_are_enough_cases_of_every_kind() -> None:
    names = {p.stem for p in FILES}
    assert {"success", "failures", "approval", "dry_run", "cancel", "loops"} <= names
    assert len(_cases()) >= 25


def test_every_case_file_is_a_valid_runbook_file() -> None:
    for path in FILES:
        checked = check_step_text(path.read_text(encoding="utf-8"), path.name)
        assert checked.ok, checked.lines


@pytest.mark.parametrize(("path", "case"), _cases())
def test_case(path: Path, case: dict[str, Any]) -> None:
    runbooks = {rb.name: rb for rb in check_step_text(path.read_text(encoding="utf-8"), path.name).runbooks}
    runbook = runbooks[case["runbook"]]
    facts = IncidentFacts(**{**DEFAULT_FACTS, **case.get("facts", {})})
    run = new_run(case.get("run_id", "run-1"), runbook, facts, 0.0)
    instruction: Instruction | None = None
    for i, call in enumerate(case["steps"]):
        where = f"{path.name}: {case['name']}: call {i + 1} ({call['observe']})"
        run, instruction = next_step(runbook, run, _observation(call["observe"], run), float(call["at"]))
        _compare(instruction, call.get("expect", {}), run, where)
        # what the store keeps of the run reads back as the same run (``runbook_runs.state``)
        assert decode_run(json.loads(json.dumps(encode_run(run)))) == run, f"{where}: codec round trip"
        if not run.ended and instruction.kind != "idle":
            waiting = instruction
            while isinstance(waiting, WouldSend):
                waiting = waiting.then
            assert resume(run) == waiting, f"{where}: resume gives another instruction"
    _end(run, case.get("end", {}), f"{path.name}: {case['name']}: end")
