"""One evaluation of one alert instance: ``evaluate(rule, state, window, now) -> (state, transitions)``.

Pure: the window and ``now`` are handed in, the new state is handed back; the caller persists it
with its transitions. The semantics are Prometheus's alerting rules (``for``, ``keep_firing_for``,
one resolved notice per episode), with two deliberate differences, both so that a restart or a late
evaluation changes no outcome and no timing:

- **Due-time firing.** A pending alert fires at ``active_since + for`` (the transition's ``at`` and
  ``firing_since``), not at whichever evaluation first noticed; a ``keep_firing_for`` resolution
  likewise happens at ``keep_firing_since + keep_firing_for``. An evaluation that comes late
  resolves at the due time, then judges the present afresh (which may open a new episode).
- **Timers are state.** ``active_since``, ``firing_since`` and ``keep_firing_since`` are absolute
  times in ``AlertState``, persisted on every transition; ``next_due`` says when the next timer
  would change the outcome with no new data, so the evaluator's tick wakes exactly then.

Reset and event rules react to instants (a drop, an event) and run their own small machines
below; every other kind goes through ``_step`` with an ``Outcome`` from ``conditions.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from infragent.rules import conditions
from infragent.rules.conditions import LAST_SEEN, Outcome
from infragent.rules.grouping import (
    alert_labels,
    event_group_labels,
    event_matches,
    group_key,
    group_labels,
)
from infragent.rules.model import Absence, Anomaly, EventMatch, Forecast, Reset, Rule, Threshold
from infragent.rules.state import AlertState, AlertStatus, Transition
from infragent.rules.syntax import format_duration
from infragent.rules.templates import format_value, render
from infragent.rules.window import Window

__all__ = [
    "alert_labels",
    "evaluate",
    "event_group_labels",
    "event_matches",
    "group_key",
    "group_labels",
    "next_due",
    "render_annotations",
]

INACTIVE, PENDING, FIRING = AlertStatus.INACTIVE, AlertStatus.PENDING, AlertStatus.FIRING
Memo = tuple[tuple[str, float], ...]


def _to(
    s: AlertState, status: AlertStatus, at: float, value: float | None, reason: str, out: list[Transition]
) -> AlertState:
    """``s`` moved to ``status`` at ``at``, the transition appended to ``out``."""
    out.append(Transition(at, s.status, status, value, reason))
    if status is PENDING:
        return replace(s, status=PENDING, active_since=at, firing_since=None, keep_firing_since=None)
    if status is FIRING:
        active = s.active_since if s.active_since is not None else at
        return replace(s, status=FIRING, active_since=active, firing_since=at, keep_firing_since=None)
    resolved_at = at if s.status is FIRING else s.resolved_at
    return replace(
        s,
        status=INACTIVE,
        active_since=None,
        firing_since=None,
        keep_firing_since=None,
        resolved_at=resolved_at,
    )


def _keep_due(rule: Rule, s: AlertState) -> float | None:
    if s.status is not FIRING or s.keep_firing_since is None:
        return None
    return s.keep_firing_since + rule.keep_firing_for_s


def _kept_reason(rule: Rule) -> str:
    return f"no longer holding for keep_firing_for {format_duration(rule.keep_firing_for_s)}"


def _step(
    rule: Rule, state: AlertState, judge: Callable[[bool], Outcome], now: float
) -> tuple[AlertState, list[Transition]]:
    """The inactive → pending → firing → inactive machine over a condition judged at ``now``."""
    out: list[Transition] = []
    s = state
    due = _keep_due(rule, s)
    if due is not None and now > due:  # a late evaluation: the keep-firing period ended at ``due``
        s = _to(s, INACTIVE, due, s.last_value, _kept_reason(rule), out)
    o = judge(s.status is FIRING)
    if s.status is INACTIVE and o.holds:
        since = min(o.since if o.since is not None else now, now)
        if s.resolved_at is not None and out:
            since = max(since, s.resolved_at)
        if rule.for_s <= 0:
            s = _to(s, FIRING, since, o.value, o.reason, out)
        else:
            s = _to(s, PENDING, since, o.value, o.reason, out)
    if s.status is PENDING:
        assert s.active_since is not None
        fire_at = s.active_since + rule.for_s
        if not o.holds:
            s = _to(s, INACTIVE, now, o.value, o.reason, out)
        elif now >= fire_at:
            s = _to(s, FIRING, fire_at, o.value, f"{o.reason} for {format_duration(rule.for_s)}", out)
    elif s.status is FIRING and not any(t.to_status is FIRING for t in out):
        if o.holds:
            s = replace(s, keep_firing_since=None)
        elif rule.keep_firing_for_s <= 0:
            s = _to(s, INACTIVE, now, o.value, o.reason, out)
        else:
            since = s.keep_firing_since if s.keep_firing_since is not None else now
            if now >= since + rule.keep_firing_for_s:
                s = _to(s, INACTIVE, since + rule.keep_firing_for_s, o.value, _kept_reason(rule), out)
            else:
                s = replace(s, keep_firing_since=since)
    memo = o.memo if o.memo is not None else s.memo
    return replace(s, last_value=o.value, last_eval=now, memo=memo), out


def _expire(rule: Rule, s: AlertState, before: float, out: list[Transition], strict: bool) -> AlertState:
    """Resolve ``s`` at its keep-firing due time if that falls before ``before`` (or at it)."""
    due = _keep_due(rule, s)
    if due is not None and (due < before or (not strict and due <= before)):
        return _to(s, INACTIVE, due, s.last_value, _kept_reason(rule), out)
    return s


def _reset(
    rule: Rule, c: Reset, state: AlertState, window: Window, now: float
) -> tuple[AlertState, list[Transition]]:
    """Fire at each drop of a series below its previous sample; stay firing ``keep_firing_for``
    after the latest drop. The previous sample per series is kept in the memo across evaluations."""
    memo = dict(state.memo)
    drops: list[tuple[float, float, float]] = []  # time, value before, value after
    for series in window.series:
        key = group_key(series.labels)[:16]
        last_t, last_v = memo.get(f"t:{key}"), memo.get(f"v:{key}")
        ts = np.asarray(series.ts, dtype=np.float64)
        vs = np.asarray(series.values, dtype=np.float64)
        keep = (ts <= now) & ~np.isnan(vs)
        if last_t is not None:
            keep &= ts > last_t
        ts, vs = ts[keep], vs[keep]
        if len(ts) == 0:
            continue
        prev = np.concatenate(([last_v if last_v is not None else vs[0]], vs[:-1]))
        for i in np.flatnonzero(vs < prev):
            drops.append((float(ts[i]), float(prev[i]), float(vs[i])))
        memo[f"t:{key}"], memo[f"v:{key}"] = float(ts[-1]), float(vs[-1])
    out: list[Transition] = []
    s = state
    for at, before, after in sorted(drops):
        s = _expire(rule, s, at, out, strict=True)
        if s.status is not FIRING:
            reason = f"{c.selector.metric} went back from {format_value(before)} to {format_value(after)}"
            s = _to(s, FIRING, at, after, reason, out)
        s = replace(s, keep_firing_since=at, last_value=after)
    s = _expire(rule, s, now, out, strict=False)
    return replace(s, last_eval=now, memo=tuple(memo.items())), out


def _event(
    rule: Rule, c: EventMatch, state: AlertState, window: Window, now: float
) -> tuple[AlertState, list[Transition]]:
    """A matching event fires; a resolving event (or ``keep_firing_for`` after the last match, when
    there is no resolve pattern) resolves. With both, a resolve event starts ``keep_firing_for``."""
    out: list[Transition] = []
    s = state
    hold_after_match = rule.keep_firing_for_s > 0 and c.resolve is None
    for ev in sorted(window.events, key=lambda e: e.at):
        what = f"event {ev.type} from {ev.service or '-'} on {ev.node_id or '-'} ({ev.severity})"
        if event_matches(c.match, ev):
            s = _expire(rule, s, ev.at, out, strict=True)
            if s.status is not FIRING:
                s = _to(s, FIRING, ev.at, None, what, out)
            s = replace(s, keep_firing_since=ev.at if hold_after_match else None)
        elif c.resolve is not None and s.status is FIRING and event_matches(c.resolve, ev):
            s = _expire(rule, s, ev.at, out, strict=True)
            if s.status is FIRING and rule.keep_firing_for_s <= 0:
                s = _to(s, INACTIVE, ev.at, None, f"resolved by {what}", out)
            elif s.status is FIRING and s.keep_firing_since is None:
                s = replace(s, keep_firing_since=ev.at)
    s = _expire(rule, s, now, out, strict=False)
    return replace(s, last_value=None, last_eval=now), out


def evaluate(
    rule: Rule, state: AlertState, window: Window, now: float
) -> tuple[AlertState, list[Transition]]:
    """The instance's new state and the transitions since ``state``, in time order."""
    c = rule.condition
    if isinstance(c, Reset):
        return _reset(rule, c, state, window, now)
    if isinstance(c, EventMatch):
        return _event(rule, c, state, window, now)
    judge: Callable[[bool], Outcome]
    if isinstance(c, Threshold):
        judge = lambda firing: conditions.threshold(rule, c, window, now, firing)  # noqa: E731
    elif isinstance(c, Absence):
        judge = lambda firing: conditions.absence(c, window, now, state.memo)  # noqa: E731
    elif isinstance(c, Forecast):
        judge = lambda firing: conditions.forecast(rule, c, window, now)  # noqa: E731
    else:
        assert isinstance(c, Anomaly)
        judge = lambda firing: conditions.anomaly(c, window, now)  # noqa: E731
    return _step(rule, state, judge, now)


def next_due(rule: Rule, state: AlertState) -> float | None:
    """The next instant a timer changes the outcome with no new data: ``for`` elapsing, a
    ``keep_firing_for`` (or a reset's or an event's hold) elapsing, or an absence deadline
    (last seen + silent). None when only new data can change anything."""
    found: list[float] = []
    if state.status is PENDING and state.active_since is not None:
        found.append(state.active_since + rule.for_s)
    keep = _keep_due(rule, state)
    if keep is not None:
        found.append(keep)
    c = rule.condition
    if isinstance(c, Absence) and state.status is INACTIVE:
        last_seen = dict(state.memo).get(LAST_SEEN)
        if last_seen is not None:
            found.append(last_seen + c.silent_s)
    return min(found) if found else None


def render_annotations(rule: Rule, labels: dict[str, str], value: float | None) -> dict[str, str]:
    """The rule's annotations for one alert (``labels``: its ``alert_labels``)."""
    return {name: render(text, labels, value) for name, text in rule.annotations}
