"""The kind-specific keys of a rule (``metric``, ``window``, ``match`` …) read into a ``Condition``.

Why apart from ``files.py``: each kind's keys and their checks are one table-like function here;
the common keys (``for``, ``by``, ``labels`` …) and the file structure live in ``files.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from yaml.nodes import Node

from infragent.rules.errors import RuleSyntaxError
from infragent.rules.model import (
    CMPS,
    SEVERITIES,
    WINDOW_FNS,
    Absence,
    Anomaly,
    Condition,
    EventMatch,
    EventPattern,
    Forecast,
    Reset,
    Selector,
    Threshold,
)
from infragent.rules.nodes import Reader
from infragent.rules.syntax import parse_selector

KINDS = ("threshold", "absence", "reset", "event", "forecast", "anomaly")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "threshold": ("metric", "function", "window", "op", "value", "recover", "combine", "for"),
    "absence": ("silent", "metric", "for"),
    "reset": ("metric",),
    "event": ("match", "resolve"),
    "forecast": ("metric", "window", "horizon", "value", "op", "combine", "for"),
    "anomaly": ("metric", "window", "baseline", "z", "warmup", "direction", "for"),
}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "threshold": ("metric", "function", "window", "op", "value"),
    "absence": ("silent",),
    "reset": ("metric",),
    "event": ("match",),
    "forecast": ("metric", "window", "horizon", "value"),
    "anomaly": ("metric", "window", "baseline"),
}
PATTERN_KEYS = ("type", "service", "min_severity", "data")
#: An anomaly rule's warm-up when the file gives none: half the baseline, at most an hour.
DEFAULT_WARMUP_S = 3600.0
DIRECTIONS = ("up", "down", "both")

Get = Callable[[str], Node | None]


def read_selector(r: Reader, node: Node, what: str = "metric") -> Selector | None:
    """A selector string; a syntax error points at its column inside the string when it can."""
    text = r.string(node, what)
    if text is None:
        return None
    try:
        return parse_selector(text)
    except RuleSyntaxError as exc:
        r.problem(node, f"bad selector: {exc.message}", offset=r.offset_in(node, exc.offset))
        return None


def positive_duration(r: Reader, node: Node, what: str) -> float | None:
    got = r.duration(node, what)
    if got is not None and got <= 0:
        r.problem(node, f"{what} must be longer than 0")
        return None
    return got


def choice(r: Reader, node: Node, what: str, choices: tuple[str, ...]) -> str | None:
    got = r.string(node, what)
    if got is not None and got not in choices:
        r.problem(node, f"unknown {what} {got!r}; one of: {', '.join(choices)}")
        return None
    return got


def read_pattern(r: Reader, node: Node, what: str) -> EventPattern | None:
    items = r.mapping(node, what)
    if items is None:
        return None
    r.keys(items, node, what, PATTERN_KEYS)
    if not items:
        keys = ", ".join(PATTERN_KEYS)
        r.problem(node, f"{what} must name at least one of: {keys} (an empty pattern matches every event)")
        return None
    type_ = r.string(items["type"][1], f"{what}.type") if "type" in items else None
    service = r.string(items["service"][1], f"{what}.service") if "service" in items else None
    sev = choice(r, items["min_severity"][1], "min_severity", SEVERITIES) if "min_severity" in items else None
    data = r.string_map(items["data"][1], f"{what}.data") if "data" in items else {}
    if data is None:
        return None
    return EventPattern(type_, service, sev, tuple(data.items()))  # type: ignore[arg-type]


def read_condition(r: Reader, kind: str, get: Get, node: Node, what: str) -> Condition | None:
    """The condition of a ``kind`` rule from its keys; missing required keys are problems here."""
    for key in REQUIRED_KEYS[kind]:
        if get(key) is None:
            r.problem(node, f"{what} ({kind}) is missing the required key {key!r}")
    before = len(r.problems)
    out: Condition | None = None
    if kind == "threshold":
        out = _threshold(r, get)
    elif kind == "absence":
        n = get("metric")
        sel = read_selector(r, n) if n is not None else None
        silent = positive_duration(r, n, "silent") if (n := get("silent")) is not None else None
        if silent is not None:
            out = Absence(silent, sel)
    elif kind == "reset":
        sel = read_selector(r, n) if (n := get("metric")) is not None else None
        out = Reset(sel) if sel is not None else None
    elif kind == "event":
        match = read_pattern(r, n, "match") if (n := get("match")) is not None else None
        resolve = read_pattern(r, n, "resolve") if (n := get("resolve")) is not None else None
        out = EventMatch(match, resolve) if match is not None else None
    elif kind == "forecast":
        out = _forecast(r, get)
    else:
        out = _anomaly(r, get)
    return out if len(r.problems) == before else None


def _threshold(r: Reader, get: Get) -> Threshold | None:
    sel = read_selector(r, n) if (n := get("metric")) is not None else None
    fn = choice(r, n, "function", WINDOW_FNS) if (n := get("function")) is not None else None
    window = positive_duration(r, n, "window") if (n := get("window")) is not None else None
    op = choice(r, n, "op", CMPS) if (n := get("op")) is not None else None
    value = r.number(n, "value") if (n := get("value")) is not None else None
    recover = r.number(n, "recover") if (n := get("recover")) is not None else None
    if recover is not None and op is not None and value is not None:
        bad = (
            (op in (">", ">=") and recover > value)
            or (op in ("<", "<=") and recover < value)
            or op in ("==", "!=")
        )
        if bad:
            side = {">": "at or below", ">=": "at or below", "<": "at or above", "<=": "at or above"}
            hint = f"must be {side[op]} value {value:g}" if op in side else f"does not apply to op {op!r}"
            r.problem(get("recover"), f"recover {recover:g} {hint} (it is where a firing alert resolves)")
            return None
    if sel is None or fn is None or window is None or op is None or value is None:
        return None
    return Threshold(sel, fn, window, op, value, recover)  # type: ignore[arg-type]


def _forecast(r: Reader, get: Get) -> Forecast | None:
    sel = read_selector(r, n) if (n := get("metric")) is not None else None
    window = positive_duration(r, n, "window") if (n := get("window")) is not None else None
    horizon = positive_duration(r, n, "horizon") if (n := get("horizon")) is not None else None
    value = r.number(n, "value") if (n := get("value")) is not None else None
    op = choice(r, n, "op", (">=", "<=")) if (n := get("op")) is not None else ">="
    if sel is None or window is None or horizon is None or value is None or op is None:
        return None
    return Forecast(sel, window, horizon, value, op)  # type: ignore[arg-type]


def _anomaly(r: Reader, get: Get) -> Anomaly | None:
    sel = read_selector(r, n) if (n := get("metric")) is not None else None
    window = positive_duration(r, n, "window") if (n := get("window")) is not None else None
    baseline = positive_duration(r, n, "baseline") if (n := get("baseline")) is not None else None
    z = r.number(n, "z") if (n := get("z")) is not None else 4.0
    if z is not None and z <= 0:
        r.problem(get("z"), "z must be greater than 0")
        return None
    direction = choice(r, n, "direction", DIRECTIONS) if (n := get("direction")) is not None else "both"
    warm_node = get("warmup")
    warmup: float | None
    if warm_node is None:
        warmup = min(DEFAULT_WARMUP_S, baseline / 2) if baseline is not None else None
    else:
        warmup = r.duration(warm_node, "warmup")
        if warmup is not None and baseline is not None and warmup >= baseline:
            r.problem(
                warm_node,
                "warmup must be shorter than baseline (the oldest baseline sample is always "
                "newer than the baseline's start)",
            )
            return None
    if sel is None or window is None or baseline is None or z is None or direction is None:
        return None
    if warmup is None:
        return None
    return Anomaly(sel, window, baseline, z, warmup, direction)  # type: ignore[arg-type]
