"""What the case files do not show: a run taken over after a crash resumes with the same
instruction (same command key), a runbook changed under a run fails it cleanly, the incident's
fields (matching, templates that fill text and nothing else), and the escalation summary."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infragent.incidents.model import Incident, IncidentStatus
from infragent.responder.step_core import new_run, next_step, resume, summarize
from infragent.responder.step_run import (
    AwaitApproval,
    CommandResult,
    Fail,
    Idle,
    RunStatus,
    SendCommand,
    Start,
    Tick,
)
from infragent.responder.steps import (
    Act,
    IncidentFacts,
    IncidentMatch,
    OnFailure,
    Step,
    StepRunbook,
    Verify,
    first_step_runbook,
    render,
    unknown_placeholders,
)

FACTS = IncidentFacts("inc-1", "critical", event_type="app_down", service="web", node_id="n1")
RESTART = StepRunbook("restart", (Step("restart", Act("restart")), Step("verify", Verify())))


def _incident(source: str, labels: dict[str, str], rule: str | None = None) -> Incident:
    return Incident(
        id="inc-9",
        client_id="c",
        fingerprint="f",
        title="t",
        severity="warning",
        status=IncidentStatus.OPEN,
        source=source,  # type: ignore[arg-type]
        labels=labels,
        opened_at=1.0,
        updated_at=1.0,
        rule_name=rule,
    )


def test_a_run_taken_over_resumes_with_the_same_instruction_and_command_key() -> None:
    run = new_run("r-7", RESTART, FACTS, 0.0)
    assert run.status is RunStatus.QUEUED and isinstance(resume(run), Idle)
    run, sent = next_step(RESTART, run, Start(), 1.0)
    assert isinstance(sent, SendCommand) and sent.command.key == "r-7:1"
    # the responder dies here; the next one reads the stored run and carries on with the same send
    assert resume(run) == sent
    run, idle = next_step(RESTART, run, Tick(), 30.0)
    assert isinstance(idle, Idle) and idle.until == sent.deadline and resume(run) == sent


def test_a_run_whose_step_left_the_runbook_fails_and_says_why() -> None:
    run, _ = next_step(RESTART, new_run("r", RESTART, FACTS, 0.0), Start(), 0.0)
    changed = replace(RESTART, steps=(Step("reboot", Act("reboot")),))
    run, got = next_step(changed, run, CommandResult(1, "ok"), 2.0)
    assert isinstance(got, Fail) and "step 'restart' is no longer in runbook 'restart'" in got.reason
    assert run.status is RunStatus.FAILED and run.outcome == "failed" and run.ended_at == 2.0


def test_a_goto_target_that_left_the_runbook_fails_the_run() -> None:
    runbook = StepRunbook("r", (Step("a", Act("restart"), on_failure=OnFailure("goto", "gone")),))
    run, _ = next_step(runbook, new_run("r", runbook, FACTS, 0.0), Start(), 0.0)
    run, got = next_step(runbook, run, CommandResult(1, "error"), 1.0)
    assert isinstance(got, Fail) and "goto step 'gone'" in got.reason and run.outcome == "failed"


def test_a_runbook_level_approval_requirement_holds_the_command() -> None:
    runbook = replace(RESTART, approval="required", approval_expiry_s=60.0)
    run, got = next_step(runbook, new_run("r", runbook, FACTS, 0.0), Start(), 5.0)
    assert isinstance(got, AwaitApproval) and got.expires_at == 65.0
    assert run.status is RunStatus.WAITING_APPROVAL and run.cursor is not None and run.cursor.deadline == 65.0


def test_facts_of_an_event_incident_and_of_an_alert_incident() -> None:
    event = IncidentFacts.of(_incident("event", {"type": "app_down", "service": "web", "node_id": "n1"}))
    assert (event.event_type, event.service, event.node_id, event.rule) == ("app_down", "web", "n1", None)
    alert = IncidentFacts.of(_incident("alert", {"host": "db-1", "service": "pg"}, rule="DiskFull"))
    assert (alert.rule, alert.event_type, alert.service, alert.node_id) == ("DiskFull", None, "pg", "db-1")
    assert alert.severity == "warning" and alert.incident_id == "inc-9"


@pytest.mark.parametrize(
    ("match", "matches"),
    [
        (IncidentMatch(), True),
        (IncidentMatch(event_types=("app_*",), services=("web",)), True),
        (IncidentMatch(rules=("*",)), False),  # a given key needs the field: an event's incident has no rule
        (IncidentMatch(severities=("warning",)), False),
        (IncidentMatch(labels=(("env", "prod*"),)), True),
        (IncidentMatch(labels=(("env", "prod*"), ("zone", "*"))), False),  # a label it lacks
    ],
)
def test_matching_by_incident_fields(match: IncidentMatch, matches: bool) -> None:
    facts = replace(FACTS, labels={"env": "production"})
    assert match.matches(facts) is matches


def test_the_first_matching_runbook_wins() -> None:
    a = StepRunbook("a", (), IncidentMatch(services=("db",)))
    b = StepRunbook("b", (), IncidentMatch(services=("web*",)))
    c = StepRunbook("c", ())
    assert first_step_runbook([a, b, c], FACTS) is b
    assert first_step_runbook([a], FACTS) is None


def test_templates_fill_in_fields_and_nothing_else() -> None:
    facts = replace(FACTS, labels={"host": "h1"})
    assert render("{service} on {node_id} ({type}, {labels[host]})", facts) == "web on n1 (app_down, h1)"
    assert render("{rule}", facts) is None  # no value: the caller fails the step
    assert render("{labels[zone]}", facts) is None
    assert render("{service.__class__}", facts) is None  # never an attribute of a value
    assert render("{0}", facts) is None
    assert unknown_placeholders("{service.__class__} {labels[x]} {nope}") == ["service.__class__", "nope"]
    with pytest.raises(ValueError, match="conversion or format spec"):
        unknown_placeholders("{service!r}")
    with pytest.raises(ValueError, match="conversion or format spec"):
        unknown_placeholders("{service:>30}")


def test_the_summary_names_each_step_its_command_and_outcome() -> None:
    run, _ = next_step(RESTART, new_run("r", RESTART, FACTS, 0.0), Start(), 0.0)
    assert summarize(run) == "no step ran"
    run, _ = next_step(RESTART, run, CommandResult(1, "error", "unit not found"), 1.0)
    assert summarize(run) == "restart (act restart web): failed (error: unit not found)"


def test_a_long_loop_is_cut_in_the_middle_of_the_summary() -> None:
    runbook = StepRunbook(
        "loop", (Step("restart", Act("restart"), OnFailure("goto", "restart")),), max_executions=30
    )
    run, _ = next_step(runbook, new_run("r", runbook, FACTS, 0.0), Start(), 0.0)
    for seq in range(1, 31):
        run, _ = next_step(runbook, run, CommandResult(seq, "error"), float(seq))
    assert len(run.results) == 30 and run.outcome == "escalated"
    clauses = summarize(run).split("; ")
    assert len(clauses) == 13 and clauses[3] == "… 18 more …"
    assert all(c == "restart (act restart web): failed (error)" for c in clauses[:3] + clauses[4:])
