"""Reading a tenant's audit log for people: a page of entries, newest first, and the hash-chain check
over the whole log (``GET /api/v1/audit``, the ``/audit`` page).

Why apart from ``store/audit.py``: that module writes the chain inside other aggregates'
transactions; this one only reads it, page by page, for the API and the dashboard.

Why the check walks the whole log on every request: the point of showing "verified" is that it was
computed now, from the rows as they are, not remembered. Rows are streamed in id order (the chain's
order), so memory stays flat; the cost is one SHA-256 per entry (docs/api.md "Audit" quotes it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from infragent.store.audit import verify_chain
from infragent.store.base import Database
from infragent.store.records import AuditRecord
from infragent.store.schema import audit_log

#: Rows fetched at a time while the chain is verified.
CHAIN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The verdict on a tenant's whole log: ``broken_at`` is the id of the first entry that does not
    chain (edited, inserted or after a removed one), None when ``verified``."""

    verified: bool
    entries: int
    broken_at: int | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries newest first; ``next_before`` is the ``before`` of the next (older) page, or None."""

    entries: list[AuditRecord]
    next_before: int | None


def _record(r: Any) -> AuditRecord:
    detail = dict(r.detail)
    return AuditRecord(r.id, r.client_id, r.at, r.actor, r.kind, r.subject, detail, r.prev_hash, r.hash)


def page(conn: sa.Connection, client_id: str, limit: int, before: int | None = None) -> AuditPage:
    """Up to ``limit`` of the tenant's entries with an id below ``before`` (all when None), newest first."""
    q = sa.select(audit_log).where(audit_log.c.client_id == client_id)
    if before is not None:
        q = q.where(audit_log.c.id < before)
    rows = [_record(r) for r in conn.execute(q.order_by(audit_log.c.id.desc()).limit(limit + 1))]
    more = len(rows) > limit
    entries = rows[:limit]
    return AuditPage(entries, entries[-1].id if more and entries else None)


def check_chain(conn: sa.Connection, client_id: str) -> ChainCheck:
    """Verify the tenant's whole chain from its first entry, streaming the rows in id order."""
    q = sa.select(audit_log).where(audit_log.c.client_id == client_id).order_by(audit_log.c.id)
    result = conn.execution_options(yield_per=CHAIN_BATCH).execute(q)
    counted = 0

    def counting(rows: Iterator[Any]) -> Iterator[AuditRecord]:
        nonlocal counted
        for r in rows:
            counted += 1
            yield _record(r)

    try:
        broken = verify_chain(counting(iter(result)))
    finally:
        result.close()  # the check stops at the first break: release the cursor now
    if broken is not None:  # the log's size, past the break too
        size = sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.client_id == client_id)
        counted = int(conn.execute(size).scalar_one())
    return ChainCheck(broken is None, counted, broken)


def read(db: Database, client_id: str, limit: int, before: int | None = None) -> tuple[AuditPage, ChainCheck]:
    """One page and the chain's verdict, from one read transaction (the same rows for both)."""
    with db.read() as conn:
        return page(conn, client_id, limit, before), check_chain(conn, client_id)
