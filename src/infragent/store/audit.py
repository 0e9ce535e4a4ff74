"""The audit log: append-only, one hash chain per client, written in the caller's transaction.

Why a chain: each entry carries SHA-256 over its content and the previous entry's hash, so an entry
edited or removed in the database breaks every hash after it, which ``verify_chain`` finds without
trusting the database. Why in the caller's transaction: an audit entry exists exactly when the
change it describes was committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from infragent.store.records import AuditRecord
from infragent.store.schema import audit_log

GENESIS = "0" * 64


def entry_hash(prev_hash: str, at: float, actor: str, kind: str, subject: str, detail: dict[str, Any]) -> str:
    body = orjson.dumps(
        {
            "prev": prev_hash,
            "at": repr(at),
            "actor": actor,
            "kind": kind,
            "subject": subject,
            "detail": detail,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def verify_chain(entries: Iterable[AuditRecord]) -> int | None:
    """Return the id of the first entry that does not chain, or None when the chain holds."""
    prev = GENESIS
    for e in entries:
        if e.prev_hash != prev or e.hash != entry_hash(
            e.prev_hash, e.at, e.actor, e.kind, e.subject, e.detail
        ):
            return e.id
        prev = e.hash
    return None


def lock_tenant(conn: sa.Connection, client_id: str) -> None:
    """Serialize the tenant's writers until the transaction ends: the audit chain's lock, which
    incidents and the responder's incident checks take first too (one lock, no lock-order deadlock).
    PostgreSQL: an advisory lock; SQLite's ``BEGIN IMMEDIATE`` already admits one writer."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:c))"), {"c": client_id})


def append(
    conn: sa.Connection,
    client_id: str,
    actor: str,
    kind: str,
    subject: str,
    detail: dict[str, Any],
    now: float,
) -> None:
    """Chain one entry onto the client's log, under ``lock_tenant``."""
    lock_tenant(conn, client_id)
    prev = (
        conn.execute(
            sa.select(audit_log.c.hash)
            .where(audit_log.c.client_id == client_id)
            .order_by(audit_log.c.id.desc())
            .limit(1)
        ).scalar()
        or GENESIS
    )
    conn.execute(
        audit_log.insert().values(
            client_id=client_id,
            at=now,
            actor=actor,
            kind=kind,
            subject=subject,
            detail=detail,
            prev_hash=prev,
            hash=entry_hash(prev, now, actor, kind, subject, detail),
        )
    )


def entries(conn: sa.Connection, client_id: str, subjects: Sequence[str] | None = None) -> list[AuditRecord]:
    """The client's log in order, optionally only the entries about ``subjects``."""
    q = sa.select(audit_log).where(audit_log.c.client_id == client_id).order_by(audit_log.c.id)
    if subjects is not None:
        q = q.where(audit_log.c.subject.in_(list(subjects)))
    return [
        AuditRecord(r.id, r.client_id, r.at, r.actor, r.kind, r.subject, dict(r.detail), r.prev_hash, r.hash)
        for r in conn.execute(q)
    ]
