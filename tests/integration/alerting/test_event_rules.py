"""Event rules over a real database: an event the rule matches opens the alert's incident and is
linked to it; ``claims_event`` tells the events path which events belong to a rule; an event that
reached another process is read back from the store by the holder, once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infragent.alerting.ports import Signal
from infragent.model import Event, Severity
from infragent.store import alerts, events
from infragent.store.schema import events as events_table

if TYPE_CHECKING:
    from conftest import Bench

T0 = 1_767_000_000.0
APP_DOWN = """
alert: AppDown
kind: event
match: {type: app_down, min_severity: warning}
resolve: {type: app_up}
by: [service]
severity: critical
"""


def _event(bench: Bench, type: str, at: float, severity: Severity = Severity.CRITICAL) -> Event:
    with bench.store.write() as conn:
        return events.insert_event(
            conn, bench.client_id, type=type, service="web", severity=severity, data={}, node_id="h1", now=at
        )


def _incident_of(bench: Bench, event_id: str) -> str | None:
    with bench.store.read() as conn:
        got = conn.execute(events_table.select().where(events_table.c.id == event_id)).one()
    return got.incident_id  # type: ignore[no-any-return]


def test_a_matching_event_fires_the_rule_and_joins_its_incident(bench: Bench) -> None:
    rule_id = bench.add_rule(APP_DOWN)
    ev = bench.evaluator("A")
    ev.tick(T0)
    assert ev.claims_event(bench.client_id, "app_down", "web", "critical", {})
    assert not ev.claims_event(bench.client_id, "app_down", "web", "info", {})  # below min_severity
    assert ev.claims_event(bench.client_id, "app_up", "web", "info", {})  # the resolve pattern
    assert not ev.claims_event(bench.client_id, "disk_full", "web", "critical", {})

    first = _event(bench, "app_down", T0 + 1)
    ev.observe_event(bench.client_id, first)
    ev.run_pending(T0 + 1)
    assert [to for _, _, to in bench.transitions(rule_id)] == ["firing"]
    incident = _incident_of(bench, first.id)
    assert incident is not None
    again = _event(bench, "app_down", T0 + 2)  # no transition: still joins the incident
    ev.observe_event(bench.client_id, again)
    ev.run_pending(T0 + 2)
    assert _incident_of(bench, again.id) == incident
    up = _event(bench, "app_up", T0 + 3, Severity.INFO)
    ev.observe_event(bench.client_id, up)
    ev.run_pending(T0 + 3)
    assert [to for _, _, to in bench.transitions(rule_id)] == ["firing", "inactive"]


def test_an_event_another_process_stored_is_read_back_by_the_holder_once(bench: Bench) -> None:
    rule_id = bench.add_rule(APP_DOWN)
    holder = bench.evaluator("A")
    holder.tick(T0)
    down = _event(bench, "app_down", T0 + 1)  # stored by another process: only its signal comes here
    holder.signalled(Signal(bench.client_id, events=True))
    holder.run_pending(T0 + 1)
    holder.signalled(Signal(bench.client_id, events=True))  # a second signal re-reads the overlap
    holder.observe_event(bench.client_id, down)  # and the same event handed over in-process
    holder.run_pending(T0 + 2)
    assert [to for _, _, to in bench.transitions(rule_id)] == ["firing"]
    with bench.store.read() as conn:
        (row,) = [r for r in alerts.load_instances(conn, bench.client_id) if r.rule_id == rule_id]
    assert row.labels == {"service": "web", "alertname": "AppDown"}
    assert _incident_of(bench, down.id) == row.incident_id
