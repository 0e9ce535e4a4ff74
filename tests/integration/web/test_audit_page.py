"""The ``/audit`` page against the real server: the chain's verdict (verified, then broken at the
edited entry), the rows newest first with paging, long details cut short, and who may see it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa

from infragent.auth import sessions as tokens
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.server.services import AppServices
from infragent.server.web.pages.audit import PAGE_SIZE, VALUE_CHARS
from infragent.store import audit, users
from infragent.store.schema import audit_log
from infragent.store.sql import SqlStore
from support.databases import audit_entries, create_client
from support.dom import by_test, one
from support.servers import serve


@dataclass
class Site:
    http: httpx.Client
    store: SqlStore
    svc: AppServices

    def sign_in(self, client_id: str, role: str) -> dict[str, str]:
        """A user with ``role`` and a live session (as ``support.web.sign_in``): the cookie header."""
        with self.store.write() as conn:
            user = users.create_user(
                conn,
                email=f"{role}-{time.monotonic_ns()}@example.com",
                name=role,
                password_hash="not-a-usable-hash",
                client_id=client_id,
                role=role,
                now=time.time(),
                actor="test",
            )
        cookie, _ = self.svc.sessions.start(user.id, client_id, "127.0.0.1", "pytest")
        return {"Cookie": f"{tokens.COOKIE}={cookie}"}

    def page(self, headers: dict[str, str], query: str = "") -> str:
        r = self.http.get(f"/audit{query}", headers=headers)
        assert r.status_code == 200, r.text
        return r.text


@pytest.fixture
def site(store: SqlStore) -> Iterator[Site]:
    app = create_app(Settings(), store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Site(http, store, app.state.services)


@pytest.fixture
def tenant(store: SqlStore) -> str:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/h", now=time.time())
    with store.write() as conn:
        for i in range(PAGE_SIZE + 5):
            audit.append(conn, reg.client.id, "key:k1", "test.step", f"s-{i}", {"i": i}, 1000.0 + i)
    return reg.client.id


def test_a_viewer_sees_the_verified_chain_and_pages_back(site: Site, tenant: str) -> None:
    viewer = site.sign_in(tenant, "viewer")
    every = audit_entries(site.store, tenant)
    html = site.page(viewer)
    chain = one(html, "audit-chain")
    assert "verified" in chain.text and f"{len(every)} entries" in chain.text
    rows = by_test(html, "audit-row")
    assert [int(r.attrs["data-entry-id"]) for r in rows] == [e.id for e in reversed(every)][:PAGE_SIZE]
    older = one(html, "audit-older").attrs["href"]
    html = site.page(viewer, older.removeprefix("/audit"))
    rest = [int(r.attrs["data-entry-id"]) for r in by_test(html, "audit-row")]
    assert rest == [e.id for e in reversed(every)][PAGE_SIZE:]
    assert by_test(html, "audit-older") == [] and one(html, "audit-newest").attrs["href"] == "/audit"


def test_an_edited_entry_shows_broken_at_its_id(site: Site, tenant: str) -> None:
    edited = audit_entries(site.store, tenant)[10]
    with site.store.write() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.id == edited.id).values(detail={"i": -1}))
    chain = one(site.page(site.sign_in(tenant, "viewer")), "audit-chain")
    assert f"broken at entry {edited.id}" in chain.text
    assert chain.attrs["data-broken-at"] == str(edited.id)


def test_long_details_are_cut_short(site: Site, tenant: str) -> None:
    viewer = site.sign_in(tenant, "viewer")
    detail = {"prompt": "p" * 5000, "action": "restart"}
    with site.store.write() as conn:
        audit.append(conn, tenant, "llm", "decision.made", "d-1", detail, 2000.0)
    row = by_test(site.page(viewer), "audit-row")[0]
    assert row.attrs["data-kind"] == "decision.made"
    assert "p" * VALUE_CHARS + "…" in row.text and "p" * (VALUE_CHARS + 1) not in row.text
    assert "restart" in row.text


def test_a_bad_cursor_shows_the_newest_page_with_an_error(site: Site, tenant: str) -> None:
    r = site.http.get("/audit?before=abc", headers=site.sign_in(tenant, "viewer"))
    assert r.status_code == 422
    assert "abc" in one(r.text, "audit-error").text
    assert len(by_test(r.text, "audit-row")) == PAGE_SIZE


def test_not_signed_in_goes_to_login(site: Site, tenant: str) -> None:
    r = site.http.get("/audit?before=5")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/audit")
