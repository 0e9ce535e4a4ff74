"""Sign-in sessions (``auth/sessions.py`` says why a row besides the signed cookie) and the
server-wide signing key.

Why the signing key lives in the database: every server process must verify every other's cookies,
and a key in one process's memory would sign everyone out at each restart. It is made once, by the
first process that needs it (insert-if-absent, so two processes starting together agree).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from infragent.store.records import SessionRecord
from infragent.store.schema import server_kv, sessions

SIGNING_KEY = "session_signing_key"


def _session(row: sa.Row[Any]) -> SessionRecord:
    return SessionRecord(
        row.id,
        row.user_id,
        row.client_id,
        row.csrf_token,
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.ip,
        row.user_agent,
    )


def create_session(
    conn: sa.Connection,
    *,
    session_id: str,
    user_id: str,
    client_id: str,
    csrf_token: str,
    now: float,
    ttl_s: float,
    ip: str,
    user_agent: str,
) -> SessionRecord:
    record = SessionRecord(
        session_id, user_id, client_id, csrf_token, now, now + ttl_s, None, ip[:64], user_agent[:300]
    )
    conn.execute(
        sessions.insert().values(
            id=record.id,
            user_id=user_id,
            client_id=client_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=record.expires_at,
            ip=record.ip,
            user_agent=record.user_agent,
        )
    )
    return record


def get_session(conn: sa.Connection, session_id: str) -> SessionRecord | None:
    row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
    return _session(row) if row else None


def revoke(conn: sa.Connection, session_id: str, now: float) -> None:
    conn.execute(
        sessions.update()
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def purge(conn: sa.Connection, now: float, keep_s: float = 7 * 86400.0) -> int:
    """Delete sessions that ended more than ``keep_s`` ago; how many."""
    ended = sa.or_(sessions.c.expires_at < now - keep_s, sessions.c.revoked_at < now - keep_s)
    return int(conn.execute(sessions.delete().where(ended)).rowcount)


def signing_key(conn: sa.Connection, make: str) -> str:
    """The server's cookie-signing key; ``make`` is stored if none is yet (the first caller wins)."""
    found = conn.execute(sa.select(server_kv.c.value).where(server_kv.c.key == SIGNING_KEY)).scalar()
    if found is not None:
        return str(found)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(server_kv).values(key=SIGNING_KEY, value=make).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(server_kv).values(key=SIGNING_KEY, value=make).on_conflict_do_nothing())
    return str(conn.execute(sa.select(server_kv.c.value).where(server_kv.c.key == SIGNING_KEY)).scalar_one())
