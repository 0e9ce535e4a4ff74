"""API key management against the real app on both databases: list, create, use, rotate, revoke,
last use (issue 12, point 2).

What each test proves: the list shows what a person needs and never a secret or its hash; a revoked
key is refused at once; a rotated key and its successor both work during the grace period and the
old one is refused after it (the app's clock is moved, no sleeping); rotating a revoked or expired
key is a conflict; another tenant's key is a 404 for every verb; ``last_used_at`` is written on the
first use, then at most once per minute, and what is left is written at shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from infragent.auth import apikeys
from infragent.config import Settings
from infragent.store import audit, tenants
from infragent.store.records import KeyRecord
from infragent.store.sql import SqlStore
from support.databases import create_client
from support.web import serve_site

EVENT = {"type": "app_down", "service": "web", "severity": "critical", "data": {}}
FIELDS = {
    "key_id",
    "prefix",
    "name",
    "scopes",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked",
    "replaced_by",
}


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    http: httpx.Client
    store: SqlStore
    clock: Clock
    admin_key: str
    client_id: str

    def mint(self, *scopes: str, name: str = "") -> dict[str, Any]:
        r = self.http.post(
            "/api/v1/keys", json={"scopes": list(scopes), "name": name}, headers=auth(self.admin_key)
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def listed(self, key: str | None = None) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/keys", headers=auth(key or self.admin_key))
        assert r.status_code == 200, r.text
        return list(r.json()["keys"])

    def key(self, key_id: str) -> dict[str, Any]:
        return next(k for k in self.listed() if k["key_id"] == key_id)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored(store: SqlStore, key_id: str) -> KeyRecord:
    with store.read() as conn:
        record = tenants.get_key(conn, key_id)
    assert record is not None
    return record


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    clock = Clock()
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=clock())
    with serve_site(store, Settings(key_rotation_grace_s=3600), clock) as site:
        yield Api(site.http, store, clock, reg.api_key, reg.client.id)


def test_the_list_shows_prefix_scopes_and_times_but_never_a_secret(api: Api) -> None:
    minted = api.mint("ingest", "read", name="web-1")
    listed = api.listed()
    assert {k["key_id"] for k in listed} == {api.admin_key.split("_")[1], minted["key_id"]}
    for row in listed:
        assert set(row) == FIELDS  # no api_key, no secret_hash
    row = api.key(minted["key_id"])
    assert row["prefix"] == f"ia_{minted['key_id']}_…"
    assert row["name"] == "web-1" and row["scopes"] == ["ingest", "read"]
    assert row["created_at"] == api.clock.now
    assert row["revoked"] is False and row["expires_at"] is None and row["replaced_by"] is None
    body = api.http.get("/api/v1/keys", headers=auth(api.admin_key)).text
    # the key's own parser: a secret may itself contain "_", and only its whole is a finding
    minted_parts, admin_parts = apikeys.parse(minted["api_key"]), apikeys.parse(api.admin_key)
    assert minted_parts is not None and admin_parts is not None
    assert minted_parts[1] not in body and stored(api.store, minted["key_id"]).secret_hash not in body
    assert admin_parts[1] not in body


def test_listing_needs_admin(api: Api) -> None:
    read = api.mint("read")["api_key"]
    r = api.http.get("/api/v1/keys", headers=auth(read))
    assert r.status_code == 403 and r.json()["required_scope"] == "admin"


def test_create_use_revoke_then_refused(api: Api) -> None:
    key = api.mint("ingest")
    assert api.http.post("/api/v1/events", json=EVENT, headers=auth(key["api_key"])).status_code == 202
    r = api.http.post(f"/api/v1/keys/{key['key_id']}/revoke", headers=auth(api.admin_key))
    assert r.status_code == 200 and r.json() == {"key_id": key["key_id"], "revoked": True}
    r = api.http.post("/api/v1/events", json=EVENT, headers=auth(key["api_key"]))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert api.key(key["key_id"])["revoked"] is True


def test_rotate_keeps_both_during_grace_then_refuses_the_old(api: Api) -> None:
    old = api.mint("ingest", name="web-1")
    assert api.http.post("/api/v1/events", json=EVENT, headers=auth(old["api_key"])).status_code == 202
    r = api.http.post(
        f"/api/v1/keys/{old['key_id']}/rotate", json={"grace_s": 120}, headers=auth(api.admin_key)
    )
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["key_id"] != old["key_id"] and new["replaces"] == old["key_id"]
    assert new["scopes"] == ["ingest"] and new["name"] == "web-1"
    assert new["old_expires_at"] == api.clock.now + 120
    for key in (old["api_key"], new["api_key"]):  # both work during the grace period
        assert api.http.post("/api/v1/events", json=EVENT, headers=auth(key)).status_code == 202
    row = api.key(old["key_id"])
    assert row["replaced_by"] == new["key_id"] and row["expires_at"] == api.clock.now + 120
    api.clock.now += 121
    r = api.http.post("/api/v1/events", json=EVENT, headers=auth(old["api_key"]))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert api.http.post("/api/v1/events", json=EVENT, headers=auth(new["api_key"])).status_code == 202
    # an expired key cannot be rotated again
    r = api.http.post(f"/api/v1/keys/{old['key_id']}/rotate", headers=auth(api.admin_key))
    assert r.status_code == 409 and "expired" in r.json()["detail"]
    with api.store.read() as conn:
        rotated = [e for e in audit.entries(conn, api.client_id) if e.kind == "key.rotated"]
    assert len(rotated) == 1 and rotated[0].subject == old["key_id"]
    assert rotated[0].detail["replaced_by"] == new["key_id"]
    assert new["api_key"] not in str(rotated[0].detail)


def test_rotate_with_no_grace_stops_the_old_key_at_once(api: Api) -> None:
    old = api.mint("read")
    assert api.http.get("/api/v1/keys", headers=auth(old["api_key"])).status_code == 403  # cached now
    r = api.http.post(
        f"/api/v1/keys/{old['key_id']}/rotate", json={"grace_s": 0}, headers=auth(api.admin_key)
    )
    assert r.status_code == 201, r.text
    assert api.http.get("/api/v1/events", headers=auth(old["api_key"])).status_code == 401
    assert api.http.get("/api/v1/events", headers=auth(r.json()["api_key"])).status_code == 200


def test_rotate_without_a_body_uses_the_configured_grace(api: Api) -> None:
    old = api.mint("read")
    r = api.http.post(f"/api/v1/keys/{old['key_id']}/rotate", headers=auth(api.admin_key))
    assert r.status_code == 201, r.text
    assert r.json()["old_expires_at"] == api.clock.now + 3600


def test_rotating_a_revoked_key_is_a_conflict(api: Api) -> None:
    key = api.mint("read")
    api.http.post(f"/api/v1/keys/{key['key_id']}/revoke", headers=auth(api.admin_key))
    r = api.http.post(f"/api/v1/keys/{key['key_id']}/rotate", headers=auth(api.admin_key))
    assert r.status_code == 409 and "revoked" in r.json()["detail"]


def test_a_negative_grace_is_refused(api: Api) -> None:
    key = api.mint("read")
    r = api.http.post(
        f"/api/v1/keys/{key['key_id']}/rotate", json={"grace_s": -1}, headers=auth(api.admin_key)
    )
    assert r.status_code == 422 and "grace_s" in r.json()["detail"]


def test_another_tenants_key_is_404_for_every_verb(api: Api) -> None:
    theirs = create_client(api.store, "b@example.com", "Beta", "http://127.0.0.1:9/hook", now=api.clock())
    their_id = theirs.api_key.split("_")[1]
    assert their_id not in {k["key_id"] for k in api.listed()}
    for verb in ("rotate", "revoke"):
        r = api.http.post(f"/api/v1/keys/{their_id}/{verb}", headers=auth(api.admin_key))
        assert r.status_code == 404, (verb, r.text)
    assert api.http.post("/api/v1/keys/nosuchkey123/rotate", headers=auth(api.admin_key)).status_code == 404
    # their key still works and was not rotated
    assert api.http.get("/api/v1/keys", headers=auth(theirs.api_key)).status_code == 200
    assert stored(api.store, their_id).replaced_by is None


def _poll_last_used(store: SqlStore, key_id: str, expected: float) -> None:
    deadline = time.monotonic() + 5
    while stored(store, key_id).last_used_at != expected:
        assert time.monotonic() < deadline, stored(store, key_id).last_used_at
        time.sleep(0.02)


def test_last_use_is_written_on_first_use_then_at_most_once_a_minute(store: SqlStore) -> None:
    clock = Clock()
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=clock())
    key_id = reg.api_key.split("_")[1]
    with serve_site(store, Settings(), clock) as site:
        http = site.http
        assert stored(store, key_id).last_used_at is None
        t0 = clock.now
        assert http.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        _poll_last_used(store, key_id, t0)  # the first use is flushed at once (by a thread)
        site.svc.keys.settle()
        clock.now = t0 + 10
        assert http.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        assert stored(store, key_id).last_used_at == t0  # noted in memory, no flush started
        clock.now = t0 + 61
        r = http.get("/api/v1/keys", headers=auth(reg.api_key))
        _poll_last_used(store, key_id, t0 + 61)
        assert r.json()["keys"][0]["last_used_at"] in (t0, t0 + 61)  # read while the flush ran
        clock.now = t0 + 70
        assert http.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        assert stored(store, key_id).last_used_at == t0 + 61
    assert stored(store, key_id).last_used_at == t0 + 70  # written at shutdown


def test_a_refused_request_is_not_a_use(store: SqlStore) -> None:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    with serve_site(store) as site:
        http = site.http
        r = http.post("/api/v1/keys", json={"scopes": ["ingest"]}, headers=auth(reg.api_key))
        ingest = r.json()
        assert http.get("/api/v1/events", headers=auth(ingest["api_key"])).status_code == 403
    assert stored(store, ingest["key_id"]).last_used_at is None
