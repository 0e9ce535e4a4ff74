"""The users API and the users page against the real app under uvicorn, on SQLite and PostgreSQL
(issue 12, point 1): an admin lists, adds, changes and removes the tenant's users; the tenant keeps
an enabled admin; other tenants' users are 404; no answer carries a password or its hash; every
change is in the tenant's audit log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from infragent.auth import accounts
from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store import audit
from infragent.store.sql import SqlStore
from support.databases import create_client
from support.servers import serve

PASSWORD = "correct horse battery"


@dataclass
class Tenant:
    client_id: str
    admin_key: str
    admin_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


@pytest.fixture
def http(store: SqlStore) -> Iterator[httpx.Client]:
    app = create_app(Settings(), store=store)
    with serve(app) as base, httpx.Client(base_url=base, follow_redirects=False) as client:
        yield client


def _tenant(store: SqlStore, email: str) -> Tenant:
    reg = create_client(store, email, "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    admin = accounts.add_user(store, reg.client.id, f"admin-{email}", "", PASSWORD, "admin", 1000.0, "test")
    return Tenant(reg.client.id, reg.api_key, admin.id)


def test_admin_adds_lists_changes_and_removes_a_user(http: httpx.Client, store: SqlStore) -> None:
    t = _tenant(store, "a@example.com")
    body = {"email": "Bob@Example.com", "name": "Bob", "password": PASSWORD, "role": "operator"}
    r = http.post("/api/v1/users", json=body, headers=t.auth)
    assert r.status_code == 201, r.text
    bob = r.json()
    assert bob["email"] == "bob@example.com" and bob["role"] == "operator" and bob["disabled"] is False
    assert "password" not in r.text and "argon2" not in r.text
    listed = http.get("/api/v1/users", headers=t.auth).json()
    assert [u["email"] for u in listed] == ["admin-a@example.com", "bob@example.com"]
    assert all("password" not in u and "password_hash" not in u for u in listed)

    assert http.post("/api/v1/users", json=body, headers=t.auth).status_code == 409
    weak = http.post(
        "/api/v1/users", json={**body, "email": "c@example.com", "password": "short"}, headers=t.auth
    )
    assert weak.status_code == 422 and "at least 10" in weak.json()["detail"]
    bad_role = http.post(
        "/api/v1/users", json={**body, "email": "d@example.com", "role": "root"}, headers=t.auth
    )
    assert bad_role.status_code == 422

    r = http.patch(f"/api/v1/users/{bob['id']}", json={"role": "viewer", "disabled": True}, headers=t.auth)
    assert r.status_code == 200 and r.json()["role"] == "viewer" and r.json()["disabled"] is True
    assert http.delete(f"/api/v1/users/{bob['id']}", headers=t.auth).status_code == 204
    assert http.delete(f"/api/v1/users/{bob['id']}", headers=t.auth).status_code == 404

    with store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, t.client_id, [bob["id"]])]
        details = str([e.detail for e in audit.entries(conn, t.client_id)])
    assert kinds == ["user.role", "user.role", "user.disabled", "user.removed"]
    assert PASSWORD not in details and "argon2" not in details


def test_the_last_enabled_admin_cannot_be_demoted_disabled_or_removed(
    http: httpx.Client, store: SqlStore
) -> None:
    t = _tenant(store, "a@example.com")
    path = f"/api/v1/users/{t.admin_id}"
    assert http.patch(path, json={"role": "viewer"}, headers=t.auth).status_code == 409
    assert http.patch(path, json={"disabled": True}, headers=t.auth).status_code == 409
    assert http.delete(path, headers=t.auth).status_code == 409
    second = {"email": "second@example.com", "password": PASSWORD, "role": "admin"}
    assert http.post("/api/v1/users", json=second, headers=t.auth).status_code == 201
    assert http.patch(path, json={"role": "operator"}, headers=t.auth).status_code == 200


def test_another_tenants_user_is_404_and_not_listed(http: httpx.Client, store: SqlStore) -> None:
    a = _tenant(store, "a@example.com")
    b = _tenant(store, "b@example.com")
    assert [u["email"] for u in http.get("/api/v1/users", headers=a.auth).json()] == ["admin-a@example.com"]
    for method in ("PATCH", "DELETE"):
        r = http.request(method, f"/api/v1/users/{b.admin_id}", json={"role": "viewer"}, headers=a.auth)
        assert r.status_code == 404, method


def test_a_user_of_two_tenants_cannot_be_disabled_by_one_tenants_admin(
    http: httpx.Client, store: SqlStore
) -> None:
    a = _tenant(store, "a@example.com")
    b = _tenant(store, "b@example.com")
    accounts.grant_role(store, b.client_id, "admin-a@example.com", "viewer", 1000.0, "test")
    r = http.patch(f"/api/v1/users/{a.admin_id}", json={"disabled": True}, headers=b.auth)
    assert r.status_code == 409 and "other tenants" in r.json()["detail"]


def test_users_routes_need_admin_and_session_tells_who_is_asking(http: httpx.Client, store: SqlStore) -> None:
    t = _tenant(store, "a@example.com")
    read_key = http.post("/api/v1/keys", json={"scopes": ["read"]}, headers=t.auth).json()["api_key"]
    reader = {"Authorization": f"Bearer {read_key}"}
    r = http.get("/api/v1/users", headers=reader)
    assert r.status_code == 403 and r.json()["required_scope"] == "admin"
    me = http.get("/api/v1/session", headers=reader).json()
    assert me["client_id"] == t.client_id and me["scopes"] == ["read"] and me["user_id"] is None
    assert http.get("/api/v1/session").status_code == 401


def _sign_in(http: httpx.Client, email: str) -> str:
    r = http.post("/login", data={"email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return http.get("/users").text.split('name="csrf-token" content="')[1].split('"')[0]


def test_the_users_page_lists_adds_changes_and_removes(http: httpx.Client, store: SqlStore) -> None:
    client_id = _tenant(store, "a@example.com").client_id
    csrf = _sign_in(http, "admin-a@example.com")
    htmx = {tokens.CSRF_HEADER: csrf, "HX-Request": "true"}
    page = http.get("/users")
    assert page.status_code == 200
    assert 'data-test="user-create"' in page.text and 'data-email="admin-a@example.com"' in page.text

    form = {"email": "bob@example.com", "name": "Bob", "password": PASSWORD, "role": "operator"}
    r = http.post("/users", data=form, headers=htmx)
    assert r.status_code == 200 and 'data-email="bob@example.com"' in r.text
    assert "<html" not in r.text  # the section alone, for htmx to swap
    bob = next(m for m in accounts.members(store, client_id) if m.user.email == "bob@example.com")
    assert bob.role == "operator"

    taken = http.post("/users", data=form, headers=htmx)
    assert 'data-test="user-error"' in taken.text and "already exists" in taken.text

    r = http.post(f"/users/{bob.user.id}/role", data={"role": "viewer"}, headers=htmx)
    assert 'data-test="user-error"' not in r.text
    assert accounts.member(store, client_id, bob.user.id).role == "viewer"

    r = http.post(f"/users/{bob.user.id}/remove", headers=htmx)
    assert 'data-email="bob@example.com"' not in r.text
    assert http.post("/users", data=form).status_code == 403  # no CSRF header


def test_a_viewer_sees_no_users_page(http: httpx.Client, store: SqlStore) -> None:
    t = _tenant(store, "a@example.com")
    accounts.add_user(store, t.client_id, "v@example.com", "", PASSWORD, "viewer", 1000.0, "test")
    r = http.post("/login", data={"email": "v@example.com", "password": PASSWORD})
    assert r.status_code == 303
    assert http.get("/users").status_code == 403
