"""``registration_mode`` against the real app under uvicorn, on SQLite and PostgreSQL (issue 12,
point 1: "tenant registration becomes a setting; default closed once an admin exists").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from infragent.auth import accounts
from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from support.servers import serve

PASSWORD = "correct horse battery"


@contextmanager
def _http(store: SqlStore, mode: str) -> Iterator[httpx.Client]:
    settings = Settings(registration_mode=mode, webhook_allowed_networks=("127.0.0.0/8",))  # type: ignore[arg-type]
    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base) as client:
        yield client


def _register(http: httpx.Client, email: str, **kw: Any) -> httpx.Response:
    body = {"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"}
    return http.post("/api/v1/clients/register", json=body, **kw)


def test_auto_is_open_until_the_first_user_then_closed(store: SqlStore) -> None:
    with _http(store, "auto") as http:
        first = _register(http, "a@example.com")
        assert first.status_code == 201
        accounts.add_user(
            store, first.json()["client_id"], "ann@example.com", "", PASSWORD, "admin", 1.0, "t"
        )
        r = _register(http, "b@example.com")
        assert r.status_code == 403
        assert "registration_mode" in r.json()["detail"]


def test_open_stays_open_and_closed_is_always_403(store: SqlStore) -> None:
    with _http(store, "open") as http:
        first = _register(http, "a@example.com").json()
        accounts.add_user(store, first["client_id"], "ann@example.com", "", PASSWORD, "admin", 1.0, "t")
        assert _register(http, "b@example.com").status_code == 201
    with _http(store, "closed") as http:
        assert _register(http, "c@example.com").status_code == 403


def test_admin_only_needs_an_admin_key_or_a_signed_in_admin(store: SqlStore) -> None:
    with _http(store, "open") as http:
        owner = _register(http, "a@example.com").json()
        read_key = http.post(
            "/api/v1/keys", json={"scopes": ["read"]}, headers={"Authorization": f"Bearer {owner['api_key']}"}
        ).json()["api_key"]
    client_id = owner["client_id"]
    accounts.add_user(store, client_id, "ann@example.com", "", PASSWORD, "admin", 1.0, "t")
    accounts.add_user(store, client_id, "vic@example.com", "", PASSWORD, "viewer", 1.0, "t")
    with _http(store, "admin-only") as http:
        assert _register(http, "b@example.com").status_code == 401
        r = _register(http, "b@example.com", headers={"Authorization": f"Bearer {read_key}"})
        assert r.status_code == 403 and r.json()["required_scope"] == "admin"
        r = _register(http, "b@example.com", headers={"Authorization": f"Bearer {owner['api_key']}"})
        assert r.status_code == 201

        assert http.post("/login", data={"email": "vic@example.com", "password": PASSWORD}).status_code == 303
        csrf = http.get("/").text.split('name="csrf-token" content="')[1].split('"')[0]
        assert _register(http, "c@example.com", headers={tokens.CSRF_HEADER: csrf}).status_code == 403

        http.cookies.clear()
        http.post("/login", data={"email": "ann@example.com", "password": PASSWORD})
        csrf = http.get("/").text.split('name="csrf-token" content="')[1].split('"')[0]
        assert _register(http, "c@example.com").status_code == 403  # cookie without its CSRF header
        assert _register(http, "c@example.com", headers={tokens.CSRF_HEADER: csrf}).status_code == 201
