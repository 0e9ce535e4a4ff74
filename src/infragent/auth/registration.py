"""Registering a client and minting or revoking its keys: store only what may be stored.

Why minting lives here and not in the store: the plaintext API key exists only in this module's
answers (shown to the user once); the store is handed its id and hash. The webhook secret is stored
in clear because the server must sign commands with it.

``credentials`` may be minted ahead (``mint()``) by a caller that needs the secret before the client
exists, e.g. a test that starts a webhook receiver first and registers the URL it got.

The key a registration returns is the tenant owner's: scope ``admin`` (``auth/scopes.py``), which
implies every other scope. Agents and SDKs get narrower keys from ``mint_key``.

``rotate_key`` mints a successor with the same scopes and name; the old key keeps working for a
grace period (``key_rotation_grace_s``) so the hosts using it can be moved to the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infragent import signing
from infragent.auth import apikeys, scopes
from infragent.errors import InfrAgentError
from infragent.store import rules, tenants
from infragent.store.base import Database
from infragent.store.records import KeyRecord, Registration
from infragent.store.tenants import KeyInactiveError

__all__ = [
    "Credentials",
    "EmailTakenError",
    "KeyInactiveError",
    "MintedKey",
    "Rotation",
    "key_prefix",
    "list_keys",
    "mint",
    "mint_key",
    "register_client",
    "revoke_key",
    "rotate_key",
]


class EmailTakenError(InfrAgentError):
    """The e-mail already owns a tenant: answered 409 (one tenant per address)."""

    def __init__(self, email: str) -> None:
        super().__init__("a client with this e-mail address is already registered")
        self.email = email


@dataclass(frozen=True, slots=True)
class Credentials:
    key: apikeys.NewKey
    webhook_secret: str


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A new key: ``plaintext`` is its only copy."""

    key_id: str
    plaintext: str
    scopes: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotated key's successor (``new.plaintext`` is its only copy) and when the old key ends."""

    new: MintedKey
    replaces: str
    old_expires_at: float


def key_prefix(key_id: str) -> str:
    """What a person sees of a key (``ia_<key_id>_…``): enough to recognise it, nothing to use it."""
    return f"ia_{key_id}_…"


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
    """Create the client with its admin key and the default rule pack (``store/rules.py``), in one
    transaction; the answer carries the plaintext key, the only copy.

    Raises ``EmailTakenError`` when ``email`` (case-insensitively) already owns a client.
    """
    creds = credentials or mint()
    with db.write() as conn:
        if tenants.client_by_email(conn, email) is not None:
            raise EmailTakenError(email)
        client = tenants.create_client(
            conn,
            email=email,
            company_name=company_name,
            webhook_url=webhook_url,
            webhook_secret=creds.webhook_secret,
            key_id=creds.key.key_id,
            secret_hash=creds.key.secret_hash,
            scopes=scopes.REGISTRATION_SCOPES,
            now=now,
        )
        rules.install_default_pack(conn, client.id, now)  # every tenant starts with the pack
    return Registration(client=client, api_key=creds.key.plaintext)


def mint_key(
    db: Database, client_id: str, key_scopes: Sequence[str], now: float, *, actor: str, name: str = ""
) -> MintedKey:
    """Store a new key of ``client_id`` with ``key_scopes`` and return its plaintext, once.

    Raises ``ValueError`` when the scopes are empty, unknown or repeated (``scopes.problems``).
    """
    problem = scopes.problems(key_scopes)
    if problem:
        raise ValueError(problem)
    key = apikeys.generate()
    with db.write() as conn:
        tenants.create_key(
            conn,
            client_id,
            key_id=key.key_id,
            secret_hash=key.secret_hash,
            scopes=key_scopes,
            now=now,
            actor=actor,
            name=name,
        )
    return MintedKey(key.key_id, key.plaintext, tuple(key_scopes), name)


def revoke_key(db: Database, client_id: str, key_id: str, now: float, *, actor: str) -> bool:
    """Revoke ``client_id``'s key ``key_id``; False when the client has no such key.

    The caller must also drop the key from any cache of keys (``server/auth.KeyCache.drop``).
    """
    with db.write() as conn:
        return tenants.revoke_key(conn, client_id, key_id, now, actor)


def rotate_key(
    db: Database, client_id: str, key_id: str, now: float, *, grace_s: float, actor: str
) -> Rotation | None:
    """A successor of ``client_id``'s key ``key_id`` (same scopes and name), its plaintext once; the
    old key stays valid ``grace_s`` more seconds (0: it stops now). None when the client has no
    such key; ``KeyInactiveError`` when it is revoked or expired.

    The caller must drop the old key from any cache of keys when ``grace_s`` is 0.
    """
    if grace_s < 0:
        raise ValueError("grace_s must be 0 or more")
    key = apikeys.generate()
    with db.write() as conn:
        rotated = tenants.rotate_key(
            conn,
            client_id,
            key_id,
            new_key_id=key.key_id,
            secret_hash=key.secret_hash,
            now=now,
            grace_s=grace_s,
            actor=actor,
        )
    if rotated is None:
        return None
    record, old_expires_at = rotated
    return Rotation(
        MintedKey(record.key_id, key.plaintext, record.scopes, record.name), key_id, old_expires_at
    )


def list_keys(db: Database, client_id: str) -> list[KeyRecord]:
    """Every key of ``client_id``, oldest first (records carry hashes: the API shows none of them)."""
    with db.read() as conn:
        return tenants.list_keys(conn, client_id)
