"""SqlStore: the engine and its transactions, the one implementation of ``store.base.Database``.

Why so little: what the store knows lives in one module per aggregate (``tenants``, ``agents``,
``events``, ``claims``, ``commands``, ``audit``), as functions over the ``Connection`` this class
opens, so a use case composes them in one transaction. The methods below the line are
transitional: other areas' callers (tests, the server's backlog gauge) still use them and move to
the aggregate functions at merge; each is one transaction around one function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from infragent.store import agents, events
from infragent.store.records import AgentRecord, EventDetail, Registration


class SqlStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            yield conn

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- transitional: used outside this branch's files; callers move to the functions ------------

    def create_client(self, email: str, company_name: str, webhook_url: str, now: float) -> Registration:
        """``auth.registration.register_client(self, ...)``: credentials are minted in ``auth/``."""
        from infragent.auth.registration import register_client

        return register_client(self, email, company_name, webhook_url, now)

    def get_agent(self, client_id: str, node_id: str) -> AgentRecord | None:
        with self.read() as conn:
            return agents.get_agent(conn, client_id, node_id)

    def get_event_detail(self, client_id: str, event_id: str) -> EventDetail | None:
        with self.read() as conn:
            return events.get_event_detail(conn, client_id, event_id)

    def pending_count(self) -> int:
        with self.read() as conn:
            return events.pending_count(conn)


def open_store(url: str) -> SqlStore:
    """Create the engine for ``url`` and bring its schema to the latest migration."""
    from infragent.store.engine import create_engine
    from infragent.store.migrate import upgrade

    engine = create_engine(url)
    upgrade(engine)
    return SqlStore(engine)
