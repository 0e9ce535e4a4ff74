"""The ``/audit`` page against the real server: the chain's verdict (verified, then broken at the
edited entry), the rows newest first with paging, long details cut short, and who may see it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from infragent.server.web.pages.audit import PAGE_SIZE, VALUE_CHARS
from infragent.store import audit
from infragent.store.schema import audit_log
from infragent.store.sql import SqlStore
from support.databases import audit_entries, create_client
from support.dom import by_test, one
from support.web import Site


def page(site: Site, headers: dict[str, str], query: str = "") -> str:
    r = site.http.get(f"/audit{query}", headers=headers)
    assert r.status_code == 200, r.text
    return r.text


def viewer_of(site: Site, tenant: str) -> dict[str, str]:
    """A new viewer of ``tenant``: the cookie header its browser sends."""
    return site.person(tenant, "viewer").cookie_only


@pytest.fixture
def tenant(store: SqlStore) -> str:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/h", now=time.time())
    with store.write() as conn:
        for i in range(PAGE_SIZE + 5):
            audit.append(conn, reg.client.id, "key:k1", "test.step", f"s-{i}", {"i": i}, 1000.0 + i)
    return reg.client.id


def test_a_viewer_sees_the_verified_chain_and_pages_back(site: Site, tenant: str) -> None:
    viewer = viewer_of(site, tenant)
    every = audit_entries(site.store, tenant)
    html = page(site, viewer)
    chain = one(html, "audit-chain")
    assert "verified" in chain.text and f"{len(every)} entries" in chain.text
    rows = by_test(html, "audit-row")
    assert [int(r.attrs["data-entry-id"]) for r in rows] == [e.id for e in reversed(every)][:PAGE_SIZE]
    older = one(html, "audit-older").attrs["href"]
    html = page(site, viewer, older.removeprefix("/audit"))
    rest = [int(r.attrs["data-entry-id"]) for r in by_test(html, "audit-row")]
    assert rest == [e.id for e in reversed(every)][PAGE_SIZE:]
    assert by_test(html, "audit-older") == [] and one(html, "audit-newest").attrs["href"] == "/audit"


def test_an_edited_entry_shows_broken_at_its_id(site: Site, tenant: str) -> None:
    edited = audit_entries(site.store, tenant)[10]
    with site.store.write() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.id == edited.id).values(detail={"i": -1}))
    chain = one(page(site, viewer_of(site, tenant)), "audit-chain")
    assert f"broken at entry {edited.id}" in chain.text
    assert chain.attrs["data-broken-at"] == str(edited.id)


def test_long_details_are_cut_short(site: Site, tenant: str) -> None:
    viewer = viewer_of(site, tenant)
    detail = {"prompt": "p" * 5000, "action": "restart"}
    with site.store.write() as conn:
        audit.append(conn, tenant, "llm", "decision.made", "d-1", detail, 2000.0)
    row = by_test(page(site, viewer), "audit-row")[0]
    assert row.attrs["data-kind"] == "decision.made"
    assert "p" * VALUE_CHARS + "…" in row.text and "p" * (VALUE_CHARS + 1) not in row.text
    assert "restart" in row.text


def test_a_bad_cursor_shows_the_newest_page_with_an_error(site: Site, tenant: str) -> None:
    r = site.http.get("/audit?before=abc", headers=viewer_of(site, tenant))
    assert r.status_code == 422
    assert "abc" in one(r.text, "audit-error").text
    assert len(by_test(r.text, "audit-row")) == PAGE_SIZE


def test_not_signed_in_goes_to_login(site: Site, tenant: str) -> None:
    r = site.http.get("/audit?before=5")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/audit")
