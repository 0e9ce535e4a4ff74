"""Whether a condition holds for one group at ``now``: threshold, absence, forecast, anomaly.

Each function reads the group's window and answers an ``Outcome`` (holds, the group's value, a
short reason); the state machine in ``evaluate.py`` turns outcomes into transitions. Reset and
event rules are not here: they react to instants (a drop, an event), not to a condition over time.

``firing`` is passed in because a threshold with ``recover`` judges a firing alert against the
recovery value instead (hysteresis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infragent.rules.model import Absence, Anomaly, Cmp, Forecast, Rule, Threshold
from infragent.rules.syntax import format_duration
from infragent.rules.templates import format_value
from infragent.rules.window import Window
from infragent.rules.windows import combine, cut, linear_eta, linear_forecast, robust_z, window_value

#: The memo key of an absence rule's last sign of life (so ``next_due`` knows the deadline).
LAST_SEEN = "last_seen"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One judgement of a condition. ``since``: when it started to hold, when that is known to be
    earlier than now (an absence holds from ``last_seen + silent``); ``memo`` replaces the state's."""

    holds: bool
    value: float | None
    reason: str
    since: float | None = None
    memo: tuple[tuple[str, float], ...] | None = None


def compare(a: float, op: Cmp, b: float) -> bool:
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == "==":
        return a == b
    return a != b


def threshold(rule: Rule, c: Threshold, window: Window, now: float, firing: bool) -> Outcome:
    values = [
        v
        for s in window.series
        if (v := window_value(c.function, s.ts, s.values, now - c.window_s, now)) is not None
    ]
    value = combine(rule.combine, values)
    if value is None:
        return Outcome(False, None, f"no data in the last {format_duration(c.window_s)}")
    against, label = c.value, ""
    if firing and c.recover is not None:
        against, label = c.recover, "recover "
    if compare(value, c.op, against):
        return Outcome(True, value, f"value {format_value(value)} {c.op} {label}{format_value(against)}")
    return Outcome(False, value, f"value {format_value(value)} not {c.op} {label}{format_value(against)}")


def absence(c: Absence, window: Window, now: float, memo: tuple[tuple[str, float], ...]) -> Outcome:
    last_seen = window.last_seen
    if last_seen is None:
        last_seen = dict(memo).get(LAST_SEEN)
    if last_seen is None:
        return Outcome(False, None, "never seen")
    new_memo = (*((k, v) for k, v in memo if k != LAST_SEEN), (LAST_SEEN, last_seen))
    silent = now - last_seen
    reason = f"silent for {format_duration(round(max(silent, 0.0)))}"
    if silent >= c.silent_s:
        return Outcome(True, silent, reason, since=last_seen + c.silent_s, memo=new_memo)
    return Outcome(False, silent, f"seen {format_duration(round(max(silent, 0.0)))} ago", memo=new_memo)


def forecast(rule: Rule, c: Forecast, window: Window, now: float) -> Outcome:
    at = now + c.horizon_s
    fits: list[tuple[float, float | None]] = []
    for s in window.series:
        t, v = cut(s.ts, s.values, now - c.window_s, now)
        predicted = linear_forecast(t, v, at)
        if predicted is not None:
            fits.append((predicted, linear_eta(t, v, c.value)))
    value = combine(rule.combine, [p for p, _ in fits])
    if value is None:
        return Outcome(
            False, None, f"too few samples in the last {format_duration(c.window_s)} to fit a line"
        )
    horizon = format_duration(c.horizon_s)
    holds = compare(value, c.op, c.value)
    reason = f"predicted {format_value(value)} in {horizon} ({'' if holds else 'not '}{c.op} {c.value:g})"
    worst = max(fits, key=_first) if c.op == ">=" else min(fits, key=_first)
    eta = worst[1]
    if holds and eta is not None and eta > now:
        reason += f", reaching {c.value:g} in about {format_duration(round(eta - now))}"
    return Outcome(holds, value, reason)


def _first(fit: tuple[float, float | None]) -> float:
    return fit[0]


def anomaly(c: Anomaly, window: Window, now: float) -> Outcome:
    """The most anomalous series of the group in the rule's direction decides."""
    end = now - c.window_s
    best: tuple[float, float, float, float] | None = None  # score, z, recent mean, baseline median
    warming: float | None = None
    for s in window.series:
        _, rv = cut(s.ts, s.values, end, now)
        bt, bv = cut(s.ts, s.values, end - c.baseline_s, end)
        if len(rv) == 0 or len(bt) == 0:
            continue
        span = end - float(bt[0])
        if span < c.warmup_s:
            warming = span if warming is None else max(warming, span)
            continue
        x = float(rv.mean())
        z = robust_z(x, bv)
        if z is None:
            continue
        score = z if c.direction == "up" else -z if c.direction == "down" else abs(z)
        if best is None or score > best[0]:
            best = (score, z, x, float(np.median(bv)))
    if best is None:
        if warming is not None:
            return Outcome(
                False,
                None,
                f"warming up: {format_duration(round(warming))} of baseline, "
                f"{format_duration(c.warmup_s)} needed",
            )
        return Outcome(False, None, "no data")
    score, z, x, median = best
    reason = (
        f"z {z:.2f}: {format_value(x)} over {format_duration(c.window_s)} against median "
        f"{format_value(median)} of the {format_duration(c.baseline_s)} before"
    )
    return Outcome(score >= c.z, z, reason)
