"""API key format: ``ia_<key_id>_<secret>``; only ``key_id`` and SHA-256(secret) are stored.

Why a separate key id: lookup by an indexed id, then one constant-time compare of the hash, so a
key can be verified without scanning and without ever keeping the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_KEY_RE = re.compile(r"^ia_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    secret_hash: str
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate() -> NewKey:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    key_id = "".join(secrets.choice(alphabet) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id=key_id, secret_hash=hash_secret(secret), plaintext=f"ia_{key_id}_{secret}")


def parse(plaintext: str) -> tuple[str, str] | None:
    """Split a presented key into (key_id, secret), or None when it is not of our format."""
    match = _KEY_RE.match(plaintext)
    return (match.group(1), match.group(2)) if match else None


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
