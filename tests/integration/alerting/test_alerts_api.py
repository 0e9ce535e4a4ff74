"""The evaluator in the real server: a metric batch over a threshold, posted to the ingest route,
shows as a firing alert on ``GET /api/v1/alerts`` with its incident, in-process and (PostgreSQL)
with ingest worker processes, whose batches the HTTP process decodes once more for the evaluator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

RULE = {
    "alert": "Busy",
    "kind": "threshold",
    "metric": "cpu.busy",
    "function": "last",
    "window": "1m",
    "by": ["host"],
    "op": ">",
    "value": 0.9,
    "severity": "critical",
}


@contextmanager
def _server(store: SqlStore, **settings: Any) -> Iterator[httpx.Client]:
    app = create_app(
        Settings(webhook_allowed_networks=("127.0.0.0/8",), rule_tick_s=0.1, **settings), store=store
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield http


def _register(http: httpx.Client) -> dict[str, str]:
    r = http.post(
        "/api/v1/clients/register",
        json={
            "email": f"{uuid.uuid4().hex[:8]}@example.com",
            "company_name": "Acme",
            "webhook_url": "http://127.0.0.1:9/h",
        },
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['api_key']}"}


def _native(http: httpx.Client, auth: dict[str, str], value: float) -> None:
    now = time.time()
    series = [SeriesData("cpu.busy", "1", "gauge", False, {"core": "0"}, [now], [value])]
    body = encode_batch(MetricBatch(str(uuid.uuid4()), "web-1", {}, series))
    headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
    assert http.post("/api/v1/metrics", content=body, headers=headers).status_code == 200


def _otlp(http: httpx.Client, auth: dict[str, str], value: float) -> None:
    """The same sample as OTLP/JSON (``host.name`` becomes the host)."""
    point = {
        "attributes": [{"key": "core", "value": {"stringValue": "0"}}],
        "timeUnixNano": str(time.time_ns()),
        "asDouble": value,
    }
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "web-1"}}]},
                "scopeMetrics": [
                    {"metrics": [{"name": "cpu.busy", "unit": "1", "gauge": {"dataPoints": [point]}}]}
                ],
            }
        ]
    }
    r = http.post("/v1/metrics", json=doc, headers=auth)
    assert r.status_code == 200, r.text


Send = Callable[[httpx.Client, dict[str, str], float], None]


def _until(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return got


def _busy(http: httpx.Client, auth: dict[str, str], status: str) -> list[dict[str, Any]]:
    r = http.get("/api/v1/alerts", headers=auth, params={"status": status})
    assert r.status_code == 200, r.text
    return [a for a in r.json() if a["rule"] == "Busy"]


def _fires_and_opens_an_incident(http: httpx.Client, send: Send) -> None:
    auth = _register(http)
    assert http.post("/api/v1/rules", json=RULE, headers=auth).status_code == 201
    # the evaluator takes the tenant on its tick; batches sent before that are read back from the store
    send(http, auth, 0.95)
    (alert,) = _until(lambda: (send(http, auth, 0.95), _busy(http, auth, "firing"))[1])
    assert alert["labels"] == {"host": "web-1", "alertname": "Busy"}
    assert alert["value"] == pytest.approx(0.95)
    assert alert["since"] == alert["firing_since"]
    assert alert["incident_id"]
    r = http.get(f"/api/v1/incidents/{alert['incident_id']}", headers=auth)
    assert r.status_code == 200, r.text
    other = _register(http)
    assert _busy(http, other, "firing") == []  # another tenant sees none of it
    send(http, auth, 0.1)
    _until(lambda: (send(http, auth, 0.1), not _busy(http, auth, "firing"))[1])
    (resolved,) = _busy(http, auth, "inactive")
    assert resolved["resolved_at"] is not None
    scrape = http.get("/metrics").text
    assert _sample(scrape, 'infragent_alert_transitions_total{to="firing"}') >= 1
    assert _sample(scrape, "infragent_rule_leases_held") >= 1
    assert _sample(scrape, "infragent_alert_transition_latency_seconds_count") >= 1


def _sample(scrape: str, name: str) -> float:
    (line,) = [x for x in scrape.splitlines() if x.startswith(name + " ")]
    return float(line.split()[-1])


@pytest.mark.parametrize("send", [_native, _otlp], ids=["native", "otlp"])
def test_a_batch_over_the_threshold_fires_and_opens_an_incident(store: SqlStore, send: Send) -> None:
    with _server(store) as http:
        _fires_and_opens_an_incident(http, send)


@pytest.mark.postgres
@pytest.mark.parametrize("send", [_native, _otlp], ids=["native", "otlp"])
def test_with_ingest_workers_the_http_process_evaluates_what_they_stored(store: SqlStore, send: Send) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("ingest workers are used on PostgreSQL only")
    with _server(store, ingest_processes=1) as http:
        _fires_and_opens_an_incident(http, send)


def test_alerts_need_the_read_scope_and_a_key(store: SqlStore) -> None:
    with _server(store) as http:
        assert http.get("/api/v1/alerts").status_code == 401
        auth = _register(http)
        r = http.get("/api/v1/alerts", headers=auth, params={"status": "bogus"})
        assert r.status_code == 422
