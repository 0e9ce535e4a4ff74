"""Clients (tenants) and their API keys.

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
    conn.execute(
        api_keys.insert().values(
            key_id=key_id, client_id=client.id, secret_hash=secret_hash, scopes=list(scopes), created_at=now
        )
    )
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


def get_client(conn: sa.Connection, client_id: str) -> ClientRecord | None:
    row = conn.execute(sa.select(clients).where(clients.c.id == client_id)).first()
    return client_from_row(row) if row else None


def get_key(conn: sa.Connection, key_id: str) -> KeyRecord | None:
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        return None
    return KeyRecord(
        row.key_id, row.client_id, row.secret_hash, tuple(row.scopes), row.revoked_at is not None
    )
