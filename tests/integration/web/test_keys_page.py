"""The API keys page against the real app under uvicorn on both databases (issue 12, points 2 and 4):
what an admin's htmx forms do (with the session's CSRF header, as the page's ``hx-headers`` sends
it), checked both on the page and on the API with the keys the page showed; what other roles get.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest

from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.store.sql import SqlStore
from support.databases import create_client
from support.web import Site

EVENT = {"type": "app_down", "service": "web", "severity": "critical", "data": {}}
SECRET = re.compile(r'data-test="key-secret"[^>]*>(ia_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43})<')


@dataclass
class Page:
    site: Site
    client_id: str
    admin_key: str
    csrf: str = ""

    @property
    def http(self) -> httpx.Client:
        return self.site.http

    def sign_in(self, role: str) -> None:
        """A user with ``role`` in the tenant, signed in on ``http`` (cookie) with its CSRF token."""
        self.csrf = self.site.sign_in(self.client_id, role).csrf

    def post(self, path: str, data: dict[str, object] | None = None, htmx: bool = True) -> httpx.Response:
        headers = {tokens.CSRF_HEADER: self.csrf}
        if htmx:
            headers["HX-Request"] = "true"
        return self.http.post(path, data=data or {}, headers=headers)


def secret_in(html: str) -> str:
    found = SECRET.search(html)
    assert found, html
    return found.group(1)


def row(html: str, key_id: str) -> str:
    start = html.index(f'data-key-id="{key_id}"', html.index('data-test="keys-table"'))
    return html[start : html.index("</tr>", start)]


def api(http: httpx.Client, key: str) -> int:
    """What the API answers ``key`` on an ingest route (202: it works)."""
    return http.post("/api/v1/events", json=EVENT, headers={"Authorization": f"Bearer {key}"}).status_code


@pytest.fixture
def settings() -> Settings:
    return Settings(key_rotation_grace_s=600)


@pytest.fixture
def web(site: Site, store: SqlStore) -> Page:
    reg = create_client(store, "owner@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    return Page(site, reg.client.id, reg.api_key)


def test_the_admin_sees_the_keys_and_the_create_form(web: Page) -> None:
    web.sign_in("admin")
    r = web.http.get("/keys")
    assert r.status_code == 200
    assert 'data-test="nav-keys"' in r.text and 'data-test="key-create"' in r.text
    admin_id = web.admin_key.split("_")[1]
    assert f"ia_{admin_id}_…" in row(r.text, admin_id)
    assert web.admin_key not in r.text and 'data-test="key-secret"' not in r.text
    assert r.headers["cache-control"] == "no-store"


def test_create_shows_the_secret_once_and_the_key_works(web: Page) -> None:
    web.sign_in("admin")
    r = web.post("/keys", {"name": "web-1", "scopes": ["ingest", "read"]})
    assert r.status_code == 200, r.text
    assert r.text.startswith('<section id="keys-section">')  # the fragment htmx swaps in
    key = secret_in(r.text)
    key_id = key.split("_")[1]
    assert "only time it is shown" in r.text
    assert "web-1" in row(r.text, key_id) and "ingest" in row(r.text, key_id)
    assert api(web.http, key) == 202
    again = web.http.get("/keys")
    assert key not in again.text and key_id in again.text


def test_rotate_shows_the_new_secret_and_the_old_rows_end(web: Page) -> None:
    web.sign_in("admin")
    old = secret_in(web.post("/keys", {"name": "db-1", "scopes": ["ingest"]}).text)
    old_id = old.split("_")[1]
    r = web.post(f"/keys/{old_id}/rotate")
    assert r.status_code == 200, r.text
    new = secret_in(r.text)
    assert new != old and "keeps working until" in r.text
    assert "expires" in row(r.text, old_id) and f"replaced by ia_{new.split('_')[1]}_…" in row(r.text, old_id)
    assert api(web.http, old) == 202 and api(web.http, new) == 202  # the grace period
    assert "db-1" in row(r.text, new.split("_")[1])


def test_revoke_stops_the_key_and_hides_its_buttons(web: Page) -> None:
    web.sign_in("admin")
    key = secret_in(web.post("/keys", {"scopes": ["ingest"]}).text)
    key_id = key.split("_")[1]
    assert 'hx-confirm="Revoke' in row(web.http.get("/keys").text, key_id)
    r = web.post(f"/keys/{key_id}/revoke")
    assert r.status_code == 200
    revoked = row(r.text, key_id)
    assert (
        "revoked" in revoked
        and 'data-test="key-revoke"' not in revoked
        and 'data-test="key-rotate"' not in revoked
    )
    assert api(web.http, key) == 401
    r = web.post(f"/keys/{key_id}/rotate")  # a revoked key cannot be rotated: said inline
    assert 'data-test="key-error"' in r.text and "revoked" in r.text


def test_refusals_are_shown_inline_to_htmx_and_with_their_status_otherwise(web: Page) -> None:
    web.sign_in("admin")
    r = web.post("/keys", {"name": "x"})
    assert r.status_code == 200 and 'data-test="key-error"' in r.text and "scope" in r.text
    assert 'value="x"' in r.text  # the form keeps what was typed
    assert web.post("/keys", {"name": "x"}, htmx=False).status_code == 422
    assert web.post("/keys", {"scopes": ["root"]}, htmx=False).status_code == 422
    theirs = create_client(web.site.store, "b@example.com", "B", "http://127.0.0.1:9/h", now=1.0)
    their_id = theirs.api_key.split("_")[1]
    for verb in ("rotate", "revoke"):
        assert web.post(f"/keys/{their_id}/{verb}", htmx=False).status_code == 404
    assert api(web.http, theirs.api_key) == 202


def test_a_form_without_the_csrf_token_is_refused(web: Page) -> None:
    web.sign_in("admin")
    r = web.http.post("/keys", data={"scopes": ["ingest"]}, headers={"HX-Request": "true"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert 'data-test="key-secret"' not in r.text


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_other_roles_get_the_403_page_and_no_menu_entry(web: Page, role: str) -> None:
    web.sign_in(role)
    r = web.http.get("/keys")
    assert r.status_code == 403 and 'data-test="forbidden"' in r.text
    assert 'data-test="nav-keys"' not in r.text
    assert web.post("/keys", {"scopes": ["admin"]}, htmx=False).status_code == 403
    admin_id = web.admin_key.split("_")[1]
    assert web.post(f"/keys/{admin_id}/revoke", htmx=False).status_code == 403
    assert api(web.http, web.admin_key) == 202


def test_not_signed_in_goes_to_the_sign_in_page(web: Page) -> None:
    r = web.http.get("/keys")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/keys"
