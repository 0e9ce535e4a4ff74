"""``ensure_agent`` when two first events of a new node arrive at once (PostgreSQL: real concurrency)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from infragent.store import agents
from infragent.store.records import Registration
from infragent.store.schema import agents as agents_table
from infragent.store.sql import SqlStore, open_store
from support.databases import pg_schema_url


@pytest.fixture
def pg_store() -> Iterator[SqlStore]:
    with pg_schema_url() as url:
        s = open_store(url)
        yield s
        s.close()


def _waiting_on_lock(store: SqlStore) -> bool:
    with store.read() as conn:
        n = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        ).scalar_one()
    return int(n) > 0


@pytest.mark.postgres
def test_two_first_events_of_a_new_node_make_one_agent(pg_store: SqlStore) -> None:
    """The second insert waits on the first's unique key, then finds its row instead of failing."""
    from support.databases import create_client

    reg: Registration = create_client(pg_store, "a@example.com", "A", "http://127.0.0.1:9/h", now=1.0)
    ids: list[str] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with pg_store.write() as conn:
                ids.append(agents.ensure_agent(conn, reg.client.id, "new-node", 2.0))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    with pg_store.write() as conn:
        ids.append(agents.ensure_agent(conn, reg.client.id, "new-node", 1.0))
        t = threading.Thread(target=second)
        t.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_lock(pg_store):  # the second transaction is blocked on our row
            assert time.monotonic() < deadline, "the second insert never waited on the first"
            time.sleep(0.01)
    t.join(timeout=10)
    assert not errors, errors
    assert len(ids) == 2 and ids[0] == ids[1]
    with pg_store.read() as conn:
        rows = conn.execute(
            sa.select(sa.func.count()).select_from(agents_table).where(agents_table.c.node_id == "new-node")
        ).scalar_one()
    assert rows == 1
