"""The reads and the lock of sign-in and first-run setup that belong to no single aggregate.

Why its own module: ``store/users.py`` is about one user and their memberships; setup must ask
about the whole server ("is there exactly one tenant?", "is this still the first user?") and the
sign-in page must name a user's tenants. ``auth/accounts.py`` calls these inside its transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from infragent.store.schema import clients, memberships, sessions

#: The advisory-lock key of "who becomes the first user" (a two-key lock apart from the others).
_SETUP_LOCK = (7302, 1)


def lock_setup(conn: sa.Connection) -> None:
    """Serialize first-admin creation until the transaction ends, so two setups racing on an empty
    PostgreSQL database cannot both see no user; SQLite's write transaction already admits one."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(*_SETUP_LOCK)))


def only_tenant(conn: sa.Connection) -> str | None:
    """The id of the server's one tenant when exactly one exists (e.g. the tenant ``infragent up``
    made for this machine), else None (none, or several: which one would be a guess)."""
    ids = conn.execute(sa.select(clients.c.id).order_by(clients.c.created_at).limit(2)).scalars().all()
    return str(ids[0]) if len(ids) == 1 else None


def tenant_names(conn: sa.Connection, client_ids: Sequence[str]) -> dict[str, str]:
    """client id → company name, for the sign-in page's tenant choice."""
    if not client_ids:
        return {}
    rows = conn.execute(sa.select(clients.c.id, clients.c.company_name).where(clients.c.id.in_(client_ids)))
    return {str(r.id): str(r.company_name) for r in rows}


def tenant_count(conn: sa.Connection, user_id: str) -> int:
    """In how many tenants ``user_id`` has a role (disabling a user reaches all of them)."""
    query = sa.select(sa.func.count()).select_from(memberships).where(memberships.c.user_id == user_id)
    return int(conn.execute(query).scalar_one())


def tenants(conn: sa.Connection) -> list[tuple[str, str]]:
    """Every tenant as (client id, company name), oldest first: what ``infragent users`` lists."""
    rows = conn.execute(sa.select(clients.c.id, clients.c.company_name).order_by(clients.c.created_at))
    return [(str(r.id), str(r.company_name)) for r in rows]


def end_sessions(conn: sa.Connection, user_id: str, now: float) -> int:
    """End every live session of ``user_id`` (their password changed); how many."""
    query = (
        sessions.update()
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(conn.execute(query).rowcount)
