"""What a rule is, as plain frozen values: the contract between the rule files, the store, the
evaluator and the API.

Why a closed set of kinds rather than an expression language: the five kinds (threshold, absence,
reset, event, forecast, anomaly) cover what the default pack and our users' Monit/Beszel/Uptime Kuma
rules need, each is validated field by field with a line and column, and each has one evaluation
function that can be tested as a table. PromQL stays available through remote write.

Series labels, for matching and grouping, are the series' attributes plus ``host`` (the node id of
the batch that carried it) and ``__name__`` is the metric name (``Selector.metric``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

MatchOp = Literal["=", "!=", "=~", "!~"]
#: ``rate`` and ``increase`` treat the series as a counter (a drop is a reset, as in Prometheus).
WindowFn = Literal["avg", "min", "max", "last", "sum", "count", "rate", "increase"]
WINDOW_FNS: tuple[WindowFn, ...] = get_args(WindowFn)
Cmp = Literal[">", ">=", "<", "<=", "==", "!="]
CMPS: tuple[Cmp, ...] = get_args(Cmp)
#: How the series of one group are combined into the group's one value.
Combine = Literal["sum", "avg", "min", "max"]
COMBINES: tuple[Combine, ...] = get_args(Combine)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
Direction = Literal["up", "down", "both"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; regexes are anchored (``=~ "sd.*"`` does not match ``xsda``), as in PromQL."""

    label: str
    op: MatchOp
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = _compiled(self.value).fullmatch(have) is not None
        return hit if self.op == "=~" else not hit


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    got = _REGEX_CACHE.get(pattern)
    if got is None:
        got = _REGEX_CACHE[pattern] = re.compile(pattern)
    return got


@dataclass(frozen=True, slots=True)
class Selector:
    """``metric{label op "value", …}``: which series a rule reads."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return name == self.metric and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class Threshold:
    """``combine by (by) (function(selector[window])) op value``; with ``recover``, a firing alert
    resolves only once the value is back past ``recover`` (hysteresis: ``> 90`` fires, ``< 85`` resolves).
    """

    selector: Selector
    function: WindowFn
    window_s: float
    op: Cmp
    value: float
    recover: float | None = None
    kind: Literal["threshold"] = "threshold"


@dataclass(frozen=True, slots=True)
class Absence:
    """A group silent for ``silent_s``: no sample of ``selector`` (or, with no selector, nothing at
    all from the host: neither a sample nor an agent heartbeat)."""

    silent_s: float
    selector: Selector | None = None
    kind: Literal["absence"] = "absence"


@dataclass(frozen=True, slots=True)
class Reset:
    """A value that went backwards (``system.uptime``: a reboot nobody saw). Fires at the drop and
    stays firing for the rule's ``keep_firing_for`` (a reset is an instant, not a condition)."""

    selector: Selector
    kind: Literal["reset"] = "reset"


@dataclass(frozen=True, slots=True)
class EventPattern:
    """Which events match: exact type/service (``None``: any), at least ``min_severity``, and
    ``data`` fields equal to the given strings."""

    type: str | None = None
    service: str | None = None
    min_severity: Severity | None = None
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EventMatch:
    """Events that open an alert (``match``) and, optionally, events that resolve it (``resolve``)."""

    match: EventPattern
    resolve: EventPattern | None = None
    kind: Literal["event"] = "event"


@dataclass(frozen=True, slots=True)
class Forecast:
    """A least-squares line over ``window_s`` that reaches ``value`` (``op`` ``>=`` or ``<=``)
    within ``horizon_s`` from now: "filesystem utilization reaches 1.0 within 4 h"."""

    selector: Selector
    window_s: float
    horizon_s: float
    value: float
    op: Literal[">=", "<="] = ">="
    kind: Literal["forecast"] = "forecast"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """The robust z-score of the latest ``window_s`` average against the median/MAD of the
    ``baseline_s`` before it; fires past ``z``. No firing until ``warmup_s`` of baseline exists."""

    selector: Selector
    window_s: float
    baseline_s: float
    z: float = 4.0
    warmup_s: float = 3600.0
    direction: Direction = "both"
    kind: Literal["anomaly"] = "anomaly"


Condition = Threshold | Absence | Reset | EventMatch | Forecast | Anomaly


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule of a tenant. ``by`` names the labels that make one alert instance (empty:
    every series is its own instance, as in Prometheus); the series of one group are folded with
    ``combine``. ``labels`` are added to the instance's; ``annotations`` may use ``{{ $labels.x }}``
    and ``{{ $value }}``."""

    name: str
    condition: Condition
    group: str = "default"
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    by: tuple[str, ...] = ()
    combine: Combine = "max"
    severity: Severity = "warning"
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    enabled: bool = True

    @property
    def kind(self) -> str:
        return self.condition.kind

    @property
    def selector(self) -> Selector | None:
        return getattr(self.condition, "selector", None)


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """Rules that share an evaluation setting, as in a Prometheus rule file's ``groups``."""

    name: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)
