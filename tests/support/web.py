"""Sign a test in as a user with a role, through the real session service: a user row, a
membership, a session row and the signed cookie set on the test's HTTP client.

Why not through the login page: most tests are about what a role may do, not about signing in
(the access page tests do that); argon2 hashing on every test would cost seconds. The client is an
``httpx.Client`` on a real server (``support.servers.serve``): Starlette's ``TestClient`` warns on
import with this httpx, and warnings are errors here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from infragent.auth import sessions as tokens
from infragent.server.services import AppServices
from infragent.store import users


@dataclass(frozen=True)
class SignedInUser:
    user_id: str
    email: str
    role: str
    client_id: str
    csrf: str
    cookie: str

    @property
    def headers(self) -> dict[str, str]:
        """What htmx sends on a state-changing request."""
        return {tokens.CSRF_HEADER: self.csrf}


def make_user(
    app: FastAPI, client_id: str, role: str, email: str | None = None, password_hash: str = ""
) -> str:
    """A user with ``role`` in ``client_id``; returns the user id."""
    svc: AppServices = app.state.services
    address = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    with svc.store.write() as conn:
        user = users.create_user(
            conn,
            email=address,
            name=address.split("@")[0],
            password_hash=password_hash or "not-a-usable-hash",
            client_id=client_id,
            role=role,
            now=svc.clock(),
            actor="test",
        )
    return user.id


def sign_in(
    app: FastAPI, client_id: str, role: str, http: httpx.Client | None = None, email: str | None = None
) -> SignedInUser:
    """Create a user with ``role`` in ``client_id`` and a live session; with ``http``, put the session
    cookie on it (a client shared by several users needs per-request cookies instead)."""
    svc: AppServices = app.state.services
    user_id = make_user(app, client_id, role, email)
    cookie, record = svc.sessions.start(user_id, client_id, "127.0.0.1", "pytest")
    if http is not None:
        http.cookies.set(tokens.COOKIE, cookie)
    with svc.store.read() as conn:
        found = users.get_user(conn, user_id)
    assert found is not None
    return SignedInUser(user_id, found.email, role, client_id, record.csrf_token, cookie)
