"""``Tenant``: one tenant's rules, windows and instances in memory, driven with time passed in.

What the evaluator relies on: series are matched to rules once and grouped into instances; a
batch makes exactly the touched instances evaluable; timers fire at their due time on the tick;
persisted state is continued, never restarted; the instance cap holds; event rules claim events.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from infragent.alerting.ports import RuleRecord, SavedInstance, Written
from infragent.alerting.tenant import Tenant
from infragent.rules.evaluate import group_key
from infragent.rules.files import parse_rule_text
from infragent.rules.state import AlertState, AlertStatus
from infragent.rules.window import EventSample
from infragent.wire import SeriesData

CPU = "system.cpu.utilization"
HIGH_CPU = """
alert: HighCpu
kind: threshold
metric: 'system.cpu.utilization{cpu.mode!="idle"}'
function: avg
window: 1m
by: [host]
combine: sum
op: ">"
value: 0.9
for: 30s
annotations: {summary: "CPU on {{ $labels.host }} is {{ $value }}"}
"""
SILENT = """
alert: HostSilent
kind: absence
silent: 2m
by: [host]
"""
APP_DOWN = """
alert: AppDown
kind: event
match: {type: app_down, min_severity: warning}
resolve: {type: app_up}
severity: critical
"""


def _rule(text: str, rule_id: str) -> RuleRecord:
    rule = parse_rule_text(text, "test")
    return RuleRecord(rule_id, rule.name, rule)


def _cpu(mode: str, ts: list[float], values: list[float], **extra: str) -> SeriesData:
    return SeriesData(CPU, "1", "gauge", False, {"cpu": "0", "cpu.mode": mode, **extra}, ts, values)


def _tenant(*texts: str, saved: tuple[SavedInstance, ...] = (), cap: int = 100, pause: float = 0.0) -> Tenant:
    rules = [_rule(t, f"r{i}") for i, t in enumerate(texts)]
    return Tenant("c1", rules, saved, max_instances=cap, auto_pause_s=pause)


def test_series_are_matched_once_and_grouped_by_host() -> None:
    t = _tenant(HIGH_CPU)
    dirty = t.observe(
        "a",
        [
            _cpu("user", [0.0], [0.5]),
            _cpu("system", [0.0], [0.1]),
            _cpu("idle", [0.0], [0.4]),  # the selector leaves idle out
            SeriesData("system.memory.utilization", "1", "gauge", False, {}, [0.0], [0.3]),
        ],
    )
    assert len(t.instances) == 1
    (inst,) = dirty
    assert inst.labels == {"host": "a", "alertname": "HighCpu"}
    assert sorted(e.labels["cpu.mode"] for e in inst.series) == ["system", "user"]
    # the same series again, attributes in another order: no new entry, no new instance
    again = t.observe(
        "a", [SeriesData(CPU, "1", "gauge", False, {"cpu.mode": "user", "cpu": "0"}, [10.0], [0.6])]
    )
    assert again == {inst}
    assert len(inst.series) == 2
    t.observe("b", [_cpu("user", [0.0], [0.1])])
    assert len(t.instances) == 2


def test_pending_then_firing_at_the_due_time_on_the_tick() -> None:
    t = _tenant(HIGH_CPU)
    dirty = t.observe("a", [_cpu("user", [100.0, 105.0], [0.95, 0.97])])
    (change,) = t.evaluate_all(dirty, 106.0)[0]
    assert [(x.from_status, x.to_status) for x in change.transitions] == [
        (AlertStatus.INACTIVE, AlertStatus.PENDING)
    ]
    inst = change.instance
    assert inst.due == inst.state.active_since + 30.0
    t.observe("a", [_cpu("user", [110.0, 120.0, 130.0], [0.96, 0.99, 0.98])])
    assert inst in t.due(131.0)  # pending: looked at on every tick
    changes, _ = t.evaluate_all(t.due(140.0), 140.0)
    (fired,) = changes[0].transitions
    assert fired.to_status is AlertStatus.FIRING
    assert fired.at == inst.state.active_since + 30.0  # the due time, not the tick that noticed
    write = t.write_for(changes[0])
    assert write.annotations["summary"].startswith("CPU on a is ")
    assert write.report_fired


def test_an_inactive_instance_without_timers_is_left_alone_by_the_tick() -> None:
    t = _tenant(HIGH_CPU)
    dirty = t.observe("a", [_cpu("user", [100.0], [0.2])])
    assert t.evaluate_all(dirty, 101.0)[0] == []
    assert t.due(200.0) == []
    assert len(t.due(200.0, sweep=True)) == 1


def test_persisted_firing_state_is_continued_even_before_its_series_come_back() -> None:
    rule = _rule(HIGH_CPU, "r0")
    group = {"host": "a"}
    firing = AlertState(AlertStatus.FIRING, active_since=70.0, firing_since=100.0, last_value=0.95)
    saved = SavedInstance("r0", group_key(group), {"host": "a", "alertname": "HighCpu"}, firing, "inc-1")
    t = Tenant("c1", [rule], [saved], max_instances=10)
    (inst,) = t.instances.values()
    assert inst.state == firing
    assert inst.incident_id == "inc-1" and inst.reported
    assert inst in t.due(200.0)
    # its series arrive: the same instance (same group key) gets them
    t.observe("a", [_cpu("user", [190.0], [0.99])])
    assert len(t.instances) == 1
    assert len(inst.series) == 1


def test_the_instance_cap_refuses_new_groups_and_counts_them() -> None:
    t = _tenant(HIGH_CPU, cap=2)
    for host in ("a", "b", "c", "d"):
        t.observe(host, [_cpu("user", [0.0], [0.5])])
    assert len(t.instances) == 2
    assert t.refused == 2


def test_host_absence_uses_each_hosts_last_sign_of_life() -> None:
    t = _tenant(SILENT)
    t.note_hosts({"a": 1000.0, "b": 1200.0})
    assert t.due(1110.0) == []  # nobody silent for 2m yet: nothing to evaluate on this tick
    changes, n = t.evaluate_all(t.due(1250.0), 1250.0)
    assert n == 1  # only "a" (silent since 1000) can hold
    (change,) = changes
    assert change.instance.labels["host"] == "a"
    assert change.transitions[-1].to_status is AlertStatus.FIRING
    assert change.transitions[-1].at == 1120.0  # silent since 1000, for 2m: due then


def test_event_rules_claim_and_fire_on_matching_events_only() -> None:
    t = _tenant(APP_DOWN, HIGH_CPU)
    down = EventSample(50.0, "app_down", "web", "critical", "host-1", {}, "e1")
    info = EventSample(51.0, "app_down", "web", "info", "host-1", {}, "e2")
    assert t.claims(down)
    assert not t.claims(info)  # below min_severity
    assert t.claims(EventSample(60.0, "app_up", "web", "info", "host-1", {}, "e3"))  # the resolve pattern
    (change,) = t.observe_event(down, 50.0)
    assert change.transitions[-1].to_status is AlertStatus.FIRING
    assert t.observe_event(info, 51.0) == []


def test_the_auto_pause_holds_the_fire_back_until_it_has_lasted() -> None:
    t = _tenant(HIGH_CPU.replace("for: 30s", "for: 0s"), pause=60.0)
    dirty = t.observe("a", [_cpu("user", [100.0], [0.99])])
    (change,) = t.evaluate_all(dirty, 100.0)[0]
    write = t.write_for(change)
    assert not write.report_fired
    t.committed(write, Written(None, False))
    assert t.deferred(159.0) == []
    (inst,) = t.deferred(160.0)
    deferred = t.deferred_write(inst)
    assert deferred.deferred_fire is not None and deferred.deferred_fire.fired
    assert deferred.deferred_fire.at == 100.0
    t.committed(deferred, Written("inc-9", True))
    assert t.deferred(300.0) == []


@pytest.mark.parametrize("firing", [True, False])
def test_keep_firing_since_is_a_change_to_write_without_a_transition(firing: bool) -> None:
    text = HIGH_CPU.replace("for: 30s", "for: 0s") + "keep_firing_for: 5m\n"
    t = _tenant(text)
    dirty = t.observe("a", [_cpu("user", [100.0], [0.99 if firing else 0.1])])
    t.evaluate_all(dirty, 100.0)
    dirty = t.observe("a", [_cpu("user", [200.0], [0.1])])
    changes, _ = t.evaluate_all(dirty, 200.0)
    if firing:
        (change,) = changes
        assert change.transitions == ()
        assert change.instance.state.keep_firing_since == 200.0
    else:
        assert changes == []


def test_the_alerts_of_a_rule_switched_off_are_retired_once() -> None:
    rule = _rule(HIGH_CPU, "r0")
    off = RuleRecord("r0", rule.name, replace(rule.rule, enabled=False))
    firing = AlertState(AlertStatus.FIRING, active_since=70.0, firing_since=100.0, last_value=0.95)
    saved = SavedInstance(
        "r0", group_key({"host": "a"}), {"host": "a", "alertname": "HighCpu"}, firing, "inc-1"
    )
    t = Tenant("c1", [off], [saved], max_instances=10)
    assert t.instances == {}  # nothing of a switched-off rule is evaluated
    (change,) = t.retire(500.0)
    (gone,) = change.transitions
    assert (gone.from_status, gone.to_status, gone.at) == (AlertStatus.FIRING, AlertStatus.INACTIVE, 500.0)
    assert gone.resolved
    write = t.write_for(change)
    assert write.reported and write.incident_id == "inc-1"  # its incident learns of it
    assert write.state.status is AlertStatus.INACTIVE and write.state.resolved_at == 500.0
    assert t.retire(600.0) == []


def test_a_sample_stamped_ahead_of_the_clock_is_evaluated_again_when_its_time_comes() -> None:
    t = _tenant(HIGH_CPU.replace("function: avg", "function: last").replace("for: 30s", "for: 0s"))
    t.observe("a", [_cpu("user", [95.0], [0.1])])
    dirty = t.observe("a", [_cpu("user", [102.0], [0.99])])  # the agent's clock is 2 s ahead
    assert t.evaluate_all(dirty, 100.0)[0] == []  # not in (now - 1m, now] yet
    assert t.due(101.0) == []
    (inst,) = t.due(102.0)
    (change,) = t.evaluate_all([inst], 102.0)[0]
    assert change.transitions[-1].to_status is AlertStatus.FIRING
