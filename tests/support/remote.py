"""A served app with an httpx client and signed-in users, for the remote-control tests.

Why not ``support.web.sign_in``: it takes a Starlette ``TestClient``, whose import fails under
``filterwarnings=error`` with Starlette 1.10 (it asks for ``httpx2``). These tests talk to the real
app under uvicorn instead; signing in goes through the same session service (a user row, a
membership, a session row and the signed cookie on the client), without hashing a password.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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
class Person:
    user_id: str
    email: str
    csrf: str
    cookie: str

    @property
    def headers(self) -> dict[str, str]:
        """What the browser sends: the session cookie, and htmx's CSRF header (``hx-headers``)."""
        return {"Cookie": f"{tokens.COOKIE}={self.cookie}", tokens.CSRF_HEADER: self.csrf}

    @property
    def cookie_only(self) -> dict[str, str]:
        """The cookie without the CSRF header: a forged cross-site POST."""
        return {"Cookie": f"{tokens.COOKIE}={self.cookie}"}


@dataclass
class Site:
    app: FastAPI
    http: httpx.Client

    def person(self, client_id: str, role: str) -> Person:
        """A new user with ``role`` in ``client_id`` and a live session (send ``.headers``)."""
        svc: AppServices = self.app.state.services
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        with svc.store.write() as conn:
            user = users.create_user(
                conn,
                email=email,
                name=role,
                password_hash="not-a-usable-hash",
                client_id=client_id,
                role=role,
                now=svc.clock(),
                actor="test",
            )
        cookie, record = svc.sessions.start(user.id, client_id, "127.0.0.1", "pytest")
        return Person(user.id, email, record.csrf_token, cookie)


@contextmanager
def site(store: SqlStore) -> Iterator[Site]:
    """The app on loopback (tenants' webhooks on loopback allowed), one try per push, TTL 300 s."""
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",), webhook_retries=0, command_ttl_s=300)
    app = create_app(settings, store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        yield Site(app, http)
