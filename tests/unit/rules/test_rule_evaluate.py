"""The alert state machine beyond the case files: late evaluations (a restart) keep due times,
``next_due`` names each timer, instance keys and labels, event patterns, annotations."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from infragent.rules.evaluate import (
    alert_labels,
    evaluate,
    event_group_labels,
    event_matches,
    group_key,
    group_labels,
    next_due,
    render_annotations,
)
from infragent.rules.files import parse_rule_text
from infragent.rules.model import EventPattern, Rule
from infragent.rules.state import AlertState, AlertStatus
from infragent.rules.window import EventSample, SeriesSamples, Window

INACTIVE, PENDING, FIRING = AlertStatus.INACTIVE, AlertStatus.PENDING, AlertStatus.FIRING


def _rule(extra: str = "") -> Rule:
    return parse_rule_text(
        "alert: Hot\nmetric: cpu\nfunction: last\nwindow: 30s\nop: '>'\nvalue: 0.9\nby: [host]\n"
        'annotations: {summary: "{{ $labels.host }} at {{ $value }}"}\n' + extra,
        "test",
    )


def _window(*samples: tuple[float, float]) -> Window:
    ts = np.array([t for t, _ in samples], dtype=np.float64)
    vs = np.array([v for _, v in samples], dtype=np.float64)
    return Window({"host": "a"}, (SeriesSamples({"host": "a"}, ts, vs),), float(ts[-1]) if len(ts) else None)


def test_a_late_evaluation_fires_at_the_due_time() -> None:
    """A server down between 130 s and 400 s fires, at restart, at active_since + for."""
    rule = _rule("for: 1m\n")
    pending = AlertState(PENDING, active_since=100.0, last_eval=130.0)
    state, out = evaluate(rule, pending, _window((395.0, 0.95)), 400.0)
    assert [(t.at, t.from_status, t.to_status) for t in out] == [(160.0, PENDING, FIRING)]
    assert (state.status, state.firing_since, state.active_since, state.last_eval) == (
        FIRING,
        160.0,
        100.0,
        400.0,
    )
    assert out[0].fired and not out[0].resolved


def test_a_late_evaluation_resolves_at_the_keep_firing_due_time_then_judges_the_present() -> None:
    rule = _rule("keep_firing_for: 1m\n")
    keeping = AlertState(FIRING, active_since=0.0, firing_since=0.0, keep_firing_since=100.0, last_value=0.5)
    state, out = evaluate(rule, keeping, _window((395.0, 0.95)), 400.0)
    assert [(t.at, t.from_status, t.to_status) for t in out] == [
        (160.0, FIRING, INACTIVE),
        (400.0, INACTIVE, FIRING),
    ]
    assert out[0].resolved and out[1].fired
    assert (state.status, state.firing_since, state.resolved_at, state.keep_firing_since) == (
        FIRING,
        400.0,
        160.0,
        None,
    )


def test_holding_again_exactly_at_the_keep_firing_due_time_keeps_firing() -> None:
    rule = _rule("keep_firing_for: 1m\n")
    keeping = AlertState(FIRING, active_since=0.0, firing_since=0.0, keep_firing_since=100.0)
    state, out = evaluate(rule, keeping, _window((160.0, 0.95)), 160.0)
    assert out == []
    assert (state.status, state.keep_firing_since) == (FIRING, None)


def test_pending_that_stops_holding_goes_back_without_a_resolved_notice() -> None:
    rule = _rule("for: 1m\n")
    state, out = evaluate(rule, AlertState(), _window((0.0, 0.95)), 0.0)
    assert [(t.from_status, t.to_status) for t in out] == [(INACTIVE, PENDING)]
    state, out = evaluate(rule, state, _window((0.0, 0.95), (10.0, 0.1)), 10.0)
    assert [(t.at, t.from_status, t.to_status, t.resolved) for t in out] == [(10.0, PENDING, INACTIVE, False)]
    assert (state.status, state.active_since, state.last_value) == (INACTIVE, None, 0.1)


def test_nothing_holding_changes_nothing_but_the_last_evaluation() -> None:
    rule = _rule()
    state, out = evaluate(rule, AlertState(), _window((0.0, 0.1)), 5.0)
    assert out == []
    assert state == AlertState(last_value=0.1, last_eval=5.0)


def test_next_due_names_each_timer() -> None:
    rule = _rule("for: 1m\nkeep_firing_for: 2m\n")
    assert next_due(rule, AlertState()) is None
    assert next_due(rule, AlertState(PENDING, active_since=100.0)) == 160.0
    assert next_due(rule, AlertState(FIRING, active_since=0.0, firing_since=60.0)) is None
    assert (
        next_due(rule, AlertState(FIRING, active_since=0.0, firing_since=60.0, keep_firing_since=90.0))
        == 210.0
    )
    silent = parse_rule_text("alert: Gone\nkind: absence\nsilent: 5m\n", "t")
    state, out = evaluate(silent, AlertState(), Window({"host": "a"}, last_seen=1000.0), 1010.0)
    assert out == [] and next_due(silent, state) == 1300.0
    state, out = evaluate(silent, state, Window({"host": "a"}), 1300.0)  # the deadline, no new data
    assert [(t.at, t.to_status, t.reason) for t in out] == [(1300.0, FIRING, "silent for 5m")]
    assert next_due(silent, state) is None  # only the host's return resolves it


def test_absence_of_a_host_never_seen_does_not_hold() -> None:
    silent = parse_rule_text("alert: Gone\nkind: absence\nsilent: 5m\n", "t")
    state, out = evaluate(silent, AlertState(), Window({"host": "a"}), 10_000.0)
    assert out == [] and state.status is INACTIVE


def test_a_reset_remembers_the_last_sample_across_evaluations() -> None:
    rule = parse_rule_text("alert: Boot\nkind: reset\nmetric: system.uptime\nkeep_firing_for: 1m\n", "t")
    state, out = evaluate(rule, AlertState(), _window((0.0, 500.0), (10.0, 510.0)), 10.0)
    assert out == []
    # the next window overlaps the last (10 s again) and brings 3 at 20 s: a drop from 510
    state, out = evaluate(rule, state, _window((10.0, 510.0), (20.0, 3.0)), 20.0)
    assert [(t.at, t.to_status, t.value, t.reason) for t in out] == [
        (20.0, FIRING, 3.0, "system.uptime went back from 510 to 3")
    ]
    assert next_due(rule, state) == 80.0
    # the window no longer holds 510: without the memo, 3 → 13 would look normal; it is, no new drop
    state, out = evaluate(rule, state, _window((30.0, 13.0)), 80.0)
    assert [(t.at, t.from_status, t.to_status) for t in out] == [(80.0, FIRING, INACTIVE)]


def test_anomaly_is_not_even_pending_during_warm_up() -> None:
    rule = parse_rule_text(
        "alert: Odd\nkind: anomaly\nmetric: m\nwindow: 1m\nbaseline: 1h\nwarmup: 30m\nfor: 5m\n", "t"
    )
    samples = [(t * 60.0, 10.0) for t in range(20)] + [(20 * 60.0, 1000.0)]
    state, out = evaluate(rule, AlertState(), _window(*samples), 20 * 60.0)
    assert out == [] and state.last_value is None


def test_group_labels_key_and_alert_labels() -> None:
    rule = _rule("labels: {team: ops, host: overridden}\n")
    series = {"host": "a", "cpu": "0"}
    assert group_labels(rule, series) == {"host": "a"}
    assert group_labels(rule, {"cpu": "0"}) == {"host": ""}
    per_series = parse_rule_text(
        "alert: Any\nmetric: cpu\nfunction: max\nwindow: 1m\nop: '>'\nvalue: 1\n", "t"
    )
    assert group_labels(per_series, series) == series
    assert group_key({"b": "2", "a": "1"}) == group_key({"a": "1", "b": "2"})
    assert group_key({"a": "1", "b": "2"}) == hashlib.sha256(b'{"a":"1","b":"2"}').hexdigest()
    assert group_key({"a": "1"}) != group_key({"a": "2"})
    assert alert_labels(rule, {"host": "a"}) == {"host": "overridden", "team": "ops", "alertname": "Hot"}


def test_render_annotations() -> None:
    rule = _rule()
    assert render_annotations(rule, {"host": "a"}, 0.93456) == {"summary": "a at 0.9346"}
    assert render_annotations(rule, {}, None) == {"summary": " at -"}


EVENT = EventSample(10.0, "app_down", "web", "critical", "node-1", {"code": 500, "ok": False, "path": "/x"})


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        (EventPattern(type="app_down"), True),
        (EventPattern(type="app_up"), False),
        (EventPattern(service="web"), True),
        (EventPattern(service="api"), False),
        (EventPattern(min_severity="warning"), True),
        (EventPattern(min_severity="critical"), True),
        (EventPattern(data=(("code", "500"),)), True),
        (EventPattern(data=(("code", "500.0"),)), True),
        (EventPattern(data=(("code", "404"),)), False),
        (EventPattern(data=(("ok", "false"),)), True),
        (EventPattern(data=(("ok", "False"),)), False),
        (EventPattern(data=(("missing", "x"),)), False),
        (EventPattern(type="app_down", service="web", data=(("path", "/x"),)), True),
    ],
)
def test_event_matches(pattern: EventPattern, matches: bool) -> None:
    assert event_matches(pattern, EVENT) is matches


def test_severity_order_and_unknown_severity() -> None:
    info = EventSample(0.0, "t", "s", "info", "n")
    odd = EventSample(0.0, "t", "s", "page", "n")
    assert not event_matches(EventPattern(min_severity="warning"), info)
    assert event_matches(EventPattern(min_severity="info"), info)
    assert not event_matches(EventPattern(min_severity="info"), odd)
    assert event_matches(EventPattern(type="t"), odd)


def test_event_group_labels() -> None:
    per_service = parse_rule_text(
        "alert: Down\nkind: event\nmatch: {type: app_down}\nkeep_firing_for: 1m\nby: [service]\n", "t"
    )
    everything = parse_rule_text(
        "alert: Down\nkind: event\nmatch: {type: app_down}\nkeep_firing_for: 1m\n", "t"
    )
    assert event_group_labels(per_service, EVENT) == {"service": "web"}
    assert event_group_labels(everything, EVENT) == {"host": "node-1", "service": "web", "type": "app_down"}


def ev(at: float, type_: str) -> EventSample:
    return EventSample(at, type_, "web", "critical", "a")


def test_a_resolve_event_with_keep_firing_for_starts_the_clock() -> None:
    rule = parse_rule_text(
        "alert: Down\nkind: event\nmatch: {type: down}\nresolve: {type: up}\nkeep_firing_for: 30s\n", "t"
    )
    state, out = evaluate(rule, AlertState(), Window({}, events=(ev(5.0, "down"), ev(10.0, "up"))), 10.0)
    assert [(t.at, t.to_status) for t in out] == [(5.0, FIRING)]
    assert next_due(rule, state) == 40.0
    state, out = evaluate(
        rule, state, Window({}, events=(ev(20.0, "down"),)), 20.0
    )  # down again: clock cleared
    assert out == [] and next_due(rule, state) is None
    state, out = evaluate(rule, state, Window({}, events=(ev(25.0, "up"),)), 25.0)
    state, out = evaluate(rule, state, Window({}), 55.0)
    assert [(t.at, t.from_status, t.to_status) for t in out] == [(55.0, FIRING, INACTIVE)]
