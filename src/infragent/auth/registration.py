"""Registering a client: mint its API key and webhook secret, store only what may be stored.

Why minting lives here and not in the store: the plaintext API key exists only in this function's
answer (shown to the user once); the store is handed its id and hash. The webhook secret is stored
in clear because the server must sign commands with it.

``credentials`` may be minted ahead (``mint()``) by a caller that needs the secret before the client
exists, e.g. a test that starts a webhook receiver first and registers the URL it got.
"""

from __future__ import annotations

from dataclasses import dataclass

from infragent import signing
from infragent.auth import apikeys
from infragent.store import tenants
from infragent.store.base import Database
from infragent.store.records import Registration

#: What a client's first key may do.
DEFAULT_SCOPES = ("ingest", "read", "admin")


@dataclass(frozen=True, slots=True)
class Credentials:
    key: apikeys.NewKey
    webhook_secret: str


def mint() -> Credentials:
    return Credentials(apikeys.generate(), signing.new_secret())


def register_client(
    db: Database,
    email: str,
    company_name: str,
    webhook_url: str,
    now: float,
    *,
    credentials: Credentials | None = None,
) -> Registration:
    """Create the client with its first key; the answer carries the plaintext key, the only copy."""
    creds = credentials or mint()
    with db.write() as conn:
        client = tenants.create_client(
            conn,
            email=email,
            company_name=company_name,
            webhook_url=webhook_url,
            webhook_secret=creds.webhook_secret,
            key_id=creds.key.key_id,
            secret_hash=creds.key.secret_hash,
            scopes=DEFAULT_SCOPES,
            now=now,
        )
    return Registration(client=client, api_key=creds.key.plaintext)
