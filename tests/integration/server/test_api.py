from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from support.servers import serve

MAX_BODY = 64 * 1024
GOOD_EVENT = {"type": "app_down", "service": "web", "severity": "critical", "data": {"url": "http://x"}}


@dataclass
class Api:
    http: httpx.Client
    store: SqlStore

    def register(self, email: str = "ops@example.com") -> dict[str, Any]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def auth(self, reg: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {reg['api_key']}"}


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    app = create_app(
        Settings(webhook_allowed_networks=("127.0.0.0/8",), max_body_bytes=MAX_BODY), store=store
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(http, store)


def _event_count(api: Api) -> int:
    with api.store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())


def test_register_then_report_then_read(api: Api) -> None:
    reg = api.register()
    assert reg["api_key"].startswith("ia_") and reg["webhook_secret"].startswith("whsec_")
    r = api.http.post("/api/v1/events", json=GOOD_EVENT, headers=api.auth(reg))
    assert r.status_code == 202 and r.json()["status"] == "received"
    event_id = r.json()["event_id"]
    pending = api.http.get("/api/v1/events", params={"status": "pending"}, headers=api.auth(reg)).json()
    assert [e["id"] for e in pending] == [event_id]
    assert api.http.get("/api/v1/events", params={"status": "processed"}, headers=api.auth(reg)).json() == []
    detail = api.http.get(f"/api/v1/events/{event_id}", headers=api.auth(reg)).json()
    assert detail["status"] == "pending" and detail["decision"] is None
    assert [a["kind"] for a in detail["audit"]] == ["event.received"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service": "web", "severity": "critical"}, "type: Field required"),
        ({"type": "app_down", "severity": "critical"}, "service: Field required"),
        ({**GOOD_EVENT, "severity": "fatal"}, "severity: Input should be 'info', 'warning' or 'critical'"),
        ({**GOOD_EVENT, "data": [1, 2]}, "data: Input should be a valid dictionary"),
        ({**GOOD_EVENT, "type": 42}, "type: Input should be a valid string"),
        ({**GOOD_EVENT, "type": ""}, "type: String should have at least 1 character"),
        ({**GOOD_EVENT, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_event_bodies_say_what_is_wrong(api: Api, body: dict[str, Any], field: str) -> None:
    reg = api.register()
    r = api.http.post("/api/v1/events", json=body, headers=api.auth(reg))
    assert r.status_code == 422
    assert field in r.json()["detail"]
    assert _event_count(api) == 0


def test_malformed_json_is_rejected(api: Api) -> None:
    reg = api.register()
    headers = {**api.auth(reg), "content-type": "application/json"}
    r = api.http.post("/api/v1/events", content=b'{"type": "app_down",', headers=headers)
    assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]
    assert _event_count(api) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"company_name": "A", "webhook_url": "http://h/x"}, "email: Field required"),
        ({"email": "not-an-email", "company_name": "A", "webhook_url": "http://h/x"}, "email: Value error"),
        ({"email": "a@b.co", "company_name": "A", "webhook_url": "ftp://h/x"}, "webhook_url: URL scheme"),
        ({"email": "a@b.co", "company_name": "", "webhook_url": "http://h/x"}, "company_name: String should"),
    ],
)
def test_bad_registration(api: Api, body: dict[str, Any], field: str) -> None:
    r = api.http.post("/api/v1/clients/register", json=body)
    assert r.status_code == 422 and field in r.json()["detail"]
    with api.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM clients").scalar_one() == 0


def test_oversized_body_is_413_declared_or_streamed(api: Api) -> None:
    reg = api.register()
    big = {**GOOD_EVENT, "data": {"blob": "x" * (MAX_BODY + 1)}}
    r = api.http.post("/api/v1/events", json=big, headers=api.auth(reg))
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"type": "app_down", "service": "web", "severity": "info", "data": {"blob": "'
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"y" * 1024
        yield b'"}}'

    headers = {**api.auth(reg), "content-type": "application/json"}
    r = api.http.post("/api/v1/events", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert _event_count(api) == 0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not-a-key",
        "Bearer ia_aaaaaaaaaaaa_" + "A" * 43,
    ],
)
def test_missing_or_wrong_key_is_401(api: Api, header: str | None) -> None:
    api.register()
    headers = {"Authorization": header} if header else {}
    r = api.http.post("/api/v1/events", json=GOOD_EVENT, headers=headers)
    assert r.status_code == 401 and r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert api.http.get("/api/v1/events", headers=headers).status_code == 401
    assert _event_count(api) == 0


def test_right_key_id_wrong_secret_is_401(api: Api) -> None:
    reg = api.register()
    key_id = reg["api_key"].split("_")[1]
    forged = f"ia_{key_id}_" + "B" * 43
    r = api.http.post("/api/v1/events", json=GOOD_EVENT, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_a_second_client_cannot_read_the_firsts_events(api: Api) -> None:
    first, second = api.register("a@example.com"), api.register("b@example.com")
    event_id = api.http.post("/api/v1/events", json=GOOD_EVENT, headers=api.auth(first)).json()["event_id"]
    r = api.http.get(f"/api/v1/events/{event_id}", headers=api.auth(second))
    missing = api.http.get("/api/v1/events/does-not-exist", headers=api.auth(second))
    assert r.status_code == 404 == missing.status_code
    assert api.http.get("/api/v1/events", headers=api.auth(second)).json() == []


def test_query_parameters_are_validated(api: Api) -> None:
    reg = api.register()
    r = api.http.get("/api/v1/events", params={"status": "done"}, headers=api.auth(reg))
    assert r.status_code == 422 and "status" in r.json()["detail"]
    assert api.http.get("/api/v1/events", params={"limit": 0}, headers=api.auth(reg)).status_code == 422


def test_agent_registration_validates_patterns(api: Api) -> None:
    reg = api.register()
    ok = {"node_id": "h/web", "actions": [{"name": "restart", "params": {"name": "[a-z]+"}}]}
    assert api.http.post("/api/v1/agents", json=ok, headers=api.auth(reg)).json()["actions"] == ["restart"]
    bad = {"node_id": "h/web", "actions": [{"name": "restart", "params": {"name": "[a-z"}}]}
    r = api.http.post("/api/v1/agents", json=bad, headers=api.auth(reg))
    assert r.status_code == 422 and "invalid regex" in r.json()["detail"]


def test_health_and_openapi(api: Api) -> None:
    assert api.http.get("/health/live").json() == {"status": "alive"}
    assert api.http.get("/health/ready").status_code == 200
    health = api.http.get("/health").json()
    assert health["status"] == "healthy" and health["checks"]["database"]["ok"] is True
    paths = api.http.get("/openapi.json").json()["paths"]
    assert {"/api/v1/events", "/api/v1/clients/register", "/api/v1/events/{event_id}"} <= set(paths)
    assert api.http.get("/docs").status_code == 200
