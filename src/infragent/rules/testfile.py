"""The rule test file format (``promtool test rules`` adapted), read into plain values.

Why the rule file's reader: a test file holds rule groups inline (the same format, the same
checks) and its own mistakes are reported the same way, with line and column. Running the tests is
``testing.py``'s job; this module only reads. The format is described in docs/rules.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from yaml.nodes import Node, ScalarNode

from infragent.rules.errors import RuleFileError, RuleSyntaxError
from infragent.rules.files import parse_rule_file, read_groups
from infragent.rules.kinds import read_selector
from infragent.rules.model import Rule
from infragent.rules.nodes import Reader
from infragent.rules.state import AlertStatus
from infragent.rules.syntax import parse_duration
from infragent.rules.window import EventSample

F64 = npt.NDArray[np.float64]

FILE_KEYS = ("rule_files", "groups", "evaluation_interval", "tests")
TEST_KEYS = (
    "name",
    "evaluation_interval",
    "interval",
    "input_series",
    "input_events",
    "heartbeats",
    "end",
    "alerts",
    "expect",
)
EVENT_KEYS = ("at", "type", "service", "severity", "node_id", "data")
EXPECT_KEYS = ("at", "alert", "labels", "from", "to", "value")
STATUSES = tuple(s.value for s in AlertStatus)
DEFAULT_EVALUATION_INTERVAL = 10.0

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_EXPAND = re.compile(rf"(?P<a>[-+]?{_NUM})(?:(?P<op>[-+])(?P<b>{_NUM}))?x(?P<n>\d+)")
_BLANKS = re.compile(r"_x(?P<n>\d+)")


@dataclass(frozen=True, slots=True)
class InputSeries:
    metric: str
    labels: dict[str, str]
    ts: F64
    values: F64


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected transition; ``labels`` are the instance's group labels, compared exactly."""

    at: float
    alert: str
    labels: dict[str, str]
    from_status: str
    to_status: str
    value: float | None = None


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    interval: float
    end: float
    series: tuple[InputSeries, ...] = ()
    events: tuple[EventSample, ...] = ()
    heartbeats: dict[str, F64] = field(default_factory=dict)
    expect: tuple[Expected, ...] = ()
    #: the alerts whose transitions are compared; None: those named in ``expect`` (all if none is)
    alerts: tuple[str, ...] | None = None
    #: this test's own evaluation interval; None: the file's
    evaluation_interval: float | None = None


@dataclass(frozen=True, slots=True)
class RuleTests:
    source: str
    rules: tuple[Rule, ...]
    evaluation_interval: float
    cases: tuple[Case, ...]


def expand_values(text: str) -> list[float | None]:
    """promtool's expanding notation: ``1 2 _ 3+1x2 _x2 5x1`` → ``1 2 None 3 4 5 None None 5 5``
    (``a+bxn``: ``a`` then ``n`` more steps of ``b``; ``_`` is a missing sample)."""
    out: list[float | None] = []
    for m in re.finditer(r"\S+", text):
        tok = m.group()
        if tok == "_":
            out.append(None)
        elif (blank := _BLANKS.fullmatch(tok)) is not None:
            out.extend([None] * int(blank.group("n")))
        elif (exp := _EXPAND.fullmatch(tok)) is not None:
            a = float(exp.group("a"))
            b = float(exp.group("b") or 0.0) * (-1.0 if exp.group("op") == "-" else 1.0)
            out.extend(a + i * b for i in range(int(exp.group("n")) + 1))
        else:
            try:
                out.append(float(tok))
            except ValueError:
                hint = "stale markers are not supported, use _" if tok == "stale" else "a number, _, or a+bxn"
                raise RuleSyntaxError(text, m.start(), f"bad value {tok!r}: {hint}") from None
    return out


def _series(r: Reader, node: Node, interval: float) -> InputSeries | None:
    items = r.mapping(node, "an input series")
    if items is None:
        return None
    r.keys(items, node, "an input series", ("series", "values"), required=("series", "values"))
    if "series" not in items or "values" not in items:
        return None
    sel_node, val_node = items["series"][1], items["values"][1]
    sel = read_selector(r, sel_node, "series")
    if sel is not None and any(m.op != "=" for m in sel.matchers):
        r.problem(sel_node, "an input series names its labels with '=' only")
        sel = None
    raw = r.text(val_node, "values")
    if sel is None or raw is None:
        return None
    try:
        values = expand_values(raw)
    except RuleSyntaxError as exc:
        r.problem(val_node, f"values: {exc.message}", offset=r.offset_in(val_node, exc.offset))
        return None
    ts = np.array([i * interval for i, v in enumerate(values) if v is not None], dtype=np.float64)
    vs = np.array([v for v in values if v is not None], dtype=np.float64)
    return InputSeries(sel.metric, {m.label: m.value for m in sel.matchers}, ts, vs)


def _event(r: Reader, node: Node) -> EventSample | None:
    items = r.mapping(node, "an input event")
    if items is None:
        return None
    r.keys(items, node, "an input event", EVENT_KEYS, required=("at", "type"))
    if "at" not in items or "type" not in items:
        return None
    at = r.duration(items["at"][1], "at")
    type_ = r.string(items["type"][1], "type")
    text = {k: r.text(items[k][1], k) if k in items else d for k, d in (("service", ""), ("node_id", ""))}
    severity = r.string(items["severity"][1], "severity") if "severity" in items else "warning"
    data: object = r.plain(items["data"][1]) if "data" in items else {}
    if not isinstance(data, dict):
        r.problem(items["data"][1], "data must be a mapping")
        return None
    if at is None or type_ is None or severity is None or None in text.values():
        return None
    return EventSample(at, type_, text["service"] or "", severity, text["node_id"] or "", data)


def _times(r: Reader, node: Node, what: str) -> F64 | None:
    nodes = node.value if not isinstance(node, ScalarNode) else None
    got: list[float] = []
    if nodes is None:
        raw = r.text(node, what)
        if raw is None:
            return None
        for m in re.finditer(r"\S+", raw):
            try:
                got.append(parse_duration(m.group()))
            except RuleSyntaxError as exc:
                r.problem(node, f"{what}: {exc.message}", offset=r.offset_in(node, m.start() + exc.offset))
                return None
    else:
        for item in r.sequence(node, what) or []:
            t = r.duration(item, what)
            if t is not None:
                got.append(t)
    return np.array(sorted(got), dtype=np.float64)


def _expected(r: Reader, node: Node) -> Expected | None:
    items = r.mapping(node, "an expected transition")
    if items is None:
        return None
    r.keys(items, node, "an expected transition", EXPECT_KEYS, required=("at", "alert", "from", "to"))
    if any(k not in items for k in ("at", "alert", "from", "to")):
        return None
    at = r.duration(items["at"][1], "at")
    alert = r.string(items["alert"][1], "alert")
    labels = r.string_map(items["labels"][1], "labels") if "labels" in items else {}
    states = []
    for key in ("from", "to"):
        got = r.string(items[key][1], key)
        if got is not None and got not in STATUSES:
            r.problem(items[key][1], f"unknown status {got!r}; one of: {', '.join(STATUSES)}")
            got = None
        states.append(got)
    value = r.number(items["value"][1], "value") if "value" in items else None
    if at is None or alert is None or labels is None or None in states:
        return None
    return Expected(at, alert, labels, states[0] or "", states[1] or "", value)


def _case(r: Reader, node: Node, evaluation_interval: float) -> Case | None:
    items = r.mapping(node, "a test")
    if items is None:
        return None
    r.keys(items, node, "a test", TEST_KEYS, required=("name",))

    def get(key: str) -> Node | None:
        return items[key][1] if key in items else None

    before = len(r.problems)
    name = r.string(n, "name") if (n := get("name")) is not None else "?"
    own_eval: float | None = None
    if (n := get("evaluation_interval")) is not None:
        own_eval = r.duration(n, "evaluation_interval")
        if own_eval is not None and own_eval <= 0:
            r.problem(n, "evaluation_interval must be longer than 0")
    interval = r.duration(n, "interval") if (n := get("interval")) is not None else evaluation_interval
    if interval is not None and interval <= 0:
        r.problem(get("interval"), "interval must be longer than 0")
    step = interval if interval and interval > 0 else 1.0
    series = (
        [_series(r, s, step) for s in r.sequence(n, "input_series") or []]
        if (n := get("input_series"))
        else []
    )
    events = [_event(r, e) for e in r.sequence(n, "input_events") or []] if (n := get("input_events")) else []
    beats: dict[str, F64] = {}
    if (n := get("heartbeats")) is not None:
        for host, (_, value) in (r.mapping(n, "heartbeats") or {}).items():
            times = _times(r, value, f"heartbeats.{host}")
            if times is not None:
                beats[host] = times
    expect = [_expected(r, e) for e in r.sequence(n, "expect") or []] if (n := get("expect")) else []
    alerts: tuple[str, ...] | None = None
    if (n := get("alerts")) is not None:
        alerts = tuple(
            a for item in r.sequence(n, "alerts") or [] if (a := r.string(item, "alerts")) is not None
        )
    end: float | None = r.duration(n, "end") if (n := get("end")) is not None else None
    if end is None and n is None:
        last = [float(s.ts[-1]) for s in series if s is not None and len(s.ts)]
        last += [e.at for e in events if e is not None] + [float(b[-1]) for b in beats.values() if len(b)]
        end = max(last, default=0.0)
    if len(r.problems) > before or name is None or end is None:
        return None
    return Case(
        name,
        step,
        end,
        tuple(s for s in series if s is not None),
        tuple(e for e in events if e is not None),
        beats,
        tuple(e for e in expect if e is not None),
        alerts,
        own_eval,
    )


def parse_test_text(text: str, source: str, base: Path | None = None) -> RuleTests:
    """A rule test file's text; ``rule_files`` are read relative to ``base`` (the file's folder)."""
    r = Reader(source)
    root = r.compose(text)
    rules: list[Rule] = []
    cases: list[Case] = []
    interval = DEFAULT_EVALUATION_INTERVAL
    if root is not None and (items := r.mapping(root, "a rule test file")) is not None:
        r.keys(items, root, "a rule test file", FILE_KEYS, required=("tests",))
        if "evaluation_interval" in items:
            got = r.duration(items["evaluation_interval"][1], "evaluation_interval")
            if got is not None and got <= 0:
                r.problem(items["evaluation_interval"][1], "evaluation_interval must be longer than 0")
            interval = got if got else interval
        for item in r.sequence(items["rule_files"][1], "rule_files") or [] if "rule_files" in items else []:
            rel = r.string(item, "a rule file")
            if rel is None:
                continue
            path = (base or Path(".")) / rel
            try:
                content = path.read_text()
            except OSError as exc:
                r.problem(item, f"cannot read rule file {rel!r}: {exc.strerror or exc}")
                continue
            try:
                rules += [rule for g in parse_rule_file(content, str(path)) for rule in g.rules]
            except RuleFileError as exc:  # the rule file's own problems, with its own name
                r.problems.extend(exc.problems)
        if "groups" in items:
            rules += [rule for g in read_groups(r, items["groups"][1]) for rule in g.rules]
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                r.problem(root, f"rule {rule.name!r} is defined twice across rule_files and groups")
            seen.add(rule.name)
        for node in r.sequence(items["tests"][1], "tests") or [] if "tests" in items else []:
            case = _case(r, node, interval)
            if case is not None:
                cases.append(case)
    r.raise_if_any()
    return RuleTests(source, tuple(rules), interval, tuple(cases))
