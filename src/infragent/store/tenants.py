"""Clients (tenants) and their API keys: create, look up, list, rotate, revoke, note their last use.

Why the store takes credentials rather than making them: keys and webhook secrets are minted in
``auth/`` (``auth/registration.py``); the store is handed a key id, the SHA-256 of its secret and
the webhook secret it must sign with, and never sees a plaintext API key.

Why rotation is one transaction here: the new key, the old key's end of grace (``expires_at``), the
link to its successor (``replaced_by``) and the audit entry are one fact; a reader never sees a new
key whose old one does not point to it. The old row is locked first (``FOR UPDATE`` on PostgreSQL,
the writer lock on SQLite), so two rotations of one key cannot both succeed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from infragent.errors import InfrAgentError
from infragent.store import audit
from infragent.store.records import ClientRecord, KeyRecord
from infragent.store.schema import api_keys, clients

#: The advisory-lock class of registrations by e-mail (the two-key form keeps it apart from the
#: audit log's one-key locks).
_EMAIL_LOCKS = 7301


def client_from_row(row: sa.Row[Any]) -> ClientRecord:
    return ClientRecord(
        row.id, row.email, row.company_name, row.webhook_url, row.webhook_secret, row.created_at
    )


def create_client(
    conn: sa.Connection,
    *,
    email: str,
    company_name: str,
    webhook_url: str,
    webhook_secret: str,
    key_id: str,
    secret_hash: str,
    scopes: Sequence[str],
    now: float,
) -> ClientRecord:
    """Store a new client with its first API key, and audit it (the key id, never the key)."""
    client = ClientRecord(str(uuid.uuid4()), email, company_name, webhook_url, webhook_secret, now)
    conn.execute(
        clients.insert().values(
            id=client.id,
            email=email,
            company_name=company_name,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            created_at=now,
        )
    )
    _insert_key(conn, client.id, key_id, secret_hash, scopes, now)
    audit.append(
        conn,
        client.id,
        "api",
        "client.registered",
        client.id,
        {"email": email, "company_name": company_name, "key_id": key_id},
        now,
    )
    return client


def client_by_email(conn: sa.Connection, email: str) -> ClientRecord | None:
    """The client that owns ``email``, compared case-insensitively (one tenant per e-mail).

    On PostgreSQL a transaction-scoped advisory lock on the address is taken first, so two
    registrations of one address serialize and the second finds the first; on SQLite every write
    transaction already holds the database's write lock.
    """
    if conn.dialect.name == "postgresql":
        lock = sa.func.pg_advisory_xact_lock(_EMAIL_LOCKS, sa.func.hashtext(email.lower()))
        conn.execute(sa.select(lock))
    row = conn.execute(sa.select(clients).where(sa.func.lower(clients.c.email) == email.lower())).first()
    return client_from_row(row) if row else None


def _insert_key(
    conn: sa.Connection,
    client_id: str,
    key_id: str,
    secret_hash: str,
    scopes: Sequence[str],
    now: float,
    name: str = "",
) -> None:
    conn.execute(
        api_keys.insert().values(
            key_id=key_id,
            client_id=client_id,
            secret_hash=secret_hash,
            scopes=list(scopes),
            created_at=now,
            name=name,
        )
    )


def create_key(
    conn: sa.Connection,
    client_id: str,
    *,
    key_id: str,
    secret_hash: str,
    scopes: Sequence[str],
    now: float,
    actor: str,
    name: str = "",
) -> None:
    """Store another key of ``client_id`` (minted in ``auth/``), and audit who created it."""
    _insert_key(conn, client_id, key_id, secret_hash, scopes, now, name)
    audit.append(conn, client_id, actor, "key.created", key_id, {"scopes": list(scopes), "name": name}, now)


def revoke_key(conn: sa.Connection, client_id: str, key_id: str, now: float, actor: str) -> bool:
    """Mark the key revoked (kept, for the audit trail); False when ``client_id`` has no such key.

    Revoking a key twice is not an error: the first time stands.
    """
    owned = sa.and_(api_keys.c.key_id == key_id, api_keys.c.client_id == client_id)
    row = conn.execute(sa.select(api_keys.c.revoked_at).where(owned)).first()
    if row is None:
        return False
    if row.revoked_at is None:
        conn.execute(api_keys.update().where(owned).values(revoked_at=now))
        audit.append(conn, client_id, actor, "key.revoked", key_id, {}, now)
    return True


class KeyInactiveError(InfrAgentError):
    """The key cannot be rotated: it is revoked, or its grace period has ended (answered 409).

    Why a conflict and not a 404: the key exists and its owner may see it in the list; rotating it
    would hand out a live successor of a key someone decided to stop.
    """

    def __init__(self, key_id: str, reason: str) -> None:
        super().__init__(f"key {key_id!r} cannot be rotated: it is {reason}")
        self.key_id = key_id
        self.reason = reason


def list_keys(conn: sa.Connection, client_id: str) -> list[KeyRecord]:
    """Every key of ``client_id`` (revoked and expired ones too, for the record), oldest first."""
    rows = conn.execute(
        sa.select(api_keys)
        .where(api_keys.c.client_id == client_id)
        .order_by(api_keys.c.created_at, api_keys.c.key_id)
    )
    return [key_from_row(row) for row in rows]


def rotate_key(
    conn: sa.Connection,
    client_id: str,
    key_id: str,
    *,
    new_key_id: str,
    secret_hash: str,
    now: float,
    grace_s: float,
    actor: str,
) -> tuple[KeyRecord, float] | None:
    """Store ``new_key_id`` with the old key's scopes and name; the old key ends at ``now + grace_s``
    (or sooner, if it already ended sooner) and points to the new one. Audited as ``key.rotated``.

    Returns the new key's record and the old key's end; None when ``client_id`` has no key ``key_id``. Raises
    ``KeyInactiveError`` when the old key is revoked or already expired.
    """
    owned = sa.and_(api_keys.c.key_id == key_id, api_keys.c.client_id == client_id)
    row = conn.execute(sa.select(api_keys).where(owned).with_for_update()).first()
    if row is None:
        return None
    old = key_from_row(row)
    if old.revoked:
        raise KeyInactiveError(key_id, "revoked")
    if old.expired(now):
        raise KeyInactiveError(key_id, "expired")
    ends = now + grace_s if old.expires_at is None else min(old.expires_at, now + grace_s)
    _insert_key(conn, client_id, new_key_id, secret_hash, old.scopes, now, old.name)
    conn.execute(api_keys.update().where(owned).values(expires_at=ends, replaced_by=new_key_id))
    audit.append(
        conn,
        client_id,
        actor,
        "key.rotated",
        key_id,
        {"replaced_by": new_key_id, "expires_at": ends, "grace_s": grace_s},
        now,
    )
    new = KeyRecord(new_key_id, client_id, secret_hash, old.scopes, False, name=old.name, created_at=now)
    return new, ends


def record_key_uses(conn: sa.Connection, uses: Mapping[str, float]) -> None:
    """Set each key's ``last_used_at`` to its noted time, unless a later one is stored already (two
    server processes flush their notes independently; the later use wins)."""
    for key_id, used_at in uses.items():
        conn.execute(
            api_keys.update()
            .where(
                api_keys.c.key_id == key_id,
                sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < used_at),
            )
            .values(last_used_at=used_at)
        )


def get_client(conn: sa.Connection, client_id: str) -> ClientRecord | None:
    row = conn.execute(sa.select(clients).where(clients.c.id == client_id)).first()
    return client_from_row(row) if row else None


def get_key(conn: sa.Connection, key_id: str) -> KeyRecord | None:
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        return None
    return key_from_row(row)


def key_from_row(row: sa.Row[Any]) -> KeyRecord:
    return KeyRecord(
        row.key_id,
        row.client_id,
        row.secret_hash,
        tuple(row.scopes),
        row.revoked_at is not None,
        expires_at=row.expires_at,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        replaced_by=row.replaced_by,
    )
