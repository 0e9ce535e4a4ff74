"""Clients (tenants) and their API keys: create, look up, revoke.

Why the store takes credentials rather than making them: keys and webhook secrets are minted in
``auth/`` (``auth/registration.py``); the store is handed a key id, the SHA-256 of its secret and
the webhook secret it must sign with, and never sees a plaintext API key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

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
