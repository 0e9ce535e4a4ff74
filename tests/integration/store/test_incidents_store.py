"""Incidents in the store, on SQLite and PostgreSQL: events and alert transitions open, join, reopen
and resolve them; people and the responder move them; reads page and stream them.

What each test proves is in its name. Alert instances are written the way the evaluator writes
them (the row with its new status first, then ``record_alert_transition`` in the same transaction,
then the returned id stored on the row), so the "still firing" check sees what it will see live.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

import pytest
import sqlalchemy as sa

from infragent.incidents.core import IncidentNotFoundError, StatusChangeError
from infragent.incidents.model import Incident, IncidentPolicy, IncidentStatus, TimelineEntry
from infragent.model import Event, Severity
from infragent.rules.state import AlertStatus, Transition
from infragent.store import audit, events
from infragent.store import incidents as inc
from infragent.store.audit import verify_chain
from infragent.store.records import Registration
from infragent.store.schema import alert_instances, alert_rules
from infragent.store.sql import SqlStore
from support.databases import create_client

POLICY = IncidentPolicy(reopen_window_s=600, flap_threshold=3, flap_window_s=3600)
S = IncidentStatus
A = AlertStatus


@pytest.fixture
def tenant(client_reg: Registration) -> str:
    return client_reg.client.id


def _event(
    store: SqlStore, client_id: str, now: float, *, type_: str = "app_down", node: str = "n1"
) -> Event:
    with store.write() as conn:
        return events.insert_event(
            conn,
            client_id,
            type=type_,
            service="web",
            severity=Severity.CRITICAL,
            data={},
            node_id=node,
            now=now,
        )


def _record(store: SqlStore, event: Event, now: float, policy: IncidentPolicy = POLICY) -> str:
    with store.write() as conn:
        return inc.record_event(conn, event, policy, now)


def _rule(store: SqlStore, client_id: str, name: str = "cpu_high") -> str:
    rule_id = str(uuid.uuid4())
    with store.write() as conn:
        conn.execute(
            alert_rules.insert().values(
                id=rule_id,
                client_id=client_id,
                name=name,
                group_name="g",
                origin="api",
                spec={},
                enabled=True,
                created_at=0.0,
                updated_at=0.0,
            )
        )
    return rule_id


class Instance:
    """One alert instance, persisted as the evaluator does it."""

    def __init__(self, store: SqlStore, client_id: str, rule_id: str, host: str, name: str = "cpu_high"):
        self.store, self.client_id, self.rule_id, self.name = store, client_id, rule_id, name
        self.labels = {"host": host}
        self.group_key = f"g-{host}"
        self.status = A.INACTIVE
        self.incident_id: str | None = None

    def go(self, to: AlertStatus, now: float, policy: IncidentPolicy = POLICY) -> str | None:
        transition = Transition(now, self.status, to, 95.0, "value above 90")
        key = {"client_id": self.client_id, "rule_id": self.rule_id, "group_key": self.group_key}
        with self.store.write() as conn:
            conn.execute(alert_instances.delete().filter_by(**key))
            conn.execute(
                alert_instances.insert().values(
                    **key,
                    labels=self.labels,
                    status=to.value,
                    memo=[],
                    incident_id=self.incident_id,
                    updated_at=now,
                )
            )
            got = inc.record_alert_transition(
                conn,
                self.client_id,
                rule_id=self.rule_id,
                rule_name=self.name,
                group_key=self.group_key,
                labels=self.labels,
                severity="critical",
                annotations={},
                transition=transition,
                policy=policy,
                now=now,
            )
            conn.execute(alert_instances.update().filter_by(**key).values(incident_id=got))
        self.status, self.incident_id = to, got
        return got

    def fire(self, now: float, policy: IncidentPolicy = POLICY) -> str:
        self.go(A.PENDING, now - 1, policy)
        got = self.go(A.FIRING, now, policy)
        assert got is not None
        return got


def _get(store: SqlStore, client_id: str, incident_id: str) -> Incident:
    with store.read() as conn:
        found = inc.get_incident(conn, client_id, incident_id)
    assert found is not None
    return found


def _kinds(store: SqlStore, client_id: str, incident_id: str) -> list[str]:
    with store.read() as conn:
        return [r.entry.kind for r in inc.timeline(conn, client_id, incident_id)]


def _count(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM incidents")).scalar_one())


def test_an_event_storm_of_one_service_is_one_incident(store: SqlStore, tenant: str) -> None:
    ids = {_record(store, _event(store, tenant, 1000.0 + i), 1000.0 + i) for i in range(5)}
    assert len(ids) == 1 and _count(store) == 1
    (incident_id,) = ids
    incident = _get(store, tenant, incident_id)
    assert incident.title == "app_down on web (n1)" and incident.source == "event"
    assert incident.status is S.OPEN and incident.updated_at == 1004.0
    assert _kinds(store, tenant, incident_id) == ["opened"] + ["event"] * 5
    with store.read() as conn:
        linked = conn.execute(sa.text("SELECT DISTINCT incident_id FROM events")).scalars().all()
        log = audit.entries(conn, tenant)
    assert linked == [incident_id]
    kinds = [e.kind for e in log if e.subject == incident_id]
    assert kinds == ["incident.opened"] + ["incident.joined"] * 4
    assert verify_chain(log) is None


def test_another_node_or_type_is_another_incident(store: SqlStore, tenant: str) -> None:
    first = _record(store, _event(store, tenant, 1000.0), 1000.0)
    assert _record(store, _event(store, tenant, 1001.0, node="n2"), 1001.0) != first
    assert _record(store, _event(store, tenant, 1002.0, type_="slow"), 1002.0) != first
    assert _count(store) == 3


def test_a_fired_alert_opens_and_its_resolution_resolves_by_rules(store: SqlStore, tenant: str) -> None:
    alert = Instance(store, tenant, _rule(store, tenant), "web-1")
    assert alert.go(A.PENDING, 999.0) is None  # pending alone opens nothing
    incident_id = alert.fire(1000.0)
    opened = _get(store, tenant, incident_id)
    assert opened.title == "cpu_high on web-1" and opened.rule_name == "cpu_high" and opened.status is S.OPEN
    assert alert.go(A.INACTIVE, 1100.0) == incident_id
    resolved = _get(store, tenant, incident_id)
    assert (
        resolved.status is S.RESOLVED and resolved.resolved_by == "rules" and resolved.resolved_at == 1100.0
    )
    assert _kinds(store, tenant, incident_id) == ["opened", "alert", "alert", "status"]


@pytest.mark.parametrize("moves", [[S.ACKNOWLEDGED], [S.REMEDIATING], [S.REMEDIATING, S.ESCALATED]])
def test_rules_resolve_an_acknowledged_remediating_or_escalated_incident(
    store: SqlStore, tenant: str, moves: list[IncidentStatus]
) -> None:
    alert = Instance(store, tenant, _rule(store, tenant), "web-1")
    incident_id = alert.fire(1000.0)
    with store.write() as conn:
        for i, to in enumerate(moves):
            inc.set_status(conn, tenant, incident_id, to, "responder", 1001.0 + i)
    alert.go(A.INACTIVE, 1100.0)
    resolved = _get(store, tenant, incident_id)
    assert resolved.status is S.RESOLVED and resolved.resolved_by == "rules"


def test_an_incident_resolved_by_hand_stays_resolved_when_its_alert_clears(
    store: SqlStore, tenant: str
) -> None:
    alert = Instance(store, tenant, _rule(store, tenant), "web-1")
    incident_id = alert.fire(1000.0)
    with store.write() as conn:
        inc.set_status(conn, tenant, incident_id, S.RESOLVED, "key:k", 1050.0)
    assert alert.go(A.INACTIVE, 1100.0) == incident_id
    done = _get(store, tenant, incident_id)
    assert done.resolved_by == "key:k" and _kinds(store, tenant, incident_id)[-1] == "alert"


def test_grouped_alerts_join_one_incident_resolved_when_the_last_resolves(
    store: SqlStore, tenant: str
) -> None:
    grouping = replace(POLICY, group_window_s=60.0)
    cpu = Instance(store, tenant, _rule(store, tenant, "cpu_high"), "web-1", "cpu_high")
    mem = Instance(store, tenant, _rule(store, tenant, "mem_high"), "web-1", "mem_high")
    other = Instance(store, tenant, _rule(store, tenant, "disk_full"), "db-1", "disk_full")
    incident_id = cpu.fire(1000.0, grouping)
    assert mem.fire(1030.0, grouping) == incident_id
    assert other.fire(1031.0, grouping) != incident_id  # another host: another incident
    assert "joined" in _kinds(store, tenant, incident_id)
    cpu.go(A.INACTIVE, 1100.0, grouping)
    assert _get(store, tenant, incident_id).status is S.OPEN  # mem_high still firing
    mem.go(A.INACTIVE, 1200.0, grouping)
    assert _get(store, tenant, incident_id).status is S.RESOLVED


def test_outside_the_group_window_a_host_alert_opens_its_own(store: SqlStore, tenant: str) -> None:
    grouping = replace(POLICY, group_window_s=60.0)
    cpu = Instance(store, tenant, _rule(store, tenant, "cpu_high"), "web-1", "cpu_high")
    mem = Instance(store, tenant, _rule(store, tenant, "mem_high"), "web-1", "mem_high")
    assert cpu.fire(1000.0, grouping) != mem.fire(1061.0, grouping)


def test_refiring_within_the_window_reopens_and_flapping_is_marked_once(store: SqlStore, tenant: str) -> None:
    alert = Instance(store, tenant, _rule(store, tenant), "web-1")
    incident_id = alert.fire(1000.0)
    for i in range(1, 5):
        alert.go(A.INACTIVE, 1000.0 + 100 * i - 50)
        assert alert.fire(1000.0 + 100 * i) == incident_id
    incident = _get(store, tenant, incident_id)
    assert incident.reopen_count == 4 and incident.flap_count == 4 and incident.flapping
    kinds = _kinds(store, tenant, incident_id)
    assert kinds.count("reopened") == 4 and kinds.count("flapping") == 1
    assert _count(store) == 1


def test_refiring_after_the_reopen_window_opens_a_new_incident(store: SqlStore, tenant: str) -> None:
    alert = Instance(store, tenant, _rule(store, tenant), "web-1")
    first = alert.fire(1000.0)
    alert.go(A.INACTIVE, 1100.0)
    assert alert.fire(1100.0 + POLICY.reopen_window_s + 1) != first
    assert _get(store, tenant, first).status is S.RESOLVED


def test_status_moves_are_checked_recorded_and_audited(store: SqlStore, tenant: str) -> None:
    incident_id = _record(store, _event(store, tenant, 1000.0), 1000.0)
    with store.write() as conn:
        acked = inc.set_status(conn, tenant, incident_id, S.ACKNOWLEDGED, "key:abc", 1010.0)
    assert acked.acknowledged_by == "key:abc" and acked.acknowledged_at == 1010.0
    with pytest.raises(StatusChangeError) as err, store.write() as conn:
        inc.set_status(conn, tenant, incident_id, S.ESCALATED, "responder", 1011.0)
    assert err.value.from_status is S.ACKNOWLEDGED and err.value.to_status is S.ESCALATED
    with store.write() as conn:
        done = inc.set_status(conn, tenant, incident_id, S.RESOLVED, "key:abc", 1020.0, note="fixed the disk")
        note = inc.add_note(conn, tenant, incident_id, "key:abc", "root cause: cron job", 1030.0)
    assert done.status is S.RESOLVED and done.resolved_by == "key:abc"
    with store.read() as conn:
        entries = inc.timeline(conn, tenant, incident_id)
        log = [e for e in audit.entries(conn, tenant) if e.subject == incident_id]
    assert entries[-1].id == note.id and entries[-1].entry.detail == {"text": "root cause: cron job"}
    assert entries[-2].entry.detail == {"from": "acknowledged", "to": "resolved", "note": "fixed the disk"}
    assert [e.kind for e in log] == ["incident.opened", "incident.status", "incident.status", "incident.note"]
    assert _get(store, tenant, incident_id).updated_at == 1030.0


def test_another_tenants_incident_is_not_found(store: SqlStore, tenant: str) -> None:
    incident_id = _record(store, _event(store, tenant, 1000.0), 1000.0)
    other = create_client(store, "b@example.com", "B", "http://127.0.0.1:9/h", now=1000.0).client.id
    with store.read() as conn:
        assert inc.get_incident(conn, other, incident_id) is None
        assert inc.timeline(conn, other, incident_id) == []
        assert inc.list_incidents(conn, other).incidents == []
        assert inc.changes_since(conn, other, 0) == []
    for change in (
        lambda c: inc.set_status(c, other, incident_id, S.ACKNOWLEDGED, "key:x", 1001.0),
        lambda c: inc.add_note(c, other, incident_id, "key:x", "hi", 1001.0),
        lambda c: inc.add_timeline(c, other, incident_id, TimelineEntry(1001.0, "decision", "responder")),
    ):
        with pytest.raises(IncidentNotFoundError), store.write() as conn:
            change(conn)
    assert _get(store, tenant, incident_id).status is S.OPEN


def test_the_responder_adds_entries_and_moves_the_incident(store: SqlStore, tenant: str) -> None:
    incident_id = _record(store, _event(store, tenant, 1000.0), 1000.0)
    with store.write() as conn:
        inc.add_timeline(
            conn, tenant, incident_id, TimelineEntry(1001.0, "decision", "responder", {"action": "restart"})
        )
        inc.set_status(conn, tenant, incident_id, S.REMEDIATING, "responder", 1001.0)
        inc.add_timeline(
            conn, tenant, incident_id, TimelineEntry(1002.0, "result", "responder", {"status": "ok"})
        )
        inc.set_status(conn, tenant, incident_id, S.RESOLVED, "responder", 1003.0)
    assert _kinds(store, tenant, incident_id) == ["opened", "event", "decision", "status", "result", "status"]
    # the same event again within the reopen window reopens it
    assert _record(store, _event(store, tenant, 1010.0), 1010.0) == incident_id
    reopened = _get(store, tenant, incident_id)
    assert reopened.status is S.OPEN and reopened.reopen_count == 1 and reopened.resolved_at is None


def test_list_pages_through_every_incident_once_newest_change_first(store: SqlStore, tenant: str) -> None:
    made = [_record(store, _event(store, tenant, 1000.0 + i, node=f"n{i}"), 1000.0 + i) for i in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        with store.read() as conn:
            page = inc.list_incidents(conn, tenant, limit=3, cursor=cursor)
        seen += [i.id for i in page.incidents]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3


def test_list_filters_by_status_severity_source_and_since(store: SqlStore, tenant: str) -> None:
    a = _record(store, _event(store, tenant, 1000.0, node="a"), 1000.0)
    b = _record(store, _event(store, tenant, 1001.0, node="b"), 1001.0)
    c = _record(store, _event(store, tenant, 1002.0, node="c"), 1002.0)
    with store.write() as conn:
        inc.set_status(conn, tenant, a, S.ACKNOWLEDGED, "key:k", 1003.0)
        inc.set_status(conn, tenant, b, S.RESOLVED, "key:k", 1004.0)
    with store.read() as conn:

        def ids(**kw: object) -> set[str]:
            return {i.id for i in inc.list_incidents(conn, tenant, **kw).incidents}  # type: ignore[arg-type]

        assert ids(status=S.OPEN) == {c}
        assert ids(status=[S.OPEN, S.ACKNOWLEDGED]) == {a, c}
        assert ids(severity="critical") == {a, b, c} and ids(severity="warning") == set()
        assert ids(source="event") == {a, b, c} and ids(source="alert") == set()
        assert ids(since=1003.0) == {a, b}
        with pytest.raises(inc.CursorError):
            inc.list_incidents(conn, tenant, cursor="not-a-cursor")


def test_changes_since_streams_the_tenants_timeline_in_order(store: SqlStore, tenant: str) -> None:
    with store.read() as conn:
        start = inc.latest_change_id(conn, tenant)
    incident_id = _record(store, _event(store, tenant, 1000.0), 1000.0)
    with store.write() as conn:
        inc.set_status(conn, tenant, incident_id, S.ACKNOWLEDGED, "key:k", 1001.0)
    with store.read() as conn:
        changes = inc.changes_since(conn, tenant, start)
        later = inc.changes_since(conn, tenant, changes[0].id, limit=1)
    assert [c.entry.kind for c in changes] == ["opened", "event", "status"]
    assert all(c.incident.status is S.ACKNOWLEDGED for c in changes)  # the incident as it is now
    assert [c.id for c in later] == [changes[1].id]


def test_active_incident_for_a_fingerprint(store: SqlStore, tenant: str) -> None:
    incident_id = _record(store, _event(store, tenant, 1000.0), 1000.0)
    fingerprint = _get(store, tenant, incident_id).fingerprint
    with store.write() as conn:
        assert inc.active_incident_for(conn, tenant, fingerprint) is not None
        inc.set_status(conn, tenant, incident_id, S.RESOLVED, "key:k", 1001.0)
        assert inc.active_incident_for(conn, tenant, fingerprint) is None


def test_two_transactions_recording_one_fingerprint_open_one_incident(store: SqlStore, tenant: str) -> None:
    """The second transaction is held at the tenant's lock until the first commits, then joins."""
    first, second = _event(store, tenant, 1000.0), _event(store, tenant, 1000.5)
    got: list[str] = []
    failed: list[BaseException] = []

    def other() -> None:
        try:
            got.append(_record(store, second, 1000.5))
        except BaseException as exc:  # reported by the assertion below
            failed.append(exc)

    thread = threading.Thread(target=other)
    with store.write() as conn:
        mine = inc.record_event(conn, first, POLICY, 1000.0)
        thread.start()
        if store.is_postgres:  # wait (bounded) until the other one is blocked on the lock
            deadline = time.monotonic() + 10
            with store.engine.connect() as probe:
                while not probe.execute(
                    sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar_one():
                    assert time.monotonic() < deadline, "the second transaction never waited"
                    probe.rollback()
                    time.sleep(0.01)
    thread.join(30)
    assert failed == [] and got == [mine]
    assert _count(store) == 1
