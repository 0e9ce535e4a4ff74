"""Hash chain of the audit log: each entry carries SHA-256 over its content and the previous hash.

Why a chain: an entry edited or removed in the database breaks every hash after it, which
``verify_chain`` finds without trusting the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from infragent.store.records import AuditRecord

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
