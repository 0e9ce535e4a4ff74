"""The rule cases (tests/unit/rules/cases/*.yaml) through the same runner as ``infragent rules test``,
and the runner itself: a wrong expectation fails with a readable diff, a bad test file names its
line and column.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infragent.rules.errors import RuleFileError
from infragent.rules.testing import run_test_file, run_test_text

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))

RULE = """groups:
  - name: host
    rules:
      - alert: HighCpu
        metric: cpu
        function: last
        window: 15s
        op: ">"
        value: 0.9
        by: [host]
        for: 20s
"""


def test_there_are_cases() -> None:
    names = {p.stem for p in CASES}
    assert {"for", "gap", "keep_firing_for", "hysteresis", "absence", "reset", "forecast", "anomaly"} <= names
    assert {"grouping", "flapping", "counters", "events"} <= names


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_file(path: Path) -> None:
    report = run_test_file(path)
    assert report.results, f"{path.name} has no test"
    assert report.passed, "\n" + report.render()


def test_a_wrong_expectation_fails_with_a_diff() -> None:
    text = (
        RULE
        + """tests:
  - name: wrong time
    input_series:
      - series: 'cpu{host="a"}'
        values: '0.95x10'
    expect:
      - {at: 0s, alert: HighCpu, labels: {host: a}, from: inactive, to: pending}
      - {at: 30s, alert: HighCpu, labels: {host: a}, from: pending, to: firing}
"""
    )
    report = run_test_text(text, "t.yaml")
    (result,) = report.results
    assert not result.passed and not report.passed
    assert '-30s HighCpu{host="a"} pending -> firing' in result.diff
    assert '+20s HighCpu{host="a"} pending -> firing' in result.diff
    assert "value 0.95 > 0.9 for 20s" in result.diff  # the reasons of what was got
    assert "0 passed, 1 failed" in report.render()


def test_a_missing_transition_fails() -> None:
    text = (
        RULE
        + """tests:
  - name: expects nothing
    alerts: [HighCpu]
    input_series:
      - series: 'cpu{host="a"}'
        values: '0.95x10'
    expect: []
"""
    )
    (result,) = run_test_text(text, "t.yaml").results
    assert not result.passed
    assert len(result.got) == 2


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ("    §inputs: []\n", "unknown key 'inputs' in a test"),
        ("    input_series:\n      - series: 'cpu{host=\"a\"}'\n        values: '1 §x 2'\n", "bad value 'x'"),
        ("    input_series:\n      - series: §'cpu{host=~\"a\"}'\n        values: '1'\n", "'=' only"),
        ("    expect:\n      - {at: 0s, alert: HighCpu, from: §pend, to: firing}\n", "unknown status"),
        ("    end: §-5m\n", "negative duration"),
        ("    heartbeats: {a: '0 10 §x'}\n", "heartbeats.a"),
    ],
)
def test_mistakes_in_a_test_file_have_line_and_column(test: str, message: str) -> None:
    text = RULE + "tests:\n  - name: t\n" + test
    at = text.index("§")
    clean = text.replace("§", "")
    line = text[:at].count("\n") + 1
    where = (line, at - text[:at].rfind("\n"))
    with pytest.raises(RuleFileError) as caught:
        run_test_text(clean, "t.yaml")
    found = [p for p in caught.value.problems if message in p.message]
    assert found, [str(p) for p in caught.value.problems]
    assert (found[0].line, found[0].column) == where


def test_rule_files_are_read_relative_to_the_test_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "cpu.yaml").write_text(RULE)
    test = tmp_path / "cpu_test.yaml"
    test.write_text("""rule_files: [rules/cpu.yaml]
tests:
  - name: fires
    input_series:
      - series: 'cpu{host="a"}'
        values: '0.95x5'
    expect:
      - {at: 0s, alert: HighCpu, labels: {host: a}, from: inactive, to: pending}
      - {at: 20s, alert: HighCpu, labels: {host: a}, from: pending, to: firing}
""")
    assert run_test_file(test).passed


def test_a_broken_rule_file_reports_its_own_name(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(RULE.replace("function: last", "function: median"))
    test = tmp_path / "t.yaml"
    test.write_text("rule_files: [bad.yaml, missing.yaml]\ntests: []\n")
    with pytest.raises(RuleFileError) as caught:
        run_test_file(test)
    text = str(caught.value)
    assert f"{tmp_path / 'bad.yaml'}:6:19: unknown function 'median'" in text
    assert "t.yaml:1:24: cannot read rule file 'missing.yaml'" in text
