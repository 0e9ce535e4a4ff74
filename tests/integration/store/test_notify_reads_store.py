"""Reading deliveries and the in-app inbox back (``store/notify_reads.py``) on SQLite and PostgreSQL:
keyset pages, filters (an incident found in a group delivery's message too), attempts, re-driving a
dead letter, tenant isolation, and a user's inbox.

The deliveries are seeded as rows, the way the pipeline writes them (``notify_schema``)."""

from __future__ import annotations

from typing import Any

import pytest

from infragent.auth import accounts
from infragent.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from infragent.store import audit
from infragent.store import notify_config as nc
from infragent.store import notify_reads as nr
from infragent.store.notify_schema import notify_attempts, notify_deliveries
from infragent.store.sql import SqlStore
from support.databases import create_client


def _client(store: SqlStore, email: str = "a@example.com", company: str = "Alpha") -> str:
    return create_client(store, email, company, "http://127.0.0.1:9/h", now=1.0).client.id


def _delivery(
    store: SqlStore,
    client_id: str,
    did: str,
    channel_id: str,
    *,
    created_at: float,
    status: str = "delivered",
    incidents: list[str] = (),  # type: ignore[assignment]
    incident_id: str | None = None,
    **extra: Any,
) -> None:
    message = {
        "id": did,
        "client_id": client_id,
        "kind": "firing",
        "incidents": [{"id": i, "title": f"title of {i}"} for i in incidents],
        "title": "",
    }
    with store.write() as conn:
        conn.execute(
            notify_deliveries.insert().values(
                id=did,
                client_id=client_id,
                channel_id=channel_id,
                kind="firing",
                message=message,
                status=status,
                attempts=extra.pop("attempts", 0),
                created_at=created_at,
                next_attempt_at=created_at,
                deadline_at=created_at + 100,
                cause=f"test:{did}",
                incident_id=incident_id,
                **extra,
            )
        )


def test_deliveries_page_newest_first_and_filter(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    with store.write() as conn:
        ch = nc.create_channel(
            conn, alpha, name="ops", kind="inapp", settings={}, secrets={}, actor="a", now=1.0
        )
    for n in range(5):
        _delivery(store, alpha, f"d{n}", ch.id, created_at=10.0 + n, incidents=[f"inc-{n % 2}"])
    # same created_at: the id breaks the tie
    _delivery(store, alpha, "d5", ch.id, created_at=14.0, status="dead", incident_id="inc-9")
    _delivery(store, alpha, "gone", "deleted-channel", created_at=1.0)
    _delivery(store, beta, "other", "x", created_at=20.0, incidents=["inc-0"])
    with store.read() as conn:
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = nr.list_deliveries(conn, alpha, before=cursor, limit=2)
            seen += [d.id for d in page]
            if cursor is None:
                break
        assert seen == ["d5", "d4", "d3", "d2", "d1", "d0", "gone"]
        first = nr.list_deliveries(conn, alpha, limit=1)[0][0]
        assert (first.channel_name, first.channel_kind, first.incident_ids) == ("ops", "inapp", ["inc-9"])
        gone = nr.list_deliveries(conn, alpha, channel_id="deleted-channel")[0]
        assert [(d.id, d.channel_name) for d in gone] == [("gone", None)]
        assert [d.id for d in nr.list_deliveries(conn, alpha, status="dead")[0]] == ["d5"]
        about = nr.list_deliveries(conn, alpha, incident_id="inc-0")[0]
        assert [d.id for d in about] == ["d4", "d2", "d0"]
        assert about[0].title == "title of inc-0"
        assert [d.id for d in nr.list_deliveries(conn, alpha, incident_id="inc-9")[0]] == ["d5"]
        assert [d.id for d in nr.list_deliveries(conn, beta)[0]] == ["other"]
        with pytest.raises(NotifyConfigError) as bad:
            nr.list_deliveries(conn, alpha, before="not-a-cursor")
        assert bad.value.problems[0][0] == "cursor"


def test_a_delivery_shows_its_attempts_and_only_a_dead_one_is_retried(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    _delivery(store, alpha, "dead-1", "ch", created_at=10.0, status="dead", attempts=2, last_error="503")
    _delivery(store, alpha, "ok-1", "ch", created_at=11.0, status="delivered", delivered_at=11.5)
    with store.write() as conn:
        for n, outcome in ((1, "retry"), (2, "retry")):
            conn.execute(
                notify_attempts.insert().values(
                    delivery_id="dead-1",
                    client_id=alpha,
                    n=n,
                    started_at=10.0 + n,
                    duration_s=0.1,
                    outcome=outcome,
                    status_code=503,
                    error="503 Service Unavailable",
                    worker="w1",
                )
            )
    with store.read() as conn:
        view, attempts = nr.get_delivery(conn, alpha, "dead-1")
        assert view.status == "dead" and view.last_error == "503"
        assert [(a.n, a.outcome, a.status_code) for a in attempts] == [(1, "retry", 503), (2, "retry", 503)]
        with pytest.raises(NotifyNotFoundError):
            nr.get_delivery(conn, beta, "dead-1")
    with store.write() as conn, pytest.raises(NotifyConflictError):
        nr.retry_delivery(conn, alpha, "ok-1", actor="ann", now=50.0, retry_for_s=600.0)
    with store.write() as conn, pytest.raises(NotifyNotFoundError):
        nr.retry_delivery(conn, beta, "dead-1", actor="x", now=50.0, retry_for_s=600.0)
    with store.write() as conn:
        again = nr.retry_delivery(conn, alpha, "dead-1", actor="ann", now=50.0, retry_for_s=600.0)
    assert (again.status, again.next_attempt_at, again.deadline_at) == ("pending", 50.0, 650.0)
    with store.read() as conn:
        row = conn.execute(notify_deliveries.select().where(notify_deliveries.c.id == "dead-1")).one()
        assert row.lease_owner is None and row.lease_until is None
        assert [e.kind for e in audit.entries(conn, alpha, ["dead-1"])] == ["notify.delivery.retried"]


def test_the_inbox_is_per_user_and_per_tenant(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    ann = accounts.add_user(
        store, alpha, "ann@example.com", "Ann", "correct horse battery", "admin", 1.0, "t"
    )
    bob = accounts.add_user(
        store, alpha, "bob@example.com", "Bob", "correct horse battery", "viewer", 1.0, "t"
    )
    accounts.grant_role(store, beta, "ann@example.com", "viewer", 1.0, "t")
    with store.write() as conn:
        ids = [
            nr.inbox_add(
                conn,
                alpha,
                ann.id,
                delivery_id=f"d{n}",
                kind="firing",
                title=f"t{n}",
                body="b",
                incident_id=None,
                now=10.0 + n,
            )
            for n in range(3)
        ]
        nr.inbox_add(
            conn, alpha, bob.id, delivery_id="d0", kind="firing", title="t", body="", incident_id="i", now=1.0
        )
        nr.inbox_add(
            conn, beta, ann.id, delivery_id="d9", kind="test", title="t", body="", incident_id=None, now=1.0
        )
    with store.write() as conn:
        assert [i.title for i in nr.inbox_list(conn, alpha, ann.id)] == ["t2", "t1", "t0"]
        assert nr.inbox_unread_count(conn, alpha, ann.id) == 3
        # bob's item id is not ann's to mark
        assert nr.inbox_mark_read(conn, alpha, ann.id, [ids[0], ids[0] + 3], 20.0) == 1
        assert nr.inbox_mark_read(conn, alpha, ann.id, [], 20.0) == 0
        assert [i.id for i in nr.inbox_list(conn, alpha, ann.id, unread_only=True)] == [ids[2], ids[1]]
        assert nr.inbox_mark_read(conn, alpha, ann.id, None, 21.0) == 2
        assert nr.inbox_unread_count(conn, alpha, ann.id) == 0
        assert nr.inbox_unread_count(conn, alpha, bob.id) == 1
        assert nr.inbox_unread_count(conn, beta, ann.id) == 1
        assert nr.inbox_list(conn, alpha, ann.id)[-1].read_at == 20.0
