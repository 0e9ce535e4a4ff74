"""The outbox's store functions on SQLite and PostgreSQL: claims of changes, groups and deliveries,
leases fenced by owner and attempt, and every creating step idempotent by its key.

The concurrency tests run two real transactions at once (two connections of the test's engine): on
PostgreSQL the second claim skips what the first holds (``FOR UPDATE SKIP LOCKED``); SQLite admits
one writer, so there they run one after the other and must still not take the same row twice.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from infragent.notify.model import IncidentSummary, Message
from infragent.store import deliveries, outbox, users
from infragent.store.notify_schema import notify_deliveries
from infragent.store.sql import SqlStore

NOW = 10_000.0


def _message(client_id: str, incident_ids: tuple[str, ...] = ("i-1",)) -> Message:
    incidents = tuple(
        IncidentSummary(i, f"title {i}", "critical", "open", f"fp-{i}", {"host": "web-1"}, NOW - 60)
        for i in incident_ids
    )
    return Message(
        str(uuid.uuid4()), client_id, "firing", incidents, NOW, {"alertname": "cpu"}, firing_count=1
    )


def _deliver(
    store: SqlStore, client_id: str, cause: str, channel_id: str = "ch-1", **kw: object
) -> tuple[Message, bool]:
    message = _message(client_id)
    with store.write() as conn:
        inserted = deliveries.insert_delivery(
            conn,
            message,
            channel_id=channel_id,
            cause=cause,
            now=NOW,
            deadline_at=NOW + 3600,
            **kw,  # type: ignore[arg-type]
        )
    return message, inserted


def test_changes_are_claimed_oldest_first_and_once(store: SqlStore, tenant: str) -> None:
    with store.write() as conn:
        ids = [outbox.enqueue_change(conn, tenant, f"inc-{n}", "opened", NOW + n) for n in range(3)]
        assert conn.info.pop(outbox.CHANGED) is True
    with store.write() as conn:
        first = outbox.claim_change(conn)
        assert first is not None and first.id == ids[0] and first.kind == "opened"
        outbox.mark_processed(conn, first.id, NOW)
    with store.write() as conn:
        skipped = outbox.claim_change(conn, skip=[ids[1]])
        assert skipped is not None and skipped.id == ids[2]
    with store.read() as conn:
        assert outbox.pending_changes(conn) == 2


@pytest.mark.postgres
def test_two_transactions_claim_different_changes_on_postgres(pg_store: SqlStore, pg_tenant: str) -> None:
    with pg_store.write() as conn:
        ids = [outbox.enqueue_change(conn, pg_tenant, f"inc-{n}", "opened", NOW) for n in range(2)]
    with pg_store.engine.connect() as a, pg_store.engine.connect() as b, a.begin(), b.begin():
        got_a = outbox.claim_change(a)
        got_b = outbox.claim_change(b)
        assert got_a is not None and got_b is not None
        assert {got_a.id, got_b.id} == set(ids)


def test_a_group_is_created_once_and_keeps_its_log(store: SqlStore, tenant: str) -> None:
    with store.write() as conn:
        group = outbox.lock_group(conn, tenant, "root", "k1", {"alertname": "cpu"}, NOW)
        assert outbox.set_member(conn, group.id, tenant, "inc-1", "firing", NOW) is None
        assert outbox.set_member(conn, group.id, tenant, "inc-1", "firing", NOW + 1) == "firing"
        outbox.set_next_flush(conn, group.id, NOW + 30)
    with store.write() as conn:
        again = outbox.lock_group(conn, tenant, "root", "k1", {"alertname": "cpu"}, NOW + 5)
        assert again.id == group.id and again.created_at == NOW and again.next_flush_at == NOW + 30
        assert outbox.claim_due_group(conn, NOW + 29) is None
        due = outbox.claim_due_group(conn, NOW + 30)
        assert due is not None and due.id == group.id
        outbox.record_flush(
            conn,
            group.id,
            sent_firing=["inc-1"],
            sent_resolved=[],
            sent_at=NOW + 30,
            flush_count=1,
            next_flush_at=None,
        )
    with store.read() as conn:
        logged = outbox.get_group(conn, group.id)
        assert logged is not None
        assert (
            logged.sent_firing == frozenset({"inc-1"})
            and logged.flush_count == 1
            and logged.next_flush_at is None
        )
        assert [m.incident_id for m in outbox.members(conn, group.id)] == ["inc-1"]
        assert outbox.groups_of(conn, tenant, "inc-1") == [group.id]


def test_racing_creators_of_one_group_end_on_one_row(store: SqlStore, tenant: str) -> None:
    got: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create() -> None:
        try:
            start.wait(5)
            with store.write() as conn:
                got.append(outbox.lock_group(conn, tenant, "root", "same", {}, NOW).id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(got) == 4 and len(set(got)) == 1


def test_a_delivery_cause_creates_one_row_per_channel(store: SqlStore, tenant: str) -> None:
    _, first = _deliver(store, tenant, "group:g:1")
    _, second = _deliver(store, tenant, "group:g:1")
    _, other_channel = _deliver(store, tenant, "group:g:1", channel_id="ch-2")
    assert (first, second, other_channel) == (True, False, True)


def test_a_claim_leases_the_delivery_and_only_its_holder_records_it(store: SqlStore, tenant: str) -> None:
    message, _ = _deliver(store, tenant, "change:1")
    with store.write() as conn:
        [claimed] = deliveries.claim_due(conn, "w1", 60.0, NOW, 10)
    assert claimed.id == message.id and claimed.attempts == 1 and claimed.message == message
    with store.write() as conn:
        assert deliveries.claim_due(conn, "w2", 60.0, NOW + 59, 10) == []  # leased
        [taken] = deliveries.claim_due(conn, "w2", 60.0, NOW + 60, 10)  # the lease expired
    assert taken.attempts == 2 and taken.lease_owner == "w2"
    with store.write() as conn:
        assert not deliveries.finish(conn, message.id, "w1", 1, status="delivered", now=NOW + 61)
        assert deliveries.finish(conn, message.id, "w2", 2, status="delivered", now=NOW + 61)
    with store.read() as conn:
        row = deliveries.get_delivery(conn, message.id)
        assert row is not None and row.status == "delivered" and row.lease_owner is None


def test_a_worker_that_reclaimed_its_own_delivery_records_only_the_newer_claim(
    store: SqlStore, tenant: str
) -> None:
    message, _ = _deliver(store, tenant, "change:2")
    with store.write() as conn:
        deliveries.claim_due(conn, "w1", 10.0, NOW, 10)
    with store.write() as conn:
        deliveries.claim_due(conn, "w1", 10.0, NOW + 11, 10)
    with store.write() as conn:
        assert not deliveries.finish(
            conn, message.id, "w1", 1, status="dead", now=NOW + 12, last_error="late"
        )
        assert deliveries.finish(
            conn, message.id, "w1", 2, status="pending", now=NOW + 12, next_attempt_at=NOW + 20
        )
    with store.write() as conn:
        assert deliveries.claim_due(conn, "w1", 10.0, NOW + 19, 10) == []
        assert [d.id for d in deliveries.claim_due(conn, "w1", 10.0, NOW + 20, 10)] == [message.id]


def test_dead_and_suppressed_deliveries_are_never_claimed(store: SqlStore, tenant: str) -> None:
    _deliver(store, tenant, "a", status="dead", last_error="no enabled channel named 'x'")
    _deliver(store, tenant, "b", status="suppressed", suppressed_by="silence s1")
    with store.write() as conn:
        assert deliveries.claim_due(conn, "w1", 60.0, NOW + 1e6, 10) == []
        assert deliveries.pending_count(conn) == 0


@pytest.mark.postgres
def test_two_workers_claim_disjoint_deliveries_on_postgres(pg_store: SqlStore, pg_tenant: str) -> None:
    made = {_deliver(pg_store, pg_tenant, f"c:{n}")[0].id for n in range(6)}
    with pg_store.engine.connect() as a, pg_store.engine.connect() as b, a.begin(), b.begin():
        first = {d.id for d in deliveries.claim_due(a, "w1", 60.0, NOW, 3)}
        second = {d.id for d in deliveries.claim_due(b, "w2", 60.0, NOW, 10)}
    assert len(first) == 3 and len(second) == 3 and first | second == made


def test_threads_escalation_steps_and_inbox_rows_are_written_once(store: SqlStore, tenant: str) -> None:
    message, _ = _deliver(store, tenant, "x")
    with store.write() as conn:
        deliveries.save_threads(conn, tenant, "ch-1", {"inc-1": "111.1"}, NOW)
        deliveries.save_threads(conn, tenant, "ch-1", {"inc-1": "222.2", "inc-2": "333.3"}, NOW)
        assert deliveries.load_threads(conn, "ch-1", ["inc-1", "inc-2", "inc-3"]) == {
            "inc-1": "111.1",
            "inc-2": "333.3",
        }
        assert deliveries.fire_step(conn, tenant, "inc-1", "root", 0, NOW)
        assert not deliveries.fire_step(conn, tenant, "inc-1", "root", 0, NOW + 1)
        assert deliveries.fired_steps(conn, "inc-1", "root") == {0}
        user = users.create_user(
            conn,
            email="a@example.com",
            name="A",
            password_hash="x",
            client_id=tenant,
            role="viewer",
            now=NOW,
            actor="t",
        )
        kw = {"kind": "firing", "title": "t", "body": "b", "now": NOW}
        assert deliveries.add_inbox(conn, tenant, user.id, message.id, **kw)  # type: ignore[arg-type]
        assert not deliveries.add_inbox(conn, tenant, user.id, message.id, **kw)  # type: ignore[arg-type]


def test_a_message_about_many_incidents_gets_a_lease_long_enough_to_send_each(
    store: SqlStore, tenant: str
) -> None:
    many = _message(tenant, tuple(f"i-{n}" for n in range(10)))
    one = _message(tenant)
    with store.write() as conn:
        for i, message in enumerate((many, one)):
            deliveries.insert_delivery(
                conn, message, channel_id="ch-1", cause=f"c{i}", now=NOW, deadline_at=NOW + 60
            )
        claimed = deliveries.claim_due(conn, "w1", 60.0, NOW, 10, per_incident_s=10.0)
    assert len(claimed) == 2
    with store.write() as conn:  # the one-incident lease (60 s) ended; the ten-incident one (110 s) holds
        assert [d.id for d in deliveries.claim_due(conn, "w2", 60.0, NOW + 60, 10)] == [one.id]
        assert deliveries.claim_due(conn, "w2", 60.0, NOW + 109, 10) == []
        assert [d.id for d in deliveries.claim_due(conn, "w2", 60.0, NOW + 110, 10)] == [many.id]


def test_an_unreadable_message_is_dead_lettered_at_its_claim_and_the_others_are_claimed(
    store: SqlStore, tenant: str
) -> None:
    good, _ = _deliver(store, tenant, "good")
    bad, _ = _deliver(store, tenant, "bad")
    with store.write() as conn:
        conn.execute(
            notify_deliveries.update().where(notify_deliveries.c.id == bad.id).values(message={"id": bad.id})
        )
        assert [d.id for d in deliveries.claim_due(conn, "w1", 60.0, NOW, 10)] == [good.id]
    with store.read() as conn:
        row = conn.execute(sa.select(notify_deliveries).where(notify_deliveries.c.id == bad.id)).one()
    assert row.status == "dead" and row.last_error == "the stored message cannot be read (KeyError)"


def test_a_snapshot_with_fields_this_version_does_not_know_still_reads() -> None:
    doc = deliveries.message_to_doc(_message("t"))
    doc["incidents"][0]["added_later"] = "x"
    doc["added_later"] = 1
    assert deliveries.message_from_doc(doc).incidents[0].id == "i-1"
