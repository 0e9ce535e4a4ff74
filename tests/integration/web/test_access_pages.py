"""Sign-in, sign-out and first-run setup through the real app on SQLite and PostgreSQL (issue 12,
point 1): the form posts a browser makes, the cookie the server sets, and what that cookie can do
on the API afterwards. The app runs under uvicorn (``support.web.serve_site``) and httpx keeps the
cookies, as a browser would.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from infragent.auth import accounts
from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.server.web.pages.access import local_path
from infragent.store.sql import SqlStore
from support.databases import create_client
from support.web import Site

PASSWORD = "correct horse battery"


@pytest.fixture
def settings() -> Settings:
    return Settings(login_rate_limit=3, login_rate_window_s=60)


@pytest.fixture
def web(site: Site) -> httpx.Client:
    """The client keeps the cookies the server sets, as a browser would."""
    return site.http


def _tenant(store: SqlStore, email: str = "owner@example.com", company: str = "Acme") -> str:
    return create_client(store, email, company, "http://127.0.0.1:9/hook", now=1000.0).client.id


def _user(store: SqlStore, client_id: str, email: str = "ann@example.com", role: str = "admin") -> str:
    return accounts.add_user(store, client_id, email, "Ann", PASSWORD, role, 1000.0, "test").id


def _login(web: httpx.Client, email: str, password: str = PASSWORD, **extra: str) -> Any:
    return web.post("/login", data={"email": email, "password": password, **extra})


def test_sign_in_sets_a_strict_http_only_cookie_and_the_session_works_on_the_api(
    web: httpx.Client, store: SqlStore
) -> None:
    client_id = _user(store, _tenant(store))
    r = _login(web, "Ann@Example.com", next="/hosts?page=2")
    assert r.status_code == 303
    assert r.headers["location"] == "/hosts?page=2"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{tokens.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    me = web.get("/api/v1/session")
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com" and me.json()["role"] == "admin"
    assert "csrf" not in me.text
    assert client_id


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    web: httpx.Client, store: SqlStore
) -> None:
    _user(store, _tenant(store))
    wrong = _login(web, "ann@example.com", "not the password at all")
    unknown = _login(web, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert 'data-test="login-error"' in wrong.text
    assert wrong.text.replace("ann@example.com", "X") == unknown.text.replace("nobody@example.com", "X")
    assert tokens.COOKIE not in web.cookies


def test_failed_sign_ins_are_limited_per_address_even_for_the_right_password(
    web: httpx.Client, store: SqlStore
) -> None:
    _user(store, _tenant(store))
    statuses = [_login(web, "ann@example.com", "wrong password!").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    right = _login(web, "ann@example.com")
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) >= 1
    assert 'data-test="login-error"' in right.text
    assert tokens.COOKIE not in web.cookies


def test_logout_ends_the_session_so_the_old_cookie_is_refused(web: httpx.Client, store: SqlStore) -> None:
    _user(store, _tenant(store))
    assert _login(web, "ann@example.com").status_code == 303
    old = web.cookies[tokens.COOKIE]
    page = web.get("/")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    r = web.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    web.cookies.clear()
    web.cookies.set(tokens.COOKIE, old)
    assert web.get("/api/v1/session").status_code == 401
    assert web.get("/").headers["location"].startswith("/login")


def test_logout_without_the_csrf_token_is_refused_and_the_session_lives_on(
    web: httpx.Client, store: SqlStore
) -> None:
    _user(store, _tenant(store))
    _login(web, "ann@example.com")
    r = web.post("/logout", data={})
    assert r.status_code == 403
    assert web.get("/api/v1/session").status_code == 200


def test_an_api_write_by_cookie_without_the_csrf_header_is_403(web: httpx.Client, store: SqlStore) -> None:
    _user(store, _tenant(store))
    _login(web, "ann@example.com")
    body = {"email": "bob@example.com", "password": PASSWORD, "role": "viewer"}
    assert web.post("/api/v1/users", json=body).status_code == 403
    csrf = web.get("/").text.split('name="csrf-token" content="')[1].split('"')[0]
    assert web.post("/api/v1/users", json=body, headers={tokens.CSRF_HEADER: csrf}).status_code == 201


def test_a_disabled_user_is_signed_out_at_the_next_request(web: httpx.Client, store: SqlStore) -> None:
    client_id = _tenant(store)
    _user(store, client_id)  # stays admin
    bob = _user(store, client_id, "bob@example.com", "operator")
    _login(web, "bob@example.com")
    assert web.get("/api/v1/session").status_code == 200
    accounts.set_disabled(store, client_id, bob, True, 2000.0, "test")
    assert web.get("/api/v1/session").status_code == 401
    web.cookies.clear()
    assert _login(web, "bob@example.com").status_code == 401


def test_next_is_followed_only_to_a_local_path(web: httpx.Client, store: SqlStore) -> None:
    _user(store, _tenant(store))
    r = _login(web, "ann@example.com", next="//evil.example.com/x")
    assert r.status_code == 303 and r.headers["location"] == "/"
    for bad in ("https://evil.example.com", "/\\evil.example.com", "evil", "/ok\r\nSet-Cookie: x=1", ""):
        assert local_path(bad) == "/"
    assert local_path("/incidents?status=open") == "/incidents?status=open"


def test_a_sign_in_posted_from_another_site_is_refused(web: httpx.Client, store: SqlStore) -> None:
    _user(store, _tenant(store))
    r = _login(web, "ann@example.com", **{})
    assert r.status_code == 303
    web.cookies.clear()
    r = web.post(
        "/login",
        data={"email": "ann@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example.com"},
    )
    assert r.status_code == 403
    assert tokens.COOKIE not in web.cookies


def test_a_user_of_two_tenants_chooses_one(web: httpx.Client, store: SqlStore) -> None:
    first = _tenant(store, "a@example.com", "Alpha")
    second = _tenant(store, "b@example.com", "Beta")
    _user(store, first)
    accounts.grant_role(store, second, "ann@example.com", "viewer", 1000.0, "test")  # joins Beta
    r = _login(web, "ann@example.com")
    assert r.status_code == 200
    assert 'data-test="login-tenant"' in r.text and "Beta" in r.text
    assert tokens.COOKIE not in web.cookies
    r = _login(web, "ann@example.com", tenant=second)
    assert r.status_code == 303
    me = web.get("/api/v1/session").json()
    assert me["client_id"] == second and me["role"] == "viewer"


def test_setup_creates_the_first_admin_in_the_one_tenant_and_then_is_gone(
    web: httpx.Client, store: SqlStore
) -> None:
    client_id = _tenant(store)  # what `infragent up` makes for this machine
    assert web.get("/login").headers["location"] == "/setup"
    form = web.get("/setup")
    assert form.status_code == 200 and 'data-test="setup-form"' in form.text
    weak = web.post("/setup", data={"email": "root@example.com", "password": "short"})
    assert weak.status_code == 422 and 'data-test="setup-error"' in weak.text
    r = web.post(
        "/setup",
        data={"email": "root@example.com", "name": "Root", "password": PASSWORD, "company_name": "X"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    me = web.get("/api/v1/session").json()
    assert me["client_id"] == client_id and me["role"] == "admin"
    assert accounts.member(store, client_id, me["user_id"]).user.last_login_at is not None
    assert web.get("/setup").status_code == 404
    again = {"email": "eve@example.com", "password": PASSWORD, "company_name": "Eve"}
    assert web.post("/setup", data=again).status_code == 404
    assert accounts.user_count(store) == 1


def test_setup_on_an_empty_server_registers_a_tenant(web: httpx.Client, store: SqlStore) -> None:
    r = web.post(
        "/setup",
        data={"email": "root@example.com", "name": "", "password": PASSWORD, "company_name": "Initech"},
    )
    assert r.status_code == 303
    me = web.get("/api/v1/session").json()
    assert me["role"] == "admin"
    assert accounts.tenant_names(store, [me["client_id"]]) == {me["client_id"]: "Initech"}
