"""``GET /api/v1/audit`` against the real server on both databases: pages newest first, the verdict
of the hash chain over the whole log (an edited entry is named), one tenant's log only, refused
input answered 422.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from infragent.auth.registration import mint_key
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store import audit
from infragent.store.schema import audit_log
from infragent.store.sql import SqlStore
from support.databases import audit_entries, create_client
from support.servers import serve


@dataclass
class Api:
    http: httpx.Client
    store: SqlStore

    def tenant(self, email: str, entries: int) -> tuple[str, dict[str, str]]:
        """A tenant with ``entries`` more audit entries; (client id, a read key's headers)."""
        reg = create_client(self.store, email, "Acme", "http://127.0.0.1:9/h", now=time.time())
        key = mint_key(self.store, reg.client.id, ["read"], time.time(), actor="test").plaintext
        with self.store.write() as conn:
            for i in range(entries):
                audit.append(conn, reg.client.id, "test", "test.step", f"s-{i}", {"i": i}, 1000.0 + i)
        return reg.client.id, {"Authorization": f"Bearer {key}"}

    def get(self, headers: dict[str, str], **params: Any) -> dict[str, Any]:
        r = self.http.get("/api/v1/audit", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    with serve(create_app(Settings(), store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(http, store)


def test_pages_newest_first_to_the_end(api: Api) -> None:
    client_id, headers = api.tenant("a@example.com", 7)
    every = audit_entries(api.store, client_id)
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        body = api.get(headers, **params)
        assert body["chain"] == {"verified": True, "entries": len(every), "broken_at": None}
        seen += [e["id"] for e in body["entries"]]
        if body["next_before"] is None:
            break
        params["before"] = body["next_before"]
    assert seen == [e.id for e in reversed(every)]
    newest = api.get(headers, limit=1)["entries"][0]
    assert newest == {
        "id": every[-1].id,
        "at": 1006.0,
        "actor": "test",
        "kind": "test.step",
        "subject": "s-6",
        "detail": {"i": 6},
    }


def test_an_edited_entry_breaks_the_chain_at_its_id(api: Api) -> None:
    client_id, headers = api.tenant("a@example.com", 5)
    _, other_headers = api.tenant("b@example.com", 2)
    every = audit_entries(api.store, client_id)
    edited = every[3]
    with api.store.write() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.id == edited.id).values(actor="someone else"))
    body = api.get(headers, limit=2)
    assert body["chain"] == {"verified": False, "entries": len(every), "broken_at": edited.id}
    assert [e["actor"] for e in body["entries"]] == ["test", "test"]
    # another tenant's chain is its own, and still holds
    assert api.get(other_headers)["chain"]["verified"] is True


def test_a_tenant_reads_only_its_own_log(api: Api) -> None:
    _, a_headers = api.tenant("a@example.com", 3)
    b_id, _ = api.tenant("b@example.com", 3)
    b_entries = {e.id for e in audit_entries(api.store, b_id)}
    body = api.get(a_headers, limit=500)
    assert body["entries"] and not {e["id"] for e in body["entries"]} & b_entries
    # a cursor taken from the other tenant's ids pages through the caller's own entries only
    assert all(e["id"] not in b_entries for e in api.get(a_headers, before=max(b_entries) + 1)["entries"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"before": 0}, {"before": "x"}])
def test_bad_paging_is_422(api: Api, params: dict[str, Any]) -> None:
    _, headers = api.tenant("a@example.com", 1)
    r = api.http.get("/api/v1/audit", params=params, headers=headers)
    assert r.status_code == 422
    assert next(iter(params)) in r.json()["detail"]


def test_an_ingest_key_is_refused(api: Api) -> None:
    client_id, _ = api.tenant("a@example.com", 1)
    ingest = mint_key(api.store, client_id, ["ingest"], time.time(), actor="test").plaintext
    r = api.http.get("/api/v1/audit", headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 403 and r.json()["required_scope"] == "read"
