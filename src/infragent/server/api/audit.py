"""The tenant's audit log: ``GET /api/v1/audit`` — entries newest first, paged, with the verdict of
the hash-chain check over the whole log.

Why the verdict rides on every page: an auditor reading entries must know whether the log they read
is the one that was written; ``chain`` is recomputed from the rows on each request
(``store/audit_reads.py``). Details are shown as stored: secrets and prompt bodies were already
redacted when the entry was written (``store/audit.py`` callers), nothing is redacted twice here.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.store import audit_reads

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

MAX_LIMIT = 500


class AuditEntryOut(BaseModel):
    id: int
    at: float
    actor: str
    kind: str
    subject: str
    detail: dict[str, Any]


class ChainOut(BaseModel):
    verified: bool
    entries: int
    broken_at: int | None


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    #: pass as ``before`` for the next (older) page; null on the last page
    next_before: int | None
    chain: ChainOut


@router.get("", response_model=AuditPageOut, responses={422: {"description": "a bad limit or before"}})
async def list_audit(
    who: Annotated[Principal, Depends(require("audit.read"))],
    svc: Annotated[AppServices, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    before: Annotated[int | None, Query(ge=1, description="only entries with a smaller id (paging)")] = None,
) -> AuditPageOut:
    """The caller's tenant's entries, newest first, and ``chain``: ``verified``, the number of
    ``entries`` in the whole log and ``broken_at``, the id of the first entry that does not chain."""
    found, chain = await anyio.to_thread.run_sync(audit_reads.read, svc.store, who.client_id, limit, before)
    return AuditPageOut(
        entries=[
            AuditEntryOut(id=e.id, at=e.at, actor=e.actor, kind=e.kind, subject=e.subject, detail=e.detail)
            for e in found.entries
        ],
        next_before=found.next_before,
        chain=ChainOut(verified=chain.verified, entries=chain.entries, broken_at=chain.broken_at),
    )
