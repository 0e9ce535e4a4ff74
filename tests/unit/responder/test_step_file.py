"""``check_step_text``: every mistake of a step runbook file at its 1-based line and column, all in
one pass; a valid file's runbooks with the defaults filled in; today's single-action entries read
as before and turned into one-step runbooks; and the example of docs/runbooks.md is valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infragent.errors import ConfigError
from infragent.model import Severity
from infragent.responder.runbooks import Runbook
from infragent.responder.step_file import (
    check_step_text,
    from_single_action,
    load_step_runbooks,
    parse_step_runbooks,
)
from infragent.responder.steps import (
    Act,
    AskLlm,
    Check,
    Escalate,
    IncidentMatch,
    Notify,
    OnFailure,
    OnSuccess,
    Step,
    StepRunbook,
    Verify,
    Wait,
)
from infragent.rules.model import Matcher, Selector, Threshold

DOCS = Path(__file__).resolve().parents[3] / "docs" / "runbooks.md"

VALID = """\
base: &restart {action: restart, target: "{service}"}
runbooks:
  - name: web
    match:
      event_type: [app_down, app_slow]
      service: "web*"
      severity: [warning, critical]
      labels: {env: prod, zone: "eu-*"}
    approval: required
    approval_expiry: 10m
    dry_run: true
    max_executions: 8
    steps:
      - id: confirm
        check: {probe: web-http, expect: down}
        timeout: 10s
        on_failure: next
        on_success: goto restart
      - id: restart
        act: {<<: *restart, params: {mode: graceful}, on: sdk}
        approval: auto
        on_failure: goto ask
      - wait: 15s
      - id: verify
        verify: {signal: alert}
        timeout: 2m
      - notify: "{service} is back"
      - id: ask
        ask_llm: {question: "what next for {service}?"}
      - escalate: null
  - name: disk
    match: {rule: "Disk*", severity: "*"}
    steps:
      - check: {metric: 'disk.used{mount="/"}', function: last, window: 1m, op: ">", value: 0.9}
      - act: clean_tmp
      - verify: null
  - name: legacy
    match: {type: app_down, severity: critical}
    action: restart
    params: {name: "{service}"}
"""


def test_a_valid_file_gives_its_runbooks_with_the_defaults_filled_in() -> None:
    checked = check_step_text(VALID)
    assert checked.ok and checked.lines == []
    web, disk, legacy = checked.runbooks
    assert web == StepRunbook(
        "web",
        (
            Step(
                "confirm",
                Check(probe="web-http", expect="down"),
                OnFailure("next"),
                10.0,
                OnSuccess("goto", "restart"),
            ),
            Step(
                "restart",
                Act("restart", "{service}", {"mode": "graceful"}, on="sdk", approval="auto"),
                OnFailure("goto", "ask"),
            ),
            Step("step-3", Wait(15.0)),
            Step("verify", Verify("alert"), timeout_s=120.0),
            Step("step-5", Notify("{service} is back")),
            Step("ask", AskLlm("what next for {service}?")),
            Step("step-7", Escalate()),
        ),
        IncidentMatch(
            event_types=("app_down", "app_slow"),
            services=("web*",),
            severities=("warning", "critical"),
            labels=(("env", "prod"), ("zone", "eu-*")),
        ),
        approval="required",
        approval_expiry_s=600.0,
        dry_run=True,
        max_executions=8,
    )
    condition = Threshold(Selector("disk.used", (Matcher("mount", "=", "/"),)), "last", 60.0, ">", 0.9)
    assert disk.match == IncidentMatch(rules=("Disk*",))
    assert [s.body for s in disk.steps] == [Check(condition=condition), Act("clean_tmp"), Verify()]
    assert (disk.approval, disk.approval_expiry_s, disk.dry_run, disk.max_executions) == (
        "auto",
        900.0,
        False,
        20,
    )
    assert legacy == StepRunbook(
        "legacy",
        (Step("act", Act("restart", "{service}", {"name": "{service}"})),),
        IncidentMatch(event_types=("app_down",), services=("*",), severities=("critical",)),
    )


def test_single_action_runbooks_become_one_step_runbooks() -> None:
    (escalate, nothing, restart) = parse_step_runbooks(
        "runbooks:\n  - {name: e, action: escalate}\n  - {name: n, action: none}\n"
        "  - {name: r, action: restart}\n"
    )
    assert [s.kind for s in escalate.steps] == ["escalate"]
    assert nothing.steps == ()
    assert restart.steps == (Step("act", Act("restart")),) and restart.steps[0].on_failure == OnFailure()
    assert restart.match == IncidentMatch(event_types=("*",), services=("*",))  # event incidents only


def test_from_single_action_keeps_what_the_runbook_matched() -> None:
    rb = Runbook("r", "restart", types=("app_down",), severities=(Severity.CRITICAL,), target=None)
    assert from_single_action(rb) == StepRunbook(
        "r",
        (Step("act", Act("restart", None, {})),),
        IncidentMatch(event_types=("app_down",), services=("*",), severities=("critical",)),
    )


FILE = "runbooks:\n  - name: r\n    steps:\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runbooks:\n  - name: r\n    §colour: red\n    steps: [{act: restart}]\n", "unknown key 'colour'"),
        ("runbooks:\n  - match: {§type: app_down}\n    steps: [{act: x}]\n", "as 'event_type', not 'type'"),
        ("runbooks:\n  - match: {severity: [warning, §huge]}\n    steps: [{act: x}]\n", "not 'huge'"),
        ("runbooks:\n  - match: {§colour: red}\n    steps: [{act: x}]\n", "unknown key 'colour'; match has"),
        ("runbooks:\n  - approval: §maybe\n    steps: [{act: x}]\n", "one of: required, auto"),
        ("runbooks:\n  - approval_expiry: §2d\n    steps: [{act: x}]\n", "approval_expiry: at most 24h"),
        ("runbooks:\n  - max_executions: §0\n    steps: [{act: x}]\n", "from 1 to 100, not 0"),
        ("runbooks:\n  - max_executions: §1\n    steps: [{act: x}, {wait: 1s}]\n", "fewer than its 2 steps"),
        ("runbooks:\n  - dry_run: §yes please\n    steps: [{act: x}]\n", "must be true or false"),
        ("runbooks:\n  - §name: r\n", "needs 'steps' (or 'action'"),
        ("runbooks:\n  - steps: §[]\n", "at least one step"),
        ("runbooks:\n  - §{name: r, action: restart, steps: [{act: x}]}\n", "not both"),
        (
            "runbooks:\n  - {name: r, steps: [{act: x}]}\n  - {name: §r, action: restart}\n",
            "duplicate runbook",
        ),
        ("runbooks:\n  - {action: restart, §colour: red}\n", "unknown keys are refused: 'colour'"),
        (FILE + "      - §{id: a}\n", "a step needs one kind key"),
        (FILE + "      - {act: x, §wait: 1s}\n", "one kind per step, not both act and wait"),
        (FILE + "      - {act: x, §colour: red}\n", "unknown key 'colour'; a step has one of"),
        (FILE + "      - {id: §'a b', act: x}\n", "use letters, digits"),
        (
            FILE + "      - {id: a, act: x}\n      - {id: §a, wait: 1s}\n",
            "duplicate step id 'a' (first at line 4)",
        ),
        (
            FILE + "      - {act: x, on_failure: §goto b}\n",
            "on_failure: goto 'b': no step has this id (ids: step-1)",
        ),
        (
            FILE + "      - {act: x, on_failure: §retry}\n",
            "must be next, escalate or 'goto <step id>', not 'retry'",
        ),
        (FILE + "      - {act: x, on_success: §escalate}\n", "must be next, complete or 'goto <step id>'"),
        (FILE + "      - {act: x, on_success: §goto c}\n", "on_success: goto 'c': no step has this id"),
        (FILE + "      - {escalate: x, §on_success: next}\n", "an escalate step ends the run"),
        (FILE + "      - {wait: 1s, §timeout: 5s}\n", "a wait step takes no timeout"),
        (FILE + "      - {escalate: x, §on_failure: next}\n", "a escalate step cannot fail"),
        (FILE + "      - {verify: any, §approval: required}\n", "approval is for act and ask_llm steps"),
        (FILE + "      - {act: x, timeout: §-1s}\n", "negative duration"),
        (FILE + "      - {act: x, timeout: §0s}\n", "must be longer than 0"),
        (FILE + "      - {check: §{probe: a, metric: b}}\n", "either probe"),
        (FILE + "      - {check: {probe: a, §window: 1m}}\n", "window belongs to a metric condition"),
        (
            FILE
            + "      - {check: {metric: a, function: last, window: 1m, op: '>', value: 1, §expect: up}}\n",
            "expect belongs to a probe",
        ),
        (
            FILE + "      - {check: {metric: 'cpu{host§}', function: last, window: 1m, op: '>', value: 1}}\n",
            "bad selector",
        ),
        (FILE + "      - {check: §{metric: cpu}}\n", "missing the required key 'function'"),
        (FILE + "      - {check: {probe: a, expect: §sideways}}\n", "one of: up, down"),
        (FILE + "      - {act: §{target: x}}\n", "missing the required key 'action'"),
        (FILE + "      - {act: §none}\n", "'none' is not an action"),
        (FILE + "      - {act: {action: x, on: §cloud}}\n", "one of: agent, sdk"),
        (FILE + "      - {act: {action: x, target: §'{svc}'}}\n", "unknown placeholder {svc}"),
        (FILE + "      - {act: {action: x, params: {a: §'{service'}}}\n", "for a literal brace"),
        (FILE + "      - {act: {action: x, params: {a: §1}}}\n", "params.a must be a string"),
        (FILE + "      - {wait: §2d}\n", "at most 24h"),
        (FILE + "      - {wait: §0}\n", "must be longer than 0"),
        (FILE + "      - {verify: §sometimes}\n", "alert, check or any, not 'sometimes'"),
        (FILE + "      - {notify: §42}\n", "must be a string, not a number"),
        (FILE + "      - {notify: §'{service!r}'}\n", "may not carry a conversion"),
        (FILE + "      - {ask_llm: {§prompt: x}}\n", "unknown key 'prompt'"),
        (FILE + "      - {escalate: §'{labels}'}\n", "unknown placeholder {labels}"),
        ("runbooks:\n  - steps: [{act: x}\n§", "not valid YAML"),
    ],
)
def test_each_mistake_is_reported_at_its_line_and_column(text: str, message: str) -> None:
    at = text.index("§")
    clean = text.replace("§", "")
    where = (text[:at].count("\n") + 1, at - text[:at].rfind("\n"))
    checked = check_step_text(clean, "rb.yaml")
    assert not checked.ok and checked.runbooks == []
    found = [p for p in checked.problems if message in p.message]
    assert found, checked.lines
    assert (found[0].line, found[0].column) == where, checked.lines
    assert str(found[0]).startswith(f"rb.yaml:{where[0]}:{where[1]}: ")


def test_every_mistake_of_a_file_is_reported_in_one_pass_in_order() -> None:
    text = (
        FILE + "      - {act: {action: x, target: '{svc}'}}\n      - {wait: -1s}\n      - {verify: maybe}\n"
    )
    checked = check_step_text(text)
    assert [line.split(":")[0] for line in checked.lines] == ["4", "5", "6"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the text is empty"),
        ("runbooks: 3\n", "'runbooks' is a number"),
        ("- a\n", "expected a mapping with a 'runbooks' list, not a list"),
        ("other: 1\n", "there is no 'runbooks' key"),
        ("runbooks: []\n" + "#" * (256 * 1024), "over 256 KB"),
    ],
)
def test_a_file_that_is_not_a_runbook_file(text: str, message: str) -> None:
    checked = check_step_text(text)
    assert any(message in line for line in checked.lines), checked.lines


def test_the_loaders_raise_config_error_naming_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rb.yaml: 4:18: .*unknown placeholder"):
        parse_step_runbooks(FILE + "      - {notify: '{x}'}\n", "rb.yaml")
    with pytest.raises(ConfigError, match="cannot read runbooks"):
        load_step_runbooks(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_step_runbooks(tmp_path / "bad.yaml")
    (tmp_path / "ok.yaml").write_text(FILE + "      - {act: restart}\n")
    assert [rb.name for rb in load_step_runbooks(tmp_path / "ok.yaml")] == ["r"]


def test_the_example_of_the_docs_is_a_valid_file() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Runbooks as steps") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example is not None
    checked = check_step_text(example.group(1), "docs/runbooks.md")
    assert checked.ok, checked.lines
    kinds = {s.kind for rb in checked.runbooks for s in rb.steps}
    assert kinds == {"check", "act", "wait", "verify", "notify", "ask_llm", "escalate"}
