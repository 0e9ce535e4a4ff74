"""The database stops while the server runs: every route that needs it answers 503 with ``Retry-After``.

Why a real stop: the failure to answer is what SQLAlchemy and psycopg raise when PostgreSQL really
goes away (pooled connections broken, new ones refused), which a mock would only imitate. The
cluster is the test's own (``support.pg_cluster``), on its own port, so stopping it disturbs no
other test. The events route used to answer an unhandled 500 here while metrics ingest answered 503;
now one map (``server/errors.py``) answers both, and every other route, the same way. Readiness
follows the database down and up again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.pg_cluster import PgCluster, throwaway_postgres
from support.servers import serve

pytestmark = pytest.mark.postgres

STORAGE_DOWN = {"detail": "storage is busy or unavailable; retry later"}
EVENT = {"type": "app_down", "service": "web", "severity": "critical", "data": {}, "node_id": "host-1/web"}
AGENT = {"node_id": "host-1/web", "kind": "sdk", "command_mode": "pull", "actions": [], "labels": {}}


@dataclass
class Running:
    pg: PgCluster
    http: httpx.Client

    def register(self, email: str) -> dict[str, str]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['api_key']}"}


@pytest.fixture
def running() -> Iterator[Running]:
    with throwaway_postgres() as pg:
        app = create_app(Settings(database_url=pg.url, webhook_allowed_networks=("127.0.0.0/8",)))
        with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            yield Running(pg, http)


def _native_body() -> bytes:
    series = SeriesData("system.cpu.utilization", "1", "gauge", False, {"cpu": "0"}, [1000.0], [0.5])
    return encode_batch(MetricBatch("b-1", "host-1", {}, [series]))


def _otlp_body() -> bytes:
    point = {"timeUnixNano": "1700000000000000000", "asDouble": 21.5}
    metric = {"name": "temperature", "unit": "Cel", "gauge": {"dataPoints": [point]}}
    resource = {"attributes": [{"key": "host.name", "value": {"stringValue": "h"}}]}
    return orjson.dumps(
        {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [metric]}]}]}
    )


def _every_route(http: httpx.Client, auth: dict[str, str], event_id: str) -> dict[str, httpx.Response]:
    """One request to every route that reads or writes the database, by name."""
    native = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
    otlp = {"content-type": "application/json", **auth}
    metric = {"host": "host-1", "metric": "system.cpu.utilization", "from": 0, "to": 2000}
    return {
        "register": http.post(
            "/api/v1/clients/register",
            json={"email": "late@example.com", "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/h"},
        ),
        "report event": http.post("/api/v1/events", json=EVENT, headers=auth),
        "list events": http.get("/api/v1/events", headers=auth),
        "event detail": http.get(f"/api/v1/events/{event_id}", headers=auth),
        "register agent": http.post("/api/v1/agents", json=AGENT, headers=auth),
        "poll commands": http.get("/api/v1/agents/host-1/commands", params={"wait": 0}, headers=auth),
        "command result": http.post("/api/v1/commands/c-1/result", json={"status": "ok"}, headers=auth),
        "query range": http.get("/api/v1/query_range", params=metric, headers=auth),
        "hosts": http.get("/api/v1/hosts", headers=auth),
        "series": http.get("/api/v1/series", headers=auth),
        "native ingest": http.post("/api/v1/metrics", content=_native_body(), headers=native),
        "otlp ingest": http.post("/v1/metrics", content=_otlp_body(), headers=otlp),
    }


def _assert_all_503(answers: dict[str, httpx.Response]) -> None:
    got = {name: (r.status_code, r.headers.get("retry-after")) for name, r in answers.items()}
    assert got == dict.fromkeys(answers, (503, "1")), {n: r.text for n, r in answers.items()}
    for name, r in answers.items():
        body = r.json()
        if name == "otlp ingest":  # a google.rpc.Status, code 14 (UNAVAILABLE)
            assert body == {"code": 14, "message": STORAGE_DOWN["detail"]}, name
        else:
            assert body == STORAGE_DOWN, name  # no SQL, no driver message, no traceback


def test_every_route_answers_503_while_the_database_is_down_and_recovers(running: Running) -> None:
    http = running.http
    cached = running.register("ops@example.com")
    r = http.post("/api/v1/events", json=EVENT, headers=cached)  # its key is now in the key cache
    assert r.status_code == 202, r.text
    event_id = r.json()["event_id"]
    uncached = running.register("other@example.com")  # a key never used: checking it needs the database
    assert http.get("/health/ready").status_code == 200

    running.pg.stop()
    _assert_all_503(_every_route(http, cached, event_id))
    _assert_all_503({k: v for k, v in _every_route(http, uncached, event_id).items() if k != "register"})
    ready = http.get("/health/ready")
    assert (ready.status_code, ready.json()["status"]) == (503, "not ready")
    assert http.get("/health").status_code == 503
    assert http.get("/metrics").status_code == 200  # the counters still arrive

    running.pg.start()
    assert http.get("/health/ready").status_code == 200
    r = http.post("/api/v1/events", json=EVENT, headers=cached)
    assert r.status_code == 202, r.text
    assert http.get(f"/api/v1/events/{r.json()['event_id']}", headers=uncached).status_code == 404
    assert http.get(f"/api/v1/events/{event_id}", headers=cached).json()["status"] == "pending"
