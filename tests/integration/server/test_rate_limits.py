"""Rate limits against the real server under uvicorn (issue 12, point 2): per key, per signed-in
user, per client IP on failed authentication and on registration; counters in memory or in the real
Redis at 127.0.0.1:6379; a Redis that is down lets requests through (fail open) and says so in the log.

Each test talks from its own loopback address (``127.x.y.z``, httpx's ``local_address``), so
counters kept in the shared Redis never meet another test's, and keys are fresh per test.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from infragent.config import Settings
from infragent.errors import ConfigError
from infragent.server.app import create_app
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client, sqlite_url
from support.servers import closed_port, serve
from support.web import sign_in

REDIS_URL = "redis://127.0.0.1:6379/0"
EVENT = {"type": "app_down", "service": "web", "severity": "critical", "data": {}}
REGISTER = {"company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"}


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """Rate limits do not depend on the database: one SQLite store is enough."""
    s = open_store(sqlite_url(tmp_path))
    yield s
    s.close()


@pytest.fixture
def redis_up() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"these tests need Redis at {REDIS_URL}: {exc}")
    finally:
        client.close()


def address() -> str:
    """A loopback address of this test's own."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


@contextmanager
def server(store: SqlStore, **settings: Any) -> Iterator[tuple[str, FastAPI]]:
    settings.setdefault("webhook_allowed_networks", ("127.0.0.0/8",))
    app = create_app(Settings(**settings), store=store)
    with serve(app) as base:
        yield base, app


@contextmanager
def client(base: str, source: str) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base, transport=transport, timeout=10) as http:
        yield http


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _retry_after(r: httpx.Response, window_s: int) -> int:
    assert r.status_code == 429, r.text
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= window_s
    assert str(wait) in r.json()["detail"]
    return wait


def test_a_key_past_its_limit_gets_429_with_retry_after_and_other_keys_do_not(
    sqlite_store: SqlStore,
) -> None:
    reg = create_client(sqlite_store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    with (
        server(sqlite_store, api_rate_limit_per_key=3, api_rate_window_s=60) as (base, _),
        client(base, address()) as http,
    ):
        other = http.post("/api/v1/keys", json={"scopes": ["read"]}, headers=auth(reg.api_key))
        assert other.status_code == 201  # the admin key's first request
        for _ in range(2):
            assert http.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        r = http.get("/api/v1/keys", headers=auth(reg.api_key))
        _retry_after(r, 60)
        assert "API key" in r.json()["detail"]
        assert http.get("/api/v1/events", headers=auth(other.json()["api_key"])).status_code == 200


def test_a_signed_in_user_is_limited_per_user(sqlite_store: SqlStore) -> None:
    reg = create_client(sqlite_store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    with (
        server(sqlite_store, api_rate_limit_per_key=2, api_rate_window_s=30) as (base, app),
        client(base, address()) as http,
    ):
        sign_in(app, reg.client.id, "viewer", http)
        assert http.get("/api/v1/events").status_code == 200
        assert http.get("/api/v1/events").status_code == 200
        r = http.get("/api/v1/events")
        _retry_after(r, 30)
        assert "user" in r.json()["detail"]
        http.cookies.clear()
        assert http.get("/api/v1/events", headers=auth(reg.api_key)).status_code == 200  # keys apart


def test_failed_authentication_is_limited_per_address_even_for_a_good_key_after(
    sqlite_store: SqlStore,
) -> None:
    reg = create_client(sqlite_store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    bad = "ia_aaaaaaaaaaaa_" + "x" * 43
    with server(sqlite_store, api_rate_limit_per_ip=3, api_rate_window_s=60) as (base, _):
        with client(base, address()) as guesser:
            for headers in (auth(bad), {}, auth("not-a-key")):
                assert guesser.get("/api/v1/events", headers=headers).status_code == 401
            r = guesser.get("/api/v1/events", headers=auth(bad))
            _retry_after(r, 60)
            assert "failed authentications" in r.json()["detail"]
            # blocked: even the right key is refused from this address until the window frees a slot
            _retry_after(guesser.get("/api/v1/events", headers=auth(reg.api_key)), 60)
            # health and the scrape page stay open
            assert guesser.get("/health").status_code == 200
            assert guesser.get("/metrics").status_code == 200
        with client(base, address()) as someone_else:
            assert someone_else.get("/api/v1/events", headers=auth(reg.api_key)).status_code == 200


def test_health_and_metrics_are_never_limited(sqlite_store: SqlStore) -> None:
    with (
        server(sqlite_store, api_rate_limit_per_ip=1, api_rate_limit_per_key=1) as (base, _),
        client(base, address()) as http,
    ):
        for _ in range(5):
            assert http.get("/health").status_code == 200
            assert http.get("/metrics").status_code == 200


def test_registration_is_limited_per_address(sqlite_store: SqlStore) -> None:
    with server(sqlite_store, registration_rate_limit=2) as (base, _):
        with client(base, address()) as http:
            for i in range(2):
                r = http.post("/api/v1/clients/register", json={"email": f"a{i}@example.com", **REGISTER})
                assert r.status_code == 201, r.text
            r = http.post("/api/v1/clients/register", json={"email": "a9@example.com", **REGISTER})
            _retry_after(r, 3600)
        with client(base, address()) as other:
            r = other.post("/api/v1/clients/register", json={"email": "b@example.com", **REGISTER})
            assert r.status_code == 201


def test_redis_counts_are_shared_by_two_servers(sqlite_store: SqlStore, redis_up: None) -> None:
    reg = create_client(sqlite_store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    limits: dict[str, Any] = {"rate_limit_storage": REDIS_URL, "api_rate_limit_per_key": 3}
    source = address()
    with (
        server(sqlite_store, **limits) as (base_a, _),
        server(sqlite_store, **limits) as (base_b, _),
        client(base_a, source) as a,
        client(base_b, source) as b,
    ):
        assert a.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        assert a.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        assert b.get("/api/v1/keys", headers=auth(reg.api_key)).status_code == 200
        _retry_after(b.get("/api/v1/keys", headers=auth(reg.api_key)), 60)
        _retry_after(a.get("/api/v1/keys", headers=auth(reg.api_key)), 60)


def test_redis_limits_failed_authentication_and_registration(sqlite_store: SqlStore, redis_up: None) -> None:
    settings: dict[str, Any] = {
        "rate_limit_storage": REDIS_URL,
        "api_rate_limit_per_ip": 2,
        "registration_rate_limit": 1,
    }
    with server(sqlite_store, **settings) as (base, _), client(base, address()) as http:
        r = http.post("/api/v1/clients/register", json={"email": "r@example.com", **REGISTER})
        assert r.status_code == 201, r.text
        r = http.post("/api/v1/clients/register", json={"email": "s@example.com", **REGISTER})
        _retry_after(r, 3600)
        assert http.get("/api/v1/events").status_code == 401
        assert http.get("/api/v1/events").status_code == 401
        _retry_after(http.get("/api/v1/events"), 60)


def test_a_redis_that_is_down_lets_requests_through_and_warns(
    sqlite_store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    reg = create_client(sqlite_store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0)
    settings: dict[str, Any] = {
        "rate_limit_storage": f"redis://127.0.0.1:{closed_port()}/0",
        "api_rate_limit_per_key": 1,
        "api_rate_limit_per_ip": 1,
        "registration_rate_limit": 1,
    }
    caplog.set_level(logging.WARNING, logger="infragent.server.ratelimit")
    with server(sqlite_store, **settings) as (base, _), client(base, address()) as http:
        for _ in range(3):
            assert http.get("/api/v1/events", headers=auth(reg.api_key)).status_code == 200
            assert http.get("/api/v1/events").status_code == 401  # never turned into 429
        for i in range(2):
            r = http.post("/api/v1/clients/register", json={"email": f"d{i}@example.com", **REGISTER})
            assert r.status_code == 201, r.text
    warnings = [r.getMessage() for r in caplog.records if "storage unavailable" in r.getMessage()]
    assert warnings, caplog.text
    assert len(warnings) <= 3  # once per limit and minute, not once per request


def test_a_storage_url_that_cannot_be_used_stops_the_server_at_start(sqlite_store: SqlStore) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(Settings(rate_limit_storage="nosuch://x"), store=sqlite_store)
    assert caught.value.key == "rate_limit_storage"
