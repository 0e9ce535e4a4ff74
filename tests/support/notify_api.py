"""Tenants for the notification API tests: a registered client with one key per scope.

Why keys and not only sessions: the API's callers are scripts as much as people, and a key of each
scope shows the permission table (``auth/scopes.py``) at work per route.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from infragent.auth import scopes
from infragent.auth.registration import mint_key
from infragent.store.sql import SqlStore
from support.databases import create_client


@dataclass
class Tenant:
    client_id: str
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, scope: str = "admin") -> dict[str, str]:
        """The ``Authorization`` header of this tenant's key holding only ``scope``."""
        return {"Authorization": f"Bearer {self.keys[scope]}"}


def make_tenant(store: SqlStore, name: str) -> Tenant:
    now = time.time()
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
    client_id = create_client(store, email, name, "http://127.0.0.1:9/hook", now=now).client.id
    keys = {s: mint_key(store, client_id, [s], now, actor="test").plaintext for s in scopes.ALL_SCOPES}
    return Tenant(client_id, keys)
