"""Passwords: argon2id hashes (``argon2-cffi``), and the rules a new password must meet.

Why argon2id with the library's defaults: it is the OWASP recommendation for password storage and
``argon2-cffi``'s defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes) follow it; a hash
stores its own parameters, so raising them later re-hashes each password at its next sign-in
(``needs_rehash``). Verifying takes tens of milliseconds on purpose: sign-in is rate-limited
besides (``server/ratelimit.py``), and callers run it off the event loop.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 1024

_hasher = PasswordHasher()
#: A hash of nothing anyone knows: verified against when the user does not exist, so a sign-in
#: for an unknown e-mail takes as long as one with a wrong password (no user enumeration by timing).
_DUMMY: Final = _hasher.hash("no user has this password: it only makes failures take equal time")


def problem(password: str) -> str | None:
    """Why ``password`` may not be set, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"the password must be at most {MAX_LENGTH} characters long"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (no such user) it still spends the same time."""
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
