"""Signed-in users: start a session (cookie + row), resolve a cookie to a ``Principal``, end it.

Why the role is read at every request (one indexed join) rather than kept in the cookie: demoting,
removing or disabling a user, or signing out, must take effect at the next click, on every server
process. ``auth/sessions.py`` holds the pure parts (tokens, signature, CSRF comparison).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from infragent.auth import scopes
from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.store import sessions as session_rows
from infragent.store.base import Database
from infragent.store.records import SessionRecord
from infragent.store.schema import memberships, users


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session with the user's current role in the session's tenant."""

    session: SessionRecord
    email: str
    name: str
    role: str

    @property
    def scopes(self) -> tuple[str, ...]:
        return scopes.role_scopes(self.role)


class SessionService:
    """Start, resolve and end sessions; one per server (``AppServices.sessions``)."""

    def __init__(self, store: Database, settings: Settings, clock: Callable[[], float]) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        with store.write() as conn:
            self._key = session_rows.signing_key(conn, tokens.new_signing_key())

    @property
    def ttl_s(self) -> float:
        return self._settings.session_ttl_s

    def start(self, user_id: str, client_id: str, ip: str, user_agent: str) -> tuple[str, SessionRecord]:
        """A new session of ``user_id`` in ``client_id``: (the cookie's value, the row)."""
        token = tokens.new_token()
        with self._store.write() as conn:
            record = session_rows.create_session(
                conn,
                session_id=tokens.token_hash(token),
                user_id=user_id,
                client_id=client_id,
                csrf_token=tokens.new_csrf(),
                now=self._clock(),
                ttl_s=self.ttl_s,
                ip=ip,
                user_agent=user_agent,
            )
        return tokens.sign(token, self._key), record

    def resolve(self, cookie: str) -> SignedIn | None:
        """The live session a cookie names, with the user's role now; None when the cookie is forged,
        expired or signed out, the user is disabled or no longer a member of the tenant."""
        token = tokens.unsign(cookie, self._key, self.ttl_s)
        if token is None:
            return None
        with self._store.read() as conn:
            record = session_rows.get_session(conn, tokens.token_hash(token))
            if record is None or not record.live(self._clock()):
                return None
            row = conn.execute(
                sa.select(users.c.email, users.c.name, users.c.disabled_at, memberships.c.role)
                .join(memberships, memberships.c.user_id == users.c.id)
                .where(users.c.id == record.user_id, memberships.c.client_id == record.client_id)
            ).first()
        if row is None or row.disabled_at is not None:
            return None
        return SignedIn(record, row.email, row.name, row.role)

    def end(self, cookie: str) -> None:
        token = tokens.unsign(cookie, self._key, self.ttl_s)
        if token is not None:
            with self._store.write() as conn:
                session_rows.revoke(conn, tokens.token_hash(token), self._clock())

    def secure(self, request: Request) -> bool:
        mode = self._settings.session_cookie_secure
        return mode == "always" or (mode == "auto" and request.url.scheme == "https")

    def set_cookie(self, response: Response, value: str, request: Request) -> None:
        response.set_cookie(
            tokens.COOKIE,
            value,
            max_age=int(self.ttl_s),
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
            path="/",
        )

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(tokens.COOKIE, path="/", httponly=True, samesite="strict")
