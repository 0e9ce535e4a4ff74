"""``check_runbook_text``: every mistake of a runbook file at its 1-based line and column, all in one
pass, and the runbooks of a valid file; ``parse_runbooks`` (what the server loads) agrees with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infragent.errors import ConfigError
from infragent.model import Severity
from infragent.responder.runbook_check import MAX_RUNBOOK_BYTES, check_runbook_text
from infragent.responder.runbooks import Runbook, load_runbooks, parse_runbooks

VALID = """\
runbooks:
  - name: nothing-when-recovered
    match: {type: app_recovered}
    action: none
    target: null
  - name: restart-web
    match:
      type: [app_down, app_slow]
      service: "web*"
      severity: [warning, critical]
    action: restart
    target: "{service}"
    params: {name: "{service}", node: "{node_id}", why: "{type}"}
  - action: escalate
    match: {severity: "*"}
"""


def test_a_valid_file_gives_its_runbooks_with_the_defaults_filled_in() -> None:
    checked = check_runbook_text(VALID)
    assert checked.ok and checked.problems == [] and checked.lines == []
    assert checked.runbooks == [
        Runbook("nothing-when-recovered", "none", types=("app_recovered",), target=None),
        Runbook(
            "restart-web",
            "restart",
            types=("app_down", "app_slow"),
            services=("web*",),
            severities=(Severity.WARNING, Severity.CRITICAL),
            target="{service}",
            params={"name": "{service}", "node": "{node_id}", "why": "{type}"},
        ),
        Runbook("runbook-2", "escalate", severities=tuple(Severity)),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", ["1:1: the text is empty"], id="empty"),
        pytest.param("  \n\t\n", ["1:1: the text is empty"], id="blank"),
        pytest.param("# only a comment\n", ["1:1: the document is empty"], id="comment-only"),
        pytest.param("runbooks: [\n", ["2:1: not valid YAML"], id="yaml-syntax"),
        pytest.param("runbooks:\n  - action: 'x\n", ["3:1: not valid YAML"], id="unclosed-quote"),
        pytest.param(
            "- a\n- b\n", ["1:1: expected a mapping with a 'runbooks' list, not a list"], id="root-list"
        ),
        pytest.param(
            "rules: []\n", ["1:1: expected a mapping with a 'runbooks' list; there is no"], id="no-key"
        ),
        pytest.param(
            "runbooks: 3\n",
            ["1:11: expected a mapping with a 'runbooks' list; 'runbooks' is a number"],
            id="not-list",
        ),
        pytest.param(
            "runbooks:\n",
            ["1:10: expected a mapping with a 'runbooks' list; 'runbooks' is null"],
            id="null-list",
        ),
        pytest.param(
            "runbooks:\n  - restart\n", ["2:5: runbooks[0] must be a mapping, not a string"], id="item-scalar"
        ),
        pytest.param(
            "runbooks:\n  - match: {}\n", ["2:5: runbooks[0].action: required, a string"], id="no-action"
        ),
        pytest.param(
            "runbooks:\n  - action: ''\n", ["2:13: runbooks[0].action must not be empty"], id="empty-action"
        ),
        pytest.param(
            "runbooks:\n  - action: 5\n",
            ["2:13: runbooks[0].action must be a string, not a number"],
            id="number-action",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    when: y\n    then: z\n",
            [
                "3:5: runbooks[0]: unknown keys are refused: 'when'",
                "4:5: runbooks[0]: unknown keys are refused: 'then'",
            ],
            id="unknown-keys",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    action: y\n",
            ["3:5: duplicate key 'action' in runbooks[0]"],
            id="dup-key",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    match: [a]\n",
            ["3:12: runbooks[0].match must be a mapping, not a list"],
            id="match-list",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    match: {host: a}\n",
            ["3:13: runbooks[0].match: may only hold type, service and severity, not 'host'"],
            id="match-key",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    match: {type: 3}\n",
            ["3:19: runbooks[0].match.type: must be a string or a list of strings, not a number"],
            id="type-number",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    match: {service: [web, 7]}\n",
            [
                "3:28: runbooks[0].match.service: must be a string or a list of strings,"
                " not a list holding a number"
            ],
            id="service-item",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    match: {type: []}\n",
            ["3:19: runbooks[0].match.type: an empty list would match nothing"],
            id="empty-list",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    match: {severity: [warning, fatal]}\n",
            ["3:33: runbooks[0].match.severity: must be info, warning or critical, not 'fatal'"],
            id="severity",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    params: {grace: 5}\n",
            ["3:21: runbooks[0].params.grace must be a string, not a number"],
            id="param-number",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    params: [a]\n",
            ["3:13: runbooks[0].params must be a mapping"],
            id="params-list",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    target: [a]\n",
            ["3:13: runbooks[0].target must be a string"],
            id="target-list",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    target: '{host}'\n",
            ["3:13: runbooks[0].target: unknown placeholder {host}; use {service}, {type}, {node_id}"],
            id="placeholder",
        ),
        pytest.param(
            "runbooks:\n  - action: x\n    params: {a: 'x{'}\n",
            ["3:17: runbooks[0].params.a: Single '{' encountered in format string"],
            id="brace",
        ),
        pytest.param(
            "runbooks:\n  - name: web\n    action: x\n  - name: web\n    action: y\n",
            ["4:11: runbooks[1].name: duplicate runbook name 'web' (first at runbooks[0], line 2)"],
            id="dup-name",
        ),
        pytest.param(
            "runbooks:\n  - name: [a]\n    action: x\n",
            ["2:11: runbooks[0].name must be a string or number"],
            id="name-list",
        ),
    ],
)
def test_each_kind_of_problem_at_its_line_and_column(text: str, expected: list[str]) -> None:
    checked = check_runbook_text(text)
    assert not checked.ok and checked.runbooks == []
    assert len(checked.lines) == len(expected), checked.lines
    for line, prefix in zip(checked.lines, expected, strict=True):
        assert line.startswith(prefix), (line, prefix)


def test_every_problem_of_a_file_in_one_pass_in_order_of_place() -> None:
    text = (
        "runbooks:\n"
        "  - name: a\n"
        "    action: 3\n"
        "    match: {type: [1, x], severity: fatal}\n"
        "    params: {p: 1}\n"
        "  - name: a\n"
        "    bogus: true\n"
    )
    assert [line.split(": ", 1)[0] for line in check_runbook_text(text).lines] == [
        "3:13",  # action is a number
        "4:20",  # a type that is a number
        "4:37",  # severity fatal
        "5:17",  # a parameter that is a number
        "6:5",  # no action in the second runbook (at the runbook)
        "6:11",  # its name is taken
        "7:5",  # unknown key
    ]


def test_text_over_the_size_cap_is_refused_without_parsing() -> None:
    text = "runbooks: []\n" + "#" * MAX_RUNBOOK_BYTES
    assert check_runbook_text(text).lines == [f"1:1: the text is over 256 KB ({MAX_RUNBOOK_BYTES} bytes)"]
    assert check_runbook_text("runbooks: []\n").ok  # no runbooks is valid: everything goes to the LLM


def test_merge_keys_and_anchors_check_as_they_load() -> None:
    text = "base: &base {action: restart, match: {type: app_down}}\nrunbooks:\n  - <<: *base\n    name: web\n"
    [rb] = check_runbook_text(text).runbooks
    assert (rb.name, rb.action, rb.types) == ("web", "restart", ("app_down",))


AGREEMENT = [
    VALID,
    "runbooks: []\n",
    "runbooks:\n  - action: restart\n",
    "runbooks:\n  - {name: 7, action: restart, target: ''}\n",
    "",
    "runbooks: 3\n",
    "runbooks:\n  - match: {}\n",
    "runbooks:\n  - action: x\n    when: y\n",
    "runbooks:\n  - action: x\n    match: {severity: fatal}\n",
    "runbooks:\n  - action: x\n    match: {host: a}\n",
    "runbooks:\n  - action: x\n    params: {a: 1}\n  - action: y\n    params: {a: '{x}'}\n",
    "runbooks: [\n",
]


@pytest.mark.parametrize("text", AGREEMENT)
def test_parse_runbooks_and_the_check_agree(text: str, tmp_path: Path) -> None:
    """What the form accepts the server loads, identically; what it refuses stops start-up with
    the very problems the form lists, each at its line:column."""
    checked = check_runbook_text(text)
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    if checked.ok:
        assert parse_runbooks(text) == checked.runbooks == load_runbooks(path)
        return
    with pytest.raises(ConfigError) as caught:
        parse_runbooks(text, "rb.yaml")
    assert caught.value.key == "rb.yaml"
    assert caught.value.message == "; ".join(checked.lines)
    with pytest.raises(ConfigError, match=re.escape("; ".join(checked.lines))):
        load_runbooks(path)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_bytes(b"runbooks: [\xff]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_runbooks(path)
