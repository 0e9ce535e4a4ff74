"""Scopes on API keys, against the real server on both databases (issue 10, point 3).

What each test proves: a key without a route's scope is refused with 403 naming that scope (here by
example; every route, role and key is walked from ``app.routes`` by test_authorization_matrix.py);
the registration key is an admin key that can mint narrower keys; a revoked key is refused at once
(the key cache drops it); an e-mail owns one tenant (409); registration is rate-limited per client
IP (429 with ``Retry-After``).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.rpc import status_pb2

from infragent.cli.local_agent import local_credentials
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

EVENT = {"type": "app_down", "service": "web", "severity": "critical", "data": {}}


@dataclass
class Api:
    app: FastAPI
    http: httpx.Client
    store: SqlStore

    def register(self, email: str = "ops@example.com") -> dict[str, Any]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def mint(self, admin_key: str, *scopes: str) -> str:
        r = self.http.post("/api/v1/keys", json={"scopes": list(scopes)}, headers=auth(admin_key))
        assert r.status_code == 201, r.text
        assert r.json()["scopes"] == list(scopes)
        return str(r.json()["api_key"])


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _app(store: SqlStore, **settings: Any) -> FastAPI:
    settings.setdefault("webhook_allowed_networks", ("127.0.0.0/8",))  # tenants' webhooks on this machine
    return create_app(Settings(**settings), store=store)


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    app = _app(store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(app, http, store)


def _native_batch() -> bytes:
    series = SeriesData("system.cpu.utilization", "1", "gauge", False, {}, [1000.0], [0.5])
    return encode_batch(MetricBatch("b-1", "host-1", {"host.name": "host-1"}, [series]))


def _refused(r: httpx.Response, scope: str) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["required_scope"] == scope
    assert scope in r.json()["detail"]


def test_registration_key_is_admin_and_can_do_everything(api: Api) -> None:
    reg = api.register()
    assert reg["scopes"] == ["admin"]
    key = reg["api_key"]
    assert api.http.post("/api/v1/events", json=EVENT, headers=auth(key)).status_code == 202
    assert api.http.get("/api/v1/events", headers=auth(key)).status_code == 200
    assert api.http.post("/api/v1/keys", json={"scopes": ["read"]}, headers=auth(key)).status_code == 201


def test_an_ingest_key_reading_events_is_403_naming_read(api: Api) -> None:
    ingest = api.mint(api.register()["api_key"], "ingest")
    r = api.http.post("/api/v1/events", json=EVENT, headers=auth(ingest))
    assert r.status_code == 202, r.text
    _refused(api.http.get("/api/v1/events", headers=auth(ingest)), "read")
    _refused(api.http.get(f"/api/v1/events/{r.json()['event_id']}", headers=auth(ingest)), "read")
    _refused(api.http.get("/api/v1/hosts", headers=auth(ingest)), "read")
    _refused(api.http.post("/api/v1/keys", json={"scopes": ["ingest"]}, headers=auth(ingest)), "admin")


def test_a_read_key_posting_metrics_is_403_naming_ingest(api: Api) -> None:
    read = api.mint(api.register()["api_key"], "read")
    headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth(read)}
    _refused(api.http.post("/api/v1/metrics", content=_native_batch(), headers=headers), "ingest")
    _refused(api.http.post("/api/v1/events", json=EVENT, headers=auth(read)), "ingest")
    # OTLP answers with its own google.rpc.Status, carrying the same message
    body = gzip.compress(b"{}")
    otlp_headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip", **auth(read)}
    r = api.http.post("/v1/metrics", content=body, headers=otlp_headers)
    assert r.status_code == 403
    status = status_pb2.Status.FromString(r.content)
    assert status.code == 7 and "'ingest'" in status.message  # PERMISSION_DENIED
    assert api.http.get("/api/v1/events", headers=auth(read)).status_code == 200


def test_admin_revokes_a_key_and_its_next_request_is_401(api: Api) -> None:
    admin = api.register()["api_key"]
    ingest = api.mint(admin, "ingest")
    key_id = ingest.split("_")[1]
    assert api.http.post("/api/v1/events", json=EVENT, headers=auth(ingest)).status_code == 202  # cached
    _refused(api.http.post(f"/api/v1/keys/{key_id}/revoke", headers=auth(ingest)), "admin")
    r = api.http.post(f"/api/v1/keys/{key_id}/revoke", headers=auth(admin))
    assert r.status_code == 200 and r.json() == {"key_id": key_id, "revoked": True}
    r = api.http.post("/api/v1/events", json=EVENT, headers=auth(ingest))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert api.http.get("/api/v1/events", headers=auth(admin)).status_code == 200  # the admin key lives on


def test_a_key_of_another_tenant_cannot_be_revoked(api: Api) -> None:
    first, second = api.register("a@example.com")["api_key"], api.register("b@example.com")["api_key"]
    theirs = api.mint(first, "ingest").split("_")[1]
    assert api.http.post(f"/api/v1/keys/{theirs}/revoke", headers=auth(second)).status_code == 404
    assert api.http.post("/api/v1/keys/nosuchkey000/revoke", headers=auth(second)).status_code == 404


@pytest.mark.parametrize("scopes", [[], ["root"], ["ingest", "ingest"]])
def test_a_key_needs_known_scopes(api: Api, scopes: list[str]) -> None:
    admin = api.register()["api_key"]
    r = api.http.post("/api/v1/keys", json={"scopes": scopes}, headers=auth(admin))
    assert r.status_code == 422 and "scopes" in r.json()["detail"]


def test_reregistering_an_email_is_409(api: Api) -> None:
    api.register("ops@example.com")
    body = {"email": "OPS@example.com", "company_name": "Again", "webhook_url": "http://127.0.0.1:9/h"}
    r = api.http.post("/api/v1/clients/register", json=body)
    assert r.status_code == 409 and "already" in r.json()["detail"]
    with api.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM clients").scalar_one() == 1


def test_the_11th_registration_from_one_ip_in_the_window_is_429(store: SqlStore) -> None:
    app = _app(store, registration_rate_limit=10, registration_rate_window_s=3600)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        for i in range(10):
            body = {"email": f"u{i}@example.com", "company_name": "A", "webhook_url": "http://127.0.0.1:9/h"}
            assert http.post("/api/v1/clients/register", json=body).status_code == 201
        body = {"email": "u10@example.com", "company_name": "A", "webhook_url": "http://127.0.0.1:9/h"}
        r = http.post("/api/v1/clients/register", json=body)
    assert r.status_code == 429, r.text
    assert 0 < int(r.headers["retry-after"]) <= 3600
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM clients").scalar_one() == 10


def test_the_local_agent_of_infragent_up_gets_an_ingest_only_key(api: Api, tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path)
    creds = local_credentials(settings, api.store, 1000.0)
    agent = creds["agent_api_key"]
    assert agent != creds["api_key"]
    assert api.http.post("/api/v1/events", json=EVENT, headers=auth(agent)).status_code == 202
    _refused(api.http.get("/api/v1/events", headers=auth(agent)), "read")
    assert api.http.get("/api/v1/events", headers=auth(creds["api_key"])).status_code == 200
    assert local_credentials(settings, api.store, 2000.0) == creds  # kept across restarts
