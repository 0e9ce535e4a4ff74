"""Sign a test in as a user with a role, through the real session service, and serve the app for it.

``sign_in`` makes a user row, a membership, a session row and the signed cookie (on the test's HTTP
client, or sent per request by the test). ``serve_site`` runs the app under uvicorn
(``support.servers.serve``) with an ``httpx.Client`` on it: the ``Site`` every page and session test
talks to (``tests/integration/web/conftest.py`` makes it the ``site`` fixture).

Why not through the login page: most tests are about what a role may do, not about signing in
(the access page tests do that); argon2 hashing on every test would cost seconds. Why httpx on a
real server: Starlette's ``TestClient`` warns on import with this httpx, and warnings are errors here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.server.services import AppServices
from infragent.store import users
from infragent.store.sql import SqlStore
from support.servers import serve


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
        """What htmx sends on a state-changing request (the cookie is on the client)."""
        return {tokens.CSRF_HEADER: self.csrf}

    @property
    def cookie_only(self) -> dict[str, str]:
        """The session cookie without the CSRF header: a forged cross-site POST, or a plain GET."""
        return {"Cookie": f"{tokens.COOKIE}={self.cookie}"}

    @property
    def browser_headers(self) -> dict[str, str]:
        """The session cookie and the CSRF header: what this user's browser sends, for a client
        that several users (or nobody) share."""
        return self.cookie_only | self.headers


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
    cookie on it (a client shared by several users sends ``.browser_headers`` per request instead)."""
    svc: AppServices = app.state.services
    user_id = make_user(app, client_id, role, email)
    cookie, record = svc.sessions.start(user_id, client_id, "127.0.0.1", "pytest")
    if http is not None:
        http.cookies.set(tokens.COOKIE, cookie)
    with svc.store.read() as conn:
        found = users.get_user(conn, user_id)
    assert found is not None
    return SignedInUser(user_id, found.email, role, client_id, record.csrf_token, cookie)


@dataclass
class Site:
    """The app under uvicorn, an httpx client on it (no redirects followed) and its store."""

    app: FastAPI
    http: httpx.Client

    @property
    def svc(self) -> AppServices:
        svc: AppServices = self.app.state.services
        return svc

    @property
    def store(self) -> SqlStore:
        return self.svc.store

    def sign_in(self, client_id: str, role: str, email: str | None = None) -> SignedInUser:
        """A new user with ``role``, signed in on ``http`` (the client keeps the cookie, like a
        browser); send ``.headers`` on a POST."""
        return sign_in(self.app, client_id, role, self.http, email)

    def person(self, client_id: str, role: str, email: str | None = None) -> SignedInUser:
        """A new user with ``role`` and a live session whose cookie stays off ``http``: send
        ``.browser_headers`` (or ``.cookie_only``) with each request."""
        return sign_in(self.app, client_id, role, None, email)


@contextmanager
def serve_site(
    store: SqlStore,
    settings: Settings | None = None,
    clock: Callable[[], float] = time.time,
    timeout_s: float = 30.0,
) -> Iterator[Site]:
    """``create_app`` on ``store`` served on loopback, with an httpx client on it; both closed on exit."""
    app = create_app(settings or Settings(), store=store, clock=clock)
    with serve(app) as base, httpx.Client(base_url=base, timeout=timeout_s) as http:
        yield Site(app, http)


def register_tenant(http: httpx.Client, email: str, *scopes: str) -> tuple[str, ...]:
    """A tenant registered through the API, and one key per scope minted with its admin key:
    ``(client_id, admin_key, *keys)``, in the order of ``scopes``."""
    body = {"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"}
    reg = http.post("/api/v1/clients/register", json=body).json()
    admin = reg["api_key"]
    auth = {"Authorization": f"Bearer {admin}"}
    minted = [http.post("/api/v1/keys", json={"scopes": [s]}, headers=auth).json()["api_key"] for s in scopes]
    return (reg["client_id"], admin, *minted)
