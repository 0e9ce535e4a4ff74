"""The rule file format: every kind of mistake is reported at the right line and column, every
mistake of a file at once, and specs round-trip.

Each bad input marks the expected position with ``§`` (removed before parsing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infragent.rules.errors import Problem, RuleFileError
from infragent.rules.files import parse_rule_file, parse_rule_text, rule_from_spec, rule_to_spec
from infragent.rules.model import Rule, Threshold
from infragent.rules.testfile import parse_test_text

MARK = "§"

HEAD = """groups:
  - name: host
    rules:
"""
GOOD_RULE = """      - alert: HighCpu
        metric: system.cpu.utilization
        function: avg
        window: 1m
        op: ">"
        value: 0.9
"""


def _where(text: str) -> tuple[str, int, int]:
    """The text without its mark, and the 1-based line and column of the mark."""
    at = text.index(MARK)
    before = text[:at]
    line = before.count("\n") + 1
    column = at - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), line, column


BAD: list[tuple[str, str, str]] = [
    ("unknown kind", GOOD_RULE + "        kind: §threshhold\n", "unknown kind 'threshhold'"),
    (
        "unknown key",
        GOOD_RULE + "        §fuction: avg\n",
        "unknown key 'fuction' in rule 'HighCpu'; allowed: alert",
    ),
    ("unknown function", GOOD_RULE.replace("function: avg", "function: §avgg"), "unknown function 'avgg'"),
    (
        "bad selector in a quoted string",
        GOOD_RULE.replace("metric: system.cpu.utilization", "metric: 'cpu{mode=§idle}'"),
        "a quoted value is expected",
    ),
    (
        "bad selector in a plain string",
        GOOD_RULE.replace("metric: system.cpu.utilization", 'metric: cpu{§9x="a"}'),
        "a label name is expected",
    ),
    (
        "selector not closed",
        GOOD_RULE.replace("metric: system.cpu.utilization", "metric: 'cpu{a=\"b\"§'"),
        "',' or '}' is expected",
    ),
    (
        "bad regex",
        GOOD_RULE.replace("metric: system.cpu.utilization", "metric: 'cpu{mode=~\"idle§(\"}'"),
        "bad regular expression 'idle('",
    ),
    ("negative duration", GOOD_RULE.replace("window: 1m", "window: §-1m"), "negative duration"),
    ("negative number duration", GOOD_RULE + "        for: §-30\n", "for must not be negative"),
    ("bad duration", GOOD_RULE + "        for: 1h30§\n", "a unit (ms, s, m, h, d, w, y) is expected"),
    ("units out of order", GOOD_RULE + "        for: 1m1§h\n", "largest first"),
    ("zero window", GOOD_RULE.replace("window: 1m", "window: §0s"), "window must be longer than 0"),
    ("bad label name in by", GOOD_RULE + '        by: [host, §"a b"]\n', "bad label name 'a b' in 'by'"),
    ("bad label name in labels", GOOD_RULE + '        labels: {§"a b": x}\n', "bad label name 'a b'"),
    ("reserved label", GOOD_RULE + "        labels: {§alertname: x}\n", "'alertname' is set by InfrAgent"),
    (
        "missing required key",
        "      - §alert: HighCpu\n        function: avg\n        window: 1m\n"
        "        op: '>'\n        value: 1\n",
        "missing the required key 'metric'",
    ),
    ("missing alert", "      - §metric: cpu\n        kind: reset\n", "missing the required key 'alert'"),
    (
        "duplicate rule name",
        GOOD_RULE + GOOD_RULE.replace("alert: HighCpu", "alert: §HighCpu"),
        "duplicate rule name 'HighCpu' (first at line 4)",
    ),
    (
        "wrong type: number",
        GOOD_RULE.replace("value: 0.9", 'value: §"high"'),
        "value must be a number, not a string",
    ),
    ("wrong type: list", GOOD_RULE + "        by: §host\n", "by must be a list, not a string"),
    ("wrong type: bool", GOOD_RULE + "        enabled: §yes please\n", "enabled must be true or false"),
    ("wrong type: mapping", GOOD_RULE + "        labels: §[a]\n", "labels must be a mapping, not a list"),
    ("unknown op", GOOD_RULE.replace('op: ">"', 'op: §"=>"'), "unknown op '=>'"),
    ("unknown severity", GOOD_RULE + "        severity: §page\n", "unknown severity 'page'"),
    (
        "recover on the wrong side",
        GOOD_RULE + "        recover: §0.95\n",
        "recover 0.95 must be at or below value 0.9",
    ),
    ("duplicate key", GOOD_RULE + "        §window: 2m\n", "duplicate key 'window'"),
    (
        "bad alert name",
        GOOD_RULE.replace("alert: HighCpu", 'alert: §"High Cpu"'),
        "bad alert name 'High Cpu'",
    ),
    (
        "bad template",
        GOOD_RULE + '        annotations: {summary: "CPU §{{ $labls.host }}"}\n',
        "unknown template expression",
    ),
    (
        "reset without keep_firing_for",
        "      - §alert: Boot\n        kind: reset\n        metric: system.uptime\n",
        "a reset is an instant",
    ),
    (
        "key of another kind",
        "      - alert: Boot\n        kind: reset\n        metric: system.uptime\n"
        "        keep_firing_for: 5m\n        §for: 1m\n",
        "unknown key 'for' in rule 'Boot'",
    ),
    (
        "empty event pattern",
        "      - alert: Down\n        kind: event\n        match: §{}\n        keep_firing_for: 1m\n",
        "match must name at least one of",
    ),
    (
        "event rule that can never resolve",
        "      - §alert: Down\n        kind: event\n        match: {type: app_down}\n",
        "needs a 'resolve' pattern or keep_firing_for > 0",
    ),
    (
        "bad event severity",
        "      - alert: Down\n        kind: event\n        match: {type: x, min_severity: §high}\n"
        "        keep_firing_for: 1m\n",
        "unknown min_severity 'high'",
    ),
    (
        "warm-up as long as the baseline",
        "      - alert: Odd\n        kind: anomaly\n        metric: m\n        window: 1m\n"
        "        baseline: 1h\n        warmup: §1h\n",
        "warmup must be shorter than baseline",
    ),
    (
        "forecast op",
        "      - alert: Full\n        kind: forecast\n        metric: m\n        window: 1h\n"
        "        horizon: 4h\n        value: 1\n        op: §'>'\n",
        "unknown op '>'",
    ),
]


@pytest.mark.parametrize(("name", "body", "message"), BAD, ids=[c[0] for c in BAD])
def test_each_mistake_is_named_at_its_line_and_column(name: str, body: str, message: str) -> None:
    text, line, column = _where(HEAD + body)
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(text, "rules.yaml")
    found = [p for p in caught.value.problems if message in p.message]
    assert found, f"{message!r} not among {[str(p) for p in caught.value.problems]}"
    assert (found[0].line, found[0].column) == (line, column), str(found[0])
    assert found[0].source == "rules.yaml"
    assert f"rules.yaml:{line}:{column}: " in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [\n§", "not valid YAML"),
        ("groups: []\n§group: x\n", "unknown key 'group' in a rule file"),
        ("§[]\n", "a rule file must be a mapping"),
        ("groups:\n  - §name: a\n", "missing the required key 'rules'"),
        ("groups:\n  - name: a\n    rules: []\n  - name: §a\n    rules: []\n", "duplicate group name 'a'"),
    ],
)
def test_file_level_mistakes(text: str, message: str) -> None:
    clean, line, column = _where(text)
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(clean, "f.yaml")
    found = [p for p in caught.value.problems if message in p.message]
    assert found, [str(p) for p in caught.value.problems]
    assert found[0].line == line
    if message != "not valid YAML":  # the YAML parser reports where it gave up
        assert found[0].column == column


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = HEAD + "".join(body.replace(MARK, "") for name, body, _ in BAD[:12])
    with pytest.raises(RuleFileError) as caught:
        parse_rule_file(text, "all.yaml")
    assert len(caught.value.problems) >= 12
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)


def test_a_good_file_reads_into_groups() -> None:
    text = HEAD + GOOD_RULE + "        recover: 0.8\n        by: [host]\n        for: 1h30m\n"
    (group,) = parse_rule_file(text, "ok.yaml")
    (rule,) = group.rules
    assert (group.name, rule.name, rule.group, rule.for_s, rule.by) == (
        "host",
        "HighCpu",
        "host",
        5400.0,
        ("host",),
    )
    assert isinstance(rule.condition, Threshold)
    assert (rule.condition.window_s, rule.condition.recover, rule.kind) == (60.0, 0.8, "threshold")


def test_one_rule_as_json_with_a_json_exponent() -> None:
    text = json.dumps(
        {"alert": "Tiny", "metric": "m", "function": "max", "window": 30, "op": "<", "value": 0.00001}
    )
    rule = parse_rule_text(text, "api")
    assert isinstance(rule.condition, Threshold)
    assert (rule.condition.value, rule.condition.window_s, rule.group) == (1e-05, 30.0, "default")


def test_one_rule_as_json_with_a_mistake_names_the_column() -> None:
    text = '{"alert": "A", "kind": "nope"}'
    with pytest.raises(RuleFileError) as caught:
        parse_rule_text(text, "body")
    assert [(p.line, p.column) for p in caught.value.problems] == [(1, text.index('"nope"') + 1)]
    assert caught.value.problems[0] == Problem(1, 24, caught.value.problems[0].message, "body")


def _case_rules() -> list[Rule]:
    rules: list[Rule] = []
    for path in sorted((Path(__file__).parent / "cases").glob("*.yaml")):
        rules += list(parse_test_text(path.read_text(), str(path), path.parent).rules)
    return rules


@pytest.mark.parametrize("rule", _case_rules(), ids=lambda r: getattr(r, "name", "?"))
def test_spec_round_trip(rule: Rule) -> None:
    spec = rule_to_spec(rule)
    assert json.loads(json.dumps(spec)) == spec  # JSON-able, as the store keeps it
    assert rule_from_spec(spec, "store") == rule


def test_a_spec_that_no_longer_validates_is_refused_with_the_key() -> None:
    (group,) = parse_rule_file(HEAD + GOOD_RULE, "ok.yaml")
    spec = rule_to_spec(group.rules[0]) | {"function": "median"}
    with pytest.raises(RuleFileError, match="unknown function 'median'"):
        rule_from_spec(spec, "store")


@pytest.mark.parametrize(
    "text",
    [
        "groups: {}",
        "groups: [1]",
        "groups: [{name: 1, rules: 2}]",
        "groups: [{name: a, rules: [[1, 2]]}]",
        "groups: [{name: a, rules: [{alert: [1]}]}]",
        "groups: [{name: a, rules: [{alert: A, kind: [x]}]}]",
        "groups: [{name: a, rules: [{alert: A, metric: {a: b}, function: 1, window: [], op: 1, value: {}}]}]",
        "groups: [{name: a, rules: [{alert: A, kind: event, match: [1], resolve: x}]}]",
        "groups: [{name: a, rules: [{alert: A, kind: event, match: {data: [1]}, keep_firing_for: 1m}]}]",
        "groups: [{name: a, rules: [{alert: A, kind: anomaly, metric: m, window: 1m, baseline: x, z: -1}]}]",
        "groups: [{name: a, rules: [{? [1] : 2}]}]",
        "groups: [{name: a, rules: [{alert: A, <<: {x: 1}}]}]",
        "groups: !!binary aGVsbG8=",
        "--- a\n--- b\n",
        "\t",
    ],
)
def test_any_shape_is_a_rule_file_error_never_a_crash(text: str) -> None:
    with pytest.raises(RuleFileError):
        parse_rule_file(text, "odd.yaml")
