"""Unit tests for rules, like ``promtool test rules``: input series and events in, the exact list
of alert transitions out, compared with what the test expects.

Why a runner in the package and not only in our test suite: operators test their own rules with
``infragent rules test FILE``, and our rule cases (tests/unit/rules/cases/) go through the very
same runner. It builds each instance's ``Window`` the way the evaluator does (series grouped by
``group_labels``, last seen = newest sample, or heartbeat for a host-level absence rule), calls
``evaluate`` every ``evaluation_interval``, and also at each ``next_due`` instant between two
steps, so the times of timer-driven transitions are exact, not rounded up to the next step.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infragent.rules.evaluate import evaluate, event_group_labels, group_key, group_labels, next_due
from infragent.rules.model import Absence, EventMatch, Rule
from infragent.rules.state import AlertState, Transition
from infragent.rules.syntax import format_duration
from infragent.rules.testfile import Case, Expected, InputSeries, RuleTests, parse_test_text
from infragent.rules.window import SeriesSamples, Window

__all__ = ["CaseResult", "Got", "TestReport", "run_case", "run_test_file", "run_test_text", "run_tests"]

#: A guard against a timer that keeps coming due at the same instant (a bug, not an input).
MAX_DUE_EVALUATIONS = 100_000


@dataclass(frozen=True, slots=True)
class Got:
    """One transition the runner saw; ``labels`` are the instance's group labels."""

    at: float
    alert: str
    labels: dict[str, str]
    from_status: str
    to_status: str
    value: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    passed: bool
    #: a unified diff of expected vs got (empty when passed), then what was got, with reasons
    diff: str
    got: tuple[Got, ...] = ()


@dataclass(frozen=True, slots=True)
class TestReport:
    """The outcome of one test file; ``render()`` is what ``infragent rules test`` prints."""

    __test__ = False  # not a pytest test class, though its name says Test

    source: str
    results: tuple[CaseResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def render(self) -> str:
        lines: list[str] = []
        for r in self.results:
            lines.append(f"{'PASS' if r.passed else 'FAIL'}  {self.source}: {r.name}")
            if not r.passed:
                lines.extend("      " + line for line in r.diff.splitlines())
        failed = sum(not r.passed for r in self.results)
        lines.append(f"{len(self.results) - failed} passed, {failed} failed")
        return "\n".join(lines)


@dataclass(slots=True)
class _Instance:
    index: int
    rule: Rule
    labels: dict[str, str]
    state: AlertState = field(default_factory=AlertState)


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def _sort_key(at: float, alert: str, labels: dict[str, str]) -> tuple[float, str, str]:
    return (round(at, 6), alert, json.dumps(labels, sort_keys=True))


class _Run:
    """One test case's data, indexed for the windows of each rule."""

    def __init__(self, rules: tuple[Rule, ...], case: Case) -> None:
        self.rules = rules
        self.case = case
        self.events = sorted(case.events, key=lambda e: e.at)
        self.instances: dict[tuple[int, str], _Instance] = {}
        self.members: dict[tuple[int, str], list[InputSeries]] = {}
        self.got: list[Got] = []
        for i, rule in enumerate(rules):
            if not rule.enabled or isinstance(rule.condition, EventMatch):
                continue
            for labels, series in self._groups(rule):
                key = (i, group_key(labels))
                self.members.setdefault(key, []).extend(series)
                self.instances.setdefault(key, _Instance(i, rule, labels))

    def _groups(self, rule: Rule) -> Iterable[tuple[dict[str, str], list[InputSeries]]]:
        if rule.selector is None:  # host-level absence: every host with a sample or a heartbeat
            hosts = {s.labels.get("host", "") for s in self.case.series} | set(self.case.heartbeats)
            for host in sorted(hosts):
                yield (
                    group_labels(rule, {"host": host}),
                    [s for s in self.case.series if s.labels.get("host", "") == host],
                )
            return
        for s in self.case.series:
            if rule.selector.matches(s.metric, s.labels):
                yield group_labels(rule, s.labels), [s]

    def window(self, key: tuple[int, str], inst: _Instance, now: float) -> Window:
        if isinstance(inst.rule.condition, EventMatch):
            last = inst.state.last_eval if inst.state.last_eval is not None else -math.inf
            events = tuple(
                e
                for e in self.events
                if last < e.at <= now and event_group_labels(inst.rule, e) == inst.labels
            )
            return Window(dict(inst.labels), events=events)
        series: list[SeriesSamples] = []
        newest: list[float] = []
        for s in self.members.get(key, []):
            hi = int(np.searchsorted(s.ts, now, side="right"))
            series.append(SeriesSamples(dict(s.labels), s.ts[:hi], s.values[:hi]))
            if hi:
                newest.append(float(s.ts[hi - 1]))
        if isinstance(inst.rule.condition, Absence) and inst.rule.selector is None:
            beats = self.case.heartbeats.get(inst.labels.get("host", ""), np.zeros(0))
            hi = int(np.searchsorted(beats, now, side="right"))
            if hi:
                newest.append(float(beats[hi - 1]))
        return Window(dict(inst.labels), tuple(series), max(newest, default=None))

    def step(self, key: tuple[int, str], inst: _Instance, now: float) -> None:
        inst.state, transitions = evaluate(inst.rule, inst.state, self.window(key, inst, now), now)
        self.got.extend(self._got(inst, t) for t in transitions)

    @staticmethod
    def _got(inst: _Instance, t: Transition) -> Got:
        return Got(
            t.at, inst.rule.name, dict(inst.labels), t.from_status.value, t.to_status.value, t.value, t.reason
        )

    def discover_events(self, after: float, now: float) -> None:
        for i, rule in enumerate(self.rules):
            if not rule.enabled or not isinstance(rule.condition, EventMatch):
                continue
            for e in self.events:
                if after < e.at <= now:
                    labels = event_group_labels(rule, e)
                    self.instances.setdefault((i, group_key(labels)), _Instance(i, rule, labels))

    def run(self, evaluation_interval: float) -> list[Got]:
        end = self.case.end
        steps = [k * evaluation_interval for k in range(int(end / evaluation_interval + 1e-9) + 1)]
        if steps[-1] < end - 1e-9:
            steps.append(end)
        prev = -math.inf
        budget = MAX_DUE_EVALUATIONS
        for now in steps:
            while budget > 0:
                due = self._next_due(prev, now)
                if due is None:
                    break
                self.step(due[1], self.instances[due[1]], due[0])
                budget -= 1
            self.discover_events(prev, now)
            for key in sorted(self.instances):
                self.step(key, self.instances[key], now)
            prev = now
        return sorted(self.got, key=lambda g: _sort_key(g.at, g.alert, g.labels))

    def _next_due(self, after: float, before: float) -> tuple[float, tuple[int, str]] | None:
        best: tuple[float, tuple[int, str]] | None = None
        for key, inst in self.instances.items():
            due = next_due(inst.rule, inst.state)
            if due is None or not after < due < before:
                continue
            if inst.state.last_eval is not None and due <= inst.state.last_eval:
                continue
            if best is None or (due, key) < best:
                best = (due, key)
        return best


def run_case(rules: tuple[Rule, ...], evaluation_interval: float, case: Case) -> list[Got]:
    """Every transition of every rule over the case's input, sorted by time, alert and labels."""
    return _Run(rules, case).run(evaluation_interval)


def _line(at: float, alert: str, labels: dict[str, str], a: str, b: str, value: float | None) -> str:
    text = f"{format_duration(at)} {alert}{_labels_text(labels)} {a} -> {b}"
    return text if value is None else f"{text} value={value:.6g}"


def _same(e: Expected, g: Got) -> bool:
    if not math.isclose(e.at, g.at, abs_tol=1e-6) or (e.alert, e.labels) != (g.alert, g.labels):
        return False
    if (e.from_status, e.to_status) != (g.from_status, g.to_status):
        return False
    return e.value is None or (
        g.value is not None and math.isclose(e.value, g.value, rel_tol=1e-6, abs_tol=1e-9)
    )


def check_case(rules: tuple[Rule, ...], evaluation_interval: float, case: Case) -> CaseResult:
    """Run ``case`` and compare with its ``expect`` (exactly, in time order)."""
    names = set(case.alerts) if case.alerts is not None else {e.alert for e in case.expect}
    if not names:
        names = {r.name for r in rules}
    every = case.evaluation_interval or evaluation_interval
    got = [g for g in run_case(rules, every, case) if g.alert in names]
    expected = sorted(case.expect, key=lambda e: _sort_key(e.at, e.alert, e.labels))
    if len(got) == len(expected) and all(_same(e, g) for e, g in zip(expected, got, strict=True)):
        return CaseResult(case.name, True, "", tuple(got))
    want = [_line(e.at, e.alert, e.labels, e.from_status, e.to_status, e.value) for e in expected]
    have = [
        _line(
            g.at,
            g.alert,
            g.labels,
            g.from_status,
            g.to_status,
            g.value if i < len(expected) and expected[i].value is not None else None,
        )
        for i, g in enumerate(got)
    ]
    diff = list(difflib.unified_diff(want, have, "expected", "got", lineterm="", n=2))
    diff.append("got, with reasons:" if got else "got no transition")
    diff.extend(
        f"  {_line(g.at, g.alert, g.labels, g.from_status, g.to_status, None)}: {g.reason}" for g in got
    )
    return CaseResult(case.name, False, "\n".join(diff), tuple(got))


def run_tests(tests: RuleTests) -> TestReport:
    return TestReport(
        tests.source, tuple(check_case(tests.rules, tests.evaluation_interval, c) for c in tests.cases)
    )


def run_test_text(text: str, source: str, base: Path | None = None) -> TestReport:
    """A test file's text; ``RuleFileError`` (line, column) when the file itself is invalid."""
    return run_tests(parse_test_text(text, source, base))


def run_test_file(path: Path) -> TestReport:
    """``infragent rules test FILE``: rule files named in it are read relative to its folder."""
    return run_test_text(path.read_text(), str(path), path.parent)
