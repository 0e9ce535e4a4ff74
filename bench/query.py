"""Read-API latency: ``GET /api/v1/query_range`` (24 h of one series) and ``GET /api/v1/hosts`` (1,000 hosts).

Usage::

    .venv/bin/python bench/query.py                 # PostgreSQL 127.0.0.1:5432/test, a fresh schema
    .venv/bin/python bench/query.py --db sqlite     # a temp SQLite file
    .venv/bin/python bench/query.py --series-batch-points 60   # the 24 h series in 10-minute batches

What it does: starts a real ``python -m infragent server`` subprocess on port 0
(``INFRAGENT_DATABASE_URL``), registers a tenant over HTTP, then writes the data *directly* through
``SqlMetricStore.write_batch`` (ingest is not what is measured here, and it is faster):

* one series (``system.cpu.utilization`` ``cpu.mode=user`` on ``bench-series``): 24 h at 10 s,
  8,640 points ending now, ``--series-batch-points`` points per batch. The default, 1, is what an
  agent sends (one batch per 10-second tick), so one stored chunk per sample: the worst case for reads.
* ``--hosts`` hosts (1,000) with the agent's usual families (CPU per mode, memory usage and
  utilization per state, filesystem usage and utilization per mount and state, load averages:
  33 series a host) at ``--ticks`` timestamps 10 s apart, one batch per host and tick.

Once closed hours exist, production compacts them (one dense chunk per series-hour), so after
loading the bench runs ``infragent.store.metrics.compaction.compact`` until it has nothing left to do, if
that module exists (``--no-compact`` skips it: the worst case of tick-sized raw chunks). The fleet
view reads ``metric_hosts`` (``store/metrics/hosts.py``), which the write path keeps; if it noted nothing
(not wired yet), the bench fills it as migration 0005 does for existing data. Then ``ANALYZE`` on
PostgreSQL, as autovacuum would have by the time anyone looks. It prints which of these ran.

Then it measures over HTTP (one keep-alive client, sequential, after a warm-up) p50/p95 of
(a) the 24 h range at ``step=10`` (the server answers 1-minute rollups at a 120 s step: at most
1,000 points) and (b) the fleet view. Targets: (a) p95 <= 20 ms, (b) p95 <= 100 ms. It prints a
table and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from ports import announced_port

from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.hosts import backfill
from infragent.store.sql import open_store
from infragent.wire import MetricBatch, SeriesData

PG_DSN = os.environ.get("INFRAGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SERIES_HOST = "bench-series"
CPU_MODES = ("user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice")
MEM_STATES = ("used", "free", "buffered", "cached", "slab_reclaimable")
MOUNTS = ("/", "/data")
FS_STATES = ("used", "free", "reserved")


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A database URL for one run: a fresh PostgreSQL schema (dropped after) or a temp SQLite file."""
    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="bench-query-db-"))
        try:
            yield f"sqlite:///{tmp / 'infragent.db'}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in PG_DSN else "?"
        yield f"{PG_DSN}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def server(url: str) -> Iterator[str]:
    """``python -m infragent server`` on port 0; yields its base URL, stops it (SIGTERM) after."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-query-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")},
        "INFRAGENT_DATABASE_URL": url,
        "INFRAGENT_DATA_DIR": str(tmp),
        "INFRAGENT_PORT": "0",
        "INFRAGENT_LOG_LEVEL": "warning",
        "INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the tenant's (unused) webhook is local
    }
    log = (tmp / "server.log").open("wb")
    cmd = [sys.executable, "-m", "infragent", "server"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{announced_port(proc, tmp / 'server.log')}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(tmp / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def gauge(name: str, unit: str, labels: dict[str, str], ts: float, value: float) -> SeriesData:
    return SeriesData(name, unit, "gauge", False, labels, [ts], [value])


def host_series(i: int, ts: float) -> list[SeriesData]:
    """One tick of the agent's usual families for host ``i``; values vary by host and time."""
    k = (i * 7919 + int(ts)) % 1000 / 1000
    out = [gauge("system.cpu.utilization", "1", {"cpu.mode": m}, ts, k / 8) for m in CPU_MODES]
    for j, state in enumerate(MEM_STATES):
        out.append(gauge("system.memory.usage", "By", {"system.memory.state": state}, ts, 1e9 * (j + k)))
        out.append(gauge("system.memory.utilization", "1", {"system.memory.state": state}, ts, k / 5))
    for mount in MOUNTS:
        for state in FS_STATES:
            labels = {"system.device": "/dev/sda1", "system.filesystem.mountpoint": mount}
            labels |= {"system.filesystem.type": "ext4", "system.filesystem.state": state}
            out.append(gauge("system.filesystem.usage", "By", labels, ts, 1e10 * k))
            out.append(gauge("system.filesystem.utilization", "1", labels, ts, k / 3))
    for period in ("1m", "5m", "15m"):
        out.append(gauge(f"system.cpu.load_average.{period}", "1", {}, ts, 4 * k))
    return out


def settle(metrics: SqlMetricStore, now: float, *, compaction: bool) -> str:
    """Compact closed hours (when asked and ``store/metrics/compaction.py`` exists), fill ``metric_hosts`` if
    the write path did not, ANALYZE on PostgreSQL; says what ran."""
    done = "compaction: skipped (--no-compact)"
    if compaction:
        try:
            from infragent.store.metrics.compaction import compact
        except ImportError:
            done = "compaction: not available (no infragent.store.metrics.compaction)"
        else:
            t = time.perf_counter()
            chunks = 0
            while (result := compact(metrics, now)).chunks_in:
                chunks += result.chunks_in
            done = f"compaction: ran, {chunks:,} chunks rewritten in {time.perf_counter() - t:.1f} s"
    with metrics.engine.begin() as conn:
        noted = int(conn.exec_driver_sql("SELECT count(*) FROM metric_hosts").scalar_one())
        if noted:
            done += f"; metric_hosts: {noted:,} rows noted by the write path"
        else:  # the write path does not call hosts.note_batch yet: what migration 0005 does instead
            done += f"; metric_hosts: backfilled {backfill(conn):,} rows (the write path noted none)"
    if metrics.is_postgres:
        with metrics.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE metric_series")
            conn.exec_driver_sql("ANALYZE metric_chunks")
            conn.commit()
        done += "; ANALYZE"
    return done


def load(url: str, client_id: str, now: float, args: argparse.Namespace) -> None:
    store = open_store(url)
    try:
        metrics = SqlMetricStore(store.engine)
        t0 = time.perf_counter()
        start = now - 8640 * 10.0
        labels = {"cpu.mode": "user"}
        for b, first in enumerate(range(0, 8640, args.series_batch_points)):
            idx = range(first, min(8640, first + args.series_batch_points))
            series = SeriesData(
                "system.cpu.utilization",
                "1",
                "gauge",
                False,
                labels,
                [start + 10.0 * (j + 1) for j in idx],
                [round((j * 37 % 1000) / 1000, 3) for j in idx],
            )
            metrics.write_batch(client_id, MetricBatch(f"s-{b}", SERIES_HOST, {}, [series]), now)
        t1 = time.perf_counter()
        for tick in range(args.ticks):
            ts = now - 10.0 * (args.ticks - tick)
            for i in range(args.hosts):
                host = f"host-{i:04d}"
                batch = MetricBatch(f"{host}-{tick}", host, {"host.name": host}, host_series(i, ts))
                metrics.write_batch(client_id, batch, now)
        t2 = time.perf_counter()
        print(
            f"loaded: 8,640-point series in {t1 - t0:.1f} s; {args.hosts} hosts x {args.ticks} ticks "
            f"x {len(host_series(0, now))} series in {t2 - t1:.1f} s",
            flush=True,
        )
        print(settle(metrics, now, compaction=args.compact), flush=True)
    finally:
        store.close()


def measure(call: Callable[[], httpx.Response], n: int, warmup: int = 10) -> tuple[list[float], int]:
    """Latencies in ms of ``n`` sequential calls (after ``warmup``), and the last body's size."""
    size = 0
    for _ in range(warmup):
        call().raise_for_status()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = call()
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        size = len(r.content)
    return sorted(out), size


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=("pg", "sqlite"), default="pg")
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--series-batch-points", type=int, default=1, help="points per batch of the 24 h series")
    ap.add_argument("--no-compact", dest="compact", action="store_false", help="keep the raw chunks")
    args = ap.parse_args()
    with database(args.db) as url, server(url) as base, httpx.Client(base_url=base, timeout=30) as http:
        r = http.post(
            "/api/v1/clients/register",
            json={
                "email": "bench@example.com",
                "company_name": "Bench",
                "webhook_url": "http://127.0.0.1:9/h",
            },
        )
        r.raise_for_status()
        client_id, auth = r.json()["client_id"], {"Authorization": f"Bearer {r.json()['api_key']}"}
        now = time.time()
        load(url, client_id, now, args)

        q: dict[str, str | float] = {
            "host": SERIES_HOST,
            "metric": "system.cpu.utilization",
            "labels": "cpu.mode=user",
        }
        q |= {"from": now - 86_400, "to": now, "step": 10}
        body = http.get("/api/v1/query_range", params=q, headers=auth).json()
        points = len(body["series"][0]["points"])
        fleet = http.get("/api/v1/hosts", headers=auth).json()["hosts"]
        online = sum(h["status"] == "online" for h in fleet)

        cases = [
            (
                f"(a) 24 h range, step 10 s -> {body['source']} {body['step']:g} s, {points} points",
                lambda: http.get("/api/v1/query_range", params=q, headers=auth),
                20.0,
            ),
            (
                f"(b) fleet view, {len(fleet)} hosts ({online} online)",
                lambda: http.get("/api/v1/hosts", headers=auth),
                100.0,
            ),
        ]
        print(
            f"\ndb={args.db} requests={args.requests} series_batch_points={args.series_batch_points} "
            f"compact={args.compact}"
        )
        print(f"{'case':<58} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8} {'target':>8}")
        for name, call, target in cases:
            lat, size = measure(call, args.requests)
            p95 = pct(lat, 0.95)
            verdict = "ok" if p95 <= target else "MISSED"
            print(
                f"{name:<58} {pct(lat, 0.5):8.1f} {p95:8.1f} {lat[-1]:8.1f} {size:8d} "
                f"{'<=' + format(target, 'g'):>6} {verdict}"
            )


if __name__ == "__main__":
    main()
