"""The read API over HTTP on both databases: data goes in through ``POST /api/v1/metrics`` and is read
back through ``/api/v1/query_range``, ``/api/v1/hosts`` and ``/api/v1/series``.

Why aggregates are checked against a recomputation from the samples sent, not against stored
rollups: the API promises the value of ``agg`` over each bucket's samples, whatever source it read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from infragent.config import Settings
from infragent.query.plan import MAX_POINTS, plan
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

NOW = 1_764_000_000.0  # the server's clock
DAY0 = NOW - 86_400.0  # 24 h of 10-second samples end at NOW
CPU = "system.cpu.utilization"
MEMORY = "system.memory.utilization"
FS = "system.filesystem.utilization"
AGGS = ("avg", "min", "max", "last", "count", "sum")


def _series(name: str, labels: dict[str, str], ts: list[float], values: list[float]) -> SeriesData:
    return SeriesData(name, "1", "gauge", False, labels, ts, values)


@dataclass
class Api:
    http: httpx.Client

    def register(self, email: str = "ops@example.com") -> dict[str, str]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['api_key']}"}

    def send(self, auth: dict[str, str], batch_id: str, host: str, series: list[SeriesData]) -> None:
        body = encode_batch(MetricBatch(batch_id, host, {"host.name": host}, series))
        headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
        r = self.http.post("/api/v1/metrics", content=body, headers=headers)
        assert r.status_code == 200, r.text

    def get(self, path: str, auth: dict[str, str], **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=auth)


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    app = create_app(Settings(webhook_allowed_networks=("127.0.0.0/8",)), store=store, clock=lambda: NOW)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(http)


@pytest.fixture
def day(api: Api) -> tuple[dict[str, str], np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    """24 h at 10 s of two CPU modes on host-1, sent as 24 hourly batches (as a spool would)."""
    auth = api.register()
    ts = DAY0 + 10.0 * np.arange(8640)
    rng = np.random.default_rng(7)
    values = {"user": np.round(rng.random(8640), 4), "idle": np.round(rng.random(8640), 4)}
    for h in range(24):
        part = slice(h * 360, (h + 1) * 360)
        api.send(
            auth,
            f"day-{h}",
            "host-1",
            [_series(CPU, {"cpu.mode": m}, ts[part].tolist(), v[part].tolist()) for m, v in values.items()],
        )
    return auth, ts, values


def _expected(
    ts: np.ndarray[Any, Any],
    v: np.ndarray[Any, Any],
    lo: float,
    hi: float,
    step: float,
    rollup: float,
    agg: str,
) -> list[list[float]]:
    """Recompute from the samples: raw keeps ``lo <= t <= hi``; a rollup source keeps samples whose
    rollup bucket starts in ``[lo, hi]``."""
    if rollup:
        bucket = np.floor(ts / rollup) * rollup
        keep = (bucket >= lo) & (bucket <= hi)
    else:
        keep = (ts >= lo) & (ts <= hi)
    groups: dict[float, list[float]] = {}
    for t, x in zip(ts[keep].tolist(), v[keep].tolist(), strict=True):
        groups.setdefault(math.floor(t / step) * step, []).append(x)
    fn = {"avg": np.mean, "min": min, "max": max, "last": lambda g: g[-1], "count": len, "sum": sum}[agg]
    return [[b, float(fn(g))] for b, g in sorted(groups.items())]  # type: ignore[operator]


def _same(got: list[list[float]], want: list[list[float]]) -> bool:
    """Same bucket starts exactly, same values up to float summation order."""
    return [t for t, _ in got] == [t for t, _ in want] and [v for _, v in got] == pytest.approx(
        [v for _, v in want], rel=1e-12
    )


def _points(r: httpx.Response) -> list[list[float]]:
    assert r.status_code == 200, r.text
    [series] = r.json()["series"]
    return list(series["points"])


def test_plan_picks_the_source_and_caps_the_points() -> None:
    assert plan(3600, 10) == ("raw", 10)
    assert plan(86_400, 10) == ("1m", 120.0)  # 8,640 points would be too many
    assert plan(86_400, 90) == ("1m", 120.0)  # whole minutes: 1-minute rollups merge exactly
    assert plan(30 * 86_400, 60) == ("1m", 2640.0)
    assert plan(30 * 86_400, 3600) == ("1h", 3600.0)
    assert plan(400 * 86_400, 3600) == ("1h", 36_000.0)
    for span in (1.0, 999.0, 59_940.0, 86_400.0, 7 * 86_400.0, 400 * 86_400.0):
        _, step = plan(span, 1.0)
        assert span / step + 2 <= MAX_POINTS + 1


def test_raw_source_returns_the_samples_and_aggregates_them(api: Api, day: Any) -> None:
    auth, ts, values = day
    lo, hi = DAY0 + 3600, DAY0 + 3600 + 1800
    q = {"host": "host-1", "metric": CPU, "labels": "cpu.mode=user", "from": lo, "to": hi}
    r = api.get("/api/v1/query_range", auth, **q, step=10)
    assert r.json()["source"] == "raw" and r.json()["step"] == 10
    keep = (ts >= lo) & (ts <= hi)
    assert _points(r) == [
        [t, x] for t, x in zip(ts[keep].tolist(), values["user"][keep].tolist(), strict=True)
    ]
    for agg in AGGS:
        got = _points(api.get("/api/v1/query_range", auth, **q, step=50, agg=agg))
        assert _same(got, _expected(ts, values["user"], lo, hi, 50, 0, agg)), agg


@pytest.mark.parametrize(("step", "source", "rollup"), [(10, "1m", 60.0), (3600, "1h", 3600.0)])
def test_rollup_sources_stay_under_the_point_cap_and_aggregate_exactly(
    api: Api, day: Any, step: int, source: str, rollup: float
) -> None:
    auth, ts, values = day
    lo, hi = DAY0, NOW
    for agg in AGGS:
        q = {"host": "host-1", "metric": CPU, "labels": '{"cpu.mode": "idle"}', "from": lo, "to": hi}
        r = api.get("/api/v1/query_range", auth, **q, step=step, agg=agg)
        body = r.json()
        assert (body["source"], body["step"]) == (source, 120.0 if step == 10 else 3600.0)
        got = _points(r)
        assert 0 < len(got) <= MAX_POINTS
        assert _same(got, _expected(ts, values["idle"], lo, hi, body["step"], rollup, agg)), agg


def test_labels_match_as_a_subset(api: Api, day: Any) -> None:
    auth, _, _ = day
    q = {"host": "host-1", "metric": CPU, "from": NOW - 600, "to": NOW, "step": 60}
    modes = [s["labels"] for s in api.get("/api/v1/query_range", auth, **q).json()["series"]]
    assert sorted(m["cpu.mode"] for m in modes) == ["idle", "user"]
    assert len(api.get("/api/v1/query_range", auth, **q, labels="cpu.mode=idle").json()["series"]) == 1
    assert api.get("/api/v1/query_range", auth, **q, labels="cpu.mode=steal").json()["series"] == []


def _fleet_batch(
    host: str, at: float, idle: float, used: float, mounts: dict[str, float]
) -> list[SeriesData]:
    out = [
        _series(CPU, {"cpu.mode": "idle"}, [at], [idle]),
        _series(CPU, {"cpu.mode": "user"}, [at], [1 - idle]),
        _series(MEMORY, {"system.memory.state": "used"}, [at], [used]),
        _series(MEMORY, {"system.memory.state": "free"}, [at], [1 - used]),
    ]
    for mount, fill in mounts.items():
        base = {"system.filesystem.mountpoint": mount, "system.device": "/dev/sda"}
        out.append(_series(FS, {**base, "system.filesystem.state": "used"}, [at], [fill]))
        out.append(_series(FS, {**base, "system.filesystem.state": "free"}, [at], [1 - fill]))
    return out


def test_hosts_view_shows_status_and_latest_utilization(api: Api) -> None:
    auth = api.register()
    api.send(auth, "a-old", "host-a", _fleet_batch("host-a", NOW - 300, 0.9, 0.2, {"/": 0.1}))
    api.send(auth, "a-new", "host-a", _fleet_batch("host-a", NOW - 30, 0.75, 0.5, {"/": 0.3, "/data": 0.9}))
    api.send(auth, "b", "host-b", _fleet_batch("host-b", NOW - 1000, 0.5, 0.25, {}))
    api.send(auth, "c", "host-c", _fleet_batch("host-c", NOW - 3 * 86_400, 0.5, 0.25, {"/": 0.5}))
    r = api.get("/api/v1/hosts", auth)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "interval": 60.0,
        "hosts": [
            {
                "host": "host-a",
                "last_seen": NOW - 30,
                "status": "online",
                "cpu_utilization": 0.25,
                "memory_utilization": 0.5,
                "filesystem_utilization": 0.9,
            },
            {
                "host": "host-b",
                "last_seen": NOW - 1000,
                "status": "offline",
                "cpu_utilization": 0.5,
                "memory_utilization": 0.25,
                "filesystem_utilization": None,
            },
            {  # nothing in the last 24 h: listed, but unknown
                "host": "host-c",
                "last_seen": None,
                "status": "offline",
                "cpu_utilization": None,
                "memory_utilization": None,
                "filesystem_utilization": None,
            },
        ],
    }
    slow = api.get("/api/v1/hosts", auth, interval=600).json()["hosts"]
    assert [h["status"] for h in slow] == ["online", "online", "offline"]


def test_series_listing_filters_by_host_and_metric(api: Api) -> None:
    auth = api.register()
    api.send(auth, "a", "host-a", _fleet_batch("host-a", NOW, 0.5, 0.5, {"/": 0.5}))
    api.send(auth, "b", "host-b", _fleet_batch("host-b", NOW, 0.5, 0.5, {}))
    everything = api.get("/api/v1/series", auth).json()["series"]
    assert len(everything) == 6 + 4
    mem = api.get("/api/v1/series", auth, host="host-b", metric=MEMORY).json()["series"]
    assert sorted(mem, key=lambda s: str(s["labels"])) == [
        {"host": "host-b", "name": MEMORY, "unit": "1", "kind": "gauge", "monotonic": False, "labels": labels}
        for labels in ({"system.memory.state": "free"}, {"system.memory.state": "used"})
    ]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"from": 2000, "to": 1000}, "from"),
        ({"step": 0}, "step"),
        ({"step": -5}, "step"),
        ({"step": "abc"}, "step"),
        ({"agg": "median"}, "agg"),
        ({"from": 0, "to": 401 * 86_400}, "from"),
        ({"labels": "cpu.mode"}, "labels"),
        ({"labels": "{not json"}, "labels"),
        ({"host": None}, "host"),
        ({"to": "nan"}, "to"),
    ],
)
def test_bad_parameters_answer_422_naming_the_parameter(api: Api, params: dict[str, Any], param: str) -> None:
    auth = api.register()
    q = {"host": "host-1", "metric": CPU, "from": 1000, "to": 2000, "step": 10, **params}
    r = api.get("/api/v1/query_range", auth, **{k: v for k, v in q.items() if v is not None})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["query", param]]
    assert param in r.json()["detail"]


def test_another_tenant_sees_nothing(api: Api, day: Any) -> None:
    auth_a, _, _ = day
    auth_b = api.register("b@example.com")
    q = {"host": "host-1", "metric": CPU, "from": DAY0, "to": NOW, "step": 60}
    assert len(api.get("/api/v1/query_range", auth_a, **q).json()["series"]) == 2
    assert api.get("/api/v1/query_range", auth_b, **q).json()["series"] == []
    assert api.get("/api/v1/hosts", auth_b).json()["hosts"] == []
    assert api.get("/api/v1/series", auth_b).json()["series"] == []
    assert api.get("/api/v1/hosts", {}).status_code == 401


def test_minute_rollups_of_tick_sized_batches_are_exact(api: Api) -> None:
    """An agent sends a batch per tick: chunks of 1 to 3 points, some inside one minute (their
    stored summary is used), some across a minute boundary (decoded)."""
    auth = api.register()
    ts = NOW - 1200 + 10.0 * np.arange(120)
    values = np.round(np.random.default_rng(3).random(120), 3)
    first, b = 0, 0
    while first < len(ts):
        size = (1, 3, 2)[b % 3]
        part = slice(first, first + size)
        api.send(
            auth,
            f"t-{b}",
            "host-1",
            [_series(CPU, {"cpu.mode": "user"}, ts[part].tolist(), values[part].tolist())],
        )
        first, b = first + size, b + 1
    lo, hi = NOW - 1200 + 15, NOW - 5
    for agg in AGGS:
        q = {"host": "host-1", "metric": CPU, "from": lo, "to": hi, "step": 60, "agg": agg}
        r = api.get("/api/v1/query_range", auth, **q)
        assert r.json()["source"] == "1m"
        assert _same(_points(r), _expected(ts, values, lo, hi, 60, 60.0, agg)), agg


def test_more_series_than_the_limit_is_422_on_labels(api: Api) -> None:
    auth = api.register()
    many = [_series(CPU, {"cpu": str(i), "cpu.mode": "user"}, [NOW - 10], [0.5]) for i in range(101)]
    api.send(auth, "many", "host-1", many)
    q = {"host": "host-1", "metric": CPU, "from": NOW - 60, "to": NOW, "step": 10}
    r = api.get("/api/v1/query_range", auth, **q)
    assert r.status_code == 422 and [e["loc"] for e in r.json()["errors"]] == [["query", "labels"]]
    assert "101 series match" in r.json()["detail"]
    assert len(api.get("/api/v1/query_range", auth, **q, labels="cpu=7").json()["series"]) == 1


def test_interleaved_batches_read_back_in_time_order(api: Api) -> None:
    """Batches that overlap in time (a spool replaying while new ticks arrive) and repeat a time:
    points come back by time, a repeated time in the order its chunks started."""
    auth = api.register()
    a = [NOW - 100.0, NOW - 80.0, NOW - 60.0]
    b = [NOW - 90.0, NOW - 80.0, NOW - 70.0]
    api.send(auth, "b", "host-1", [_series(CPU, {"cpu.mode": "user"}, b, [2.0, 2.5, 3.0])])
    api.send(auth, "a", "host-1", [_series(CPU, {"cpu.mode": "user"}, a, [1.0, 1.5, 4.0])])
    q = {"host": "host-1", "metric": CPU, "from": NOW - 100, "to": NOW, "step": 1, "agg": "last"}
    assert _points(api.get("/api/v1/query_range", auth, **q)) == [
        [NOW - 100, 1.0],
        [NOW - 90, 2.0],
        [NOW - 80, 2.5],  # batch a's chunk starts first, so b's sample is the later one
        [NOW - 70, 3.0],
        [NOW - 60, 4.0],
    ]
    values = np.array([1.0, 1.5, 4.0, 2.0, 2.5, 3.0])
    minute = _points(api.get("/api/v1/query_range", auth, **{**q, "step": 60}))
    assert minute == _expected(np.array(a + b), values, NOW - 100, NOW, 60, 60.0, "last")
