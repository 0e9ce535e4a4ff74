"""Session tokens and their signed cookie: what the browser holds and what the database keeps.

Why both a signature and a row: the cookie carries a random token signed with the server's key
(``itsdangerous``), so a forged or altered cookie is refused before any database read; the row
(keyed by the token's SHA-256, never the token) makes logout, expiry, a disabled user and a changed
role take effect at once. A database leak yields hashes, not sessions.

CSRF: each session has its own random token, sent by every page in a ``<meta>`` tag and returned
by htmx in the ``X-CSRF-Token`` header (``hx-headers`` on ``<body>``) or by a plain form in a
``csrf_token`` field; a state-changing request signed in by cookie without it is refused (403).
``SameSite=Strict`` already keeps other sites' requests from carrying the cookie; the token is the
second lock. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE: Final = "infragent_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
#: methods that change nothing: no CSRF token needed
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_SALT: Final = "infragent.session"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The session row's id: the SHA-256 of the token the cookie carries."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def new_signing_key() -> str:
    return secrets.token_urlsafe(48)


def sign(token: str, signing_key: str) -> str:
    """The cookie's value for ``token``."""
    return str(URLSafeTimedSerializer(signing_key, salt=_SALT).dumps(token))


def unsign(cookie: str, signing_key: str, max_age_s: float) -> str | None:
    """The token inside a cookie we signed no longer than ``max_age_s`` ago, else None."""
    try:
        token = URLSafeTimedSerializer(signing_key, salt=_SALT).loads(cookie, max_age=int(max_age_s))
    except BadSignature:  # also SignatureExpired
        return None
    return token if isinstance(token, str) else None


def csrf_ok(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
