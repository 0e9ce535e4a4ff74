"""The evaluator over SQLite and PostgreSQL, with explicit times: transitions persisted with their
incident, restarts mid-``for`` and mid-firing, and a lease taken over after its holder died."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infragent.store import audit, incidents, rules
from support.databases import audit_entries

if TYPE_CHECKING:
    from conftest import Bench

from infragent.alerting import Evaluator

HOT, COOL = 0.95, 0.1
T0 = 1_767_000_000.0  # the tenant's rules were created then (conftest.py)


def _hot(bench: Bench, ev: Evaluator, start: float, end: float, value: float = HOT) -> None:
    """One sample every 5 s from ``start`` to ``end``, each handed over when it is "now"."""
    t = start
    while t <= end:
        bench.ingest(ev, "web-1", [(t, value)], t)
        t += 5.0


def test_a_batch_over_the_threshold_is_persisted_with_its_incident(bench: Bench) -> None:
    ev = bench.evaluator("A")
    ev.tick(T0)
    assert ev.holds(bench.client_id)
    _hot(bench, ev, T0, T0 + 20)
    assert bench.transitions() == [(T0, "inactive", "pending"), (T0 + 20, "pending", "firing")]
    row = bench.instance()
    assert row.state.status.value == "firing"
    assert row.state.firing_since == T0 + 20
    assert row.labels == {"host": "web-1", "alertname": "CpuHot"}
    assert row.incident_id is not None
    with bench.store.read() as conn:
        incident = incidents.get_incident(conn, bench.client_id, row.incident_id)
    assert incident is not None
    assert incident.status.value == "open"
    assert incident.rule_name == "CpuHot"
    kinds = [e.kind for e in audit_entries(bench.store, bench.client_id) if e.kind.startswith("alert.")]
    assert kinds == ["alert.pending", "alert.firing"]
    with bench.store.read() as conn:
        assert audit.verify_chain(audit.entries(conn, bench.client_id)) is None


def test_an_evaluation_that_changes_nothing_writes_nothing(bench: Bench) -> None:
    ev = bench.evaluator("A")
    ev.tick(T0)
    _hot(bench, ev, T0, T0 + 20)
    before = bench.instance()
    _hot(bench, ev, T0 + 25, T0 + 40)  # still hot: no transition, no timer moved
    ev.tick(T0 + 41)
    assert bench.instance() == before
    assert len(bench.transitions()) == 2


def test_a_restart_mid_for_fires_at_the_same_time(bench: Bench) -> None:
    first = bench.evaluator("A")
    first.tick(T0)
    _hot(bench, first, T0, T0 + 10)
    assert bench.transitions() == [(T0, "inactive", "pending")]
    first.stop()  # gives the lease up

    second = bench.evaluator("B")
    second.tick(T0 + 12)  # takes the tenant, fills its windows from the store, sweeps
    assert second.holds(bench.client_id)
    assert bench.instance().state.active_since == T0  # continued, not restarted
    _hot(bench, second, T0 + 15, T0 + 25)
    assert bench.transitions() == [(T0, "inactive", "pending"), (T0 + 20, "pending", "firing")]


def test_a_restart_before_the_next_batch_does_not_read_an_empty_window(bench: Bench) -> None:
    """The new holder evaluates right after loading, before any batch: only the store's samples can
    keep the alert pending (an empty window would read as "no data" and reset the ``for``)."""
    first = bench.evaluator("A")
    first.tick(T0)
    _hot(bench, first, T0, T0 + 15)
    first.stop()
    second = bench.evaluator("B")
    second.tick(T0 + 16)
    second.tick(T0 + 21)  # the due time passes with no new batch: the stored samples still hold
    assert bench.transitions() == [(T0, "inactive", "pending"), (T0 + 20, "pending", "firing")]


def test_a_restart_mid_firing_stays_firing_and_keeps_keep_firing_for(bench: Bench) -> None:
    first = bench.evaluator("A")
    first.tick(T0)
    _hot(bench, first, T0, T0 + 20)
    bench.ingest(first, "web-1", [(T0 + 25, COOL)], T0 + 25)  # stops holding: kept firing 30 s
    row = bench.instance()
    assert row.state.status.value == "firing"
    assert row.state.keep_firing_since == T0 + 25  # persisted although no transition happened
    incident_id = row.incident_id
    first.stop()

    second = bench.evaluator("B")
    second.tick(T0 + 30)
    second.tick(T0 + 50)
    assert bench.instance().state.status.value == "firing"
    second.tick(T0 + 56)
    assert bench.transitions() == [
        (T0, "inactive", "pending"),
        (T0 + 20, "pending", "firing"),
        (T0 + 55, "firing", "inactive"),
    ]
    with bench.store.read() as conn:
        incident = incidents.get_incident(conn, bench.client_id, incident_id or "")
    assert incident is not None and incident.status.value == "resolved"


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(bench: Bench) -> None:
    dead = bench.evaluator("A", lease_s=15.0)
    dead.tick(T0)
    _hot(bench, dead, T0, T0 + 5)  # pending, then "A" hangs: it neither renews nor releases
    other = bench.evaluator("B", lease_s=15.0)
    other.tick(T0 + 10)
    assert not other.holds(bench.client_id)  # still A's
    other.tick(T0 + 16)  # A's lease ran out at T0 + 15
    assert other.holds(bench.client_id)
    _hot(bench, other, T0 + 20, T0 + 20)
    # A wakes up and evaluates a batch: its write is refused, and it gives the tenant up
    bench.ingest(dead, "web-1", [(T0 + 21, HOT)], T0 + 21)
    dead.tick(T0 + 22)
    assert not dead.holds(bench.client_id)
    assert bench.transitions() == [(T0, "inactive", "pending"), (T0 + 20, "pending", "firing")]


def test_a_tenant_whose_rules_change_is_reloaded_on_the_tick(bench: Bench) -> None:
    ev = bench.evaluator("A")
    ev.tick(T0)
    before = ev.tenant(bench.client_id)
    bench.add_rule("alert: Any\nkind: absence\nsilent: 1m\nby: [host]\n", now=T0 + 1)
    ev.tick(T0 + 2)
    after = ev.tenant(bench.client_id)
    assert after is not None and after is not before
    assert sorted(e.record.name for e in after.rules) == ["Any", "CpuHot"]


def test_switching_a_firing_rule_off_resolves_its_alert_and_incident(bench: Bench) -> None:
    ev = bench.evaluator("A")
    ev.tick(T0)
    _hot(bench, ev, T0, T0 + 20)
    incident_id = bench.instance().incident_id
    with bench.store.write() as conn:
        rules.set_enabled(conn, bench.client_id, "CpuHot", False, now=T0 + 30, actor="test")
    ev.tick(T0 + 31)
    assert bench.transitions()[-1] == (T0 + 31, "firing", "inactive")
    assert bench.instance().state.status.value == "inactive"
    with bench.store.read() as conn:
        incident = incidents.get_incident(conn, bench.client_id, incident_id or "")
    assert incident is not None and incident.status.value == "resolved"
    ev.tick(T0 + 40)
    assert len(bench.transitions()) == 3
