"""Compaction throughput and bytes per sample before/after, on PostgreSQL and SQLite.

Loads ``bench/datagen.py``'s data (a third counters, 2-decimal percentages, 6-decimal random values;
60-point batches of 10-second ticks, one host's 100 series a batch) through ``write_batch``, then
runs ``compact`` until it finds nothing, and prints points/s and payload bytes per sample (the
``data`` column) before and after, plus PostgreSQL's whole-table footprint after a VACUUM.

    .venv/bin/python bench/compaction.py --hours 6 --hosts 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from datagen import Dataset, decode_native

from infragent.auth.registration import register_client
from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.compaction import CompactionResult, compact
from infragent.store.sql import open_store

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def payload(metrics: SqlMetricStore) -> tuple[int, int, int]:
    """(points, chunks, bytes of ``data``)."""
    with metrics.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT coalesce(sum(n), 0), count(*), coalesce(sum(length(data)), 0) FROM metric_chunks"
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def footprint(metrics: SqlMetricStore) -> int:
    """Bytes on disk of the chunk table with its indexes (PostgreSQL: every partition, after VACUUM)."""
    if metrics.is_postgres:
        with metrics.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM metric_chunks")
            size = conn.exec_driver_sql(
                "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('metric_chunks')"
            ).scalar_one()
        return int(size or 0)
    raw = metrics.engine.raw_connection()  # VACUUM cannot run in the BEGIN the engine issues
    try:
        raw.execute("VACUUM")  # type: ignore[attr-defined]
        pages = raw.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
        size = raw.execute("PRAGMA page_size").fetchone()[0]  # type: ignore[attr-defined]
    finally:
        raw.close()
    return int(pages) * int(size)


def run(url: str, ds: Dataset, hours: int, label: str) -> None:
    store = open_store(url)
    metrics = SqlMetricStore(store.engine)
    client = register_client(
        store, "bench@example.com", "Bench", "http://127.0.0.1:9/hook", now=ds.t0
    ).client.id
    batches = hours * 3600 // int(ds.points * ds.step_s) * ds.hosts
    now = ds.t0 + ds.span_s(batches) + 3600
    t = time.perf_counter()
    for i in range(batches):
        metrics.write_batch(client, decode_native(ds.native(i)), now=now)
    load_s = time.perf_counter() - t
    points, chunks, data_before = payload(metrics)
    disk_before = footprint(metrics)

    total = CompactionResult()
    t = time.perf_counter()
    while (step := compact(metrics, now, delay_s=0)).did_work:
        total = total + step
    wall = time.perf_counter() - t
    after_points, after_chunks, data_after = payload(metrics)
    disk_after = footprint(metrics)
    assert after_points == points == total.points, (after_points, points, total.points)
    print(
        f"{label}: {points:,} points in {chunks:,} chunks (loaded in {load_s:.1f} s) "
        f"-> {after_chunks:,} chunks; "
        f"compaction {wall:.2f} s = {points / wall:,.0f} points/s; "
        f"data {data_before / points:.2f} -> {data_after / points:.2f} B/sample "
        f"({data_before / data_after:.1f}x); "
        f"table+indexes {disk_before / points:.2f} -> {disk_after / points:.2f} B/sample"
    )
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--series-per-host", type=int, default=100)
    ap.add_argument("--only", choices=["postgres", "sqlite"])
    args = ap.parse_args()
    ds = Dataset(hosts=args.hosts, series_per_host=args.series_per_host)
    print(f"{ds.series:,} series, {args.hours} h of 10 s ticks in 60-point batches")
    if args.only != "sqlite":
        schema = "bench_" + uuid.uuid4().hex[:10]
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
        try:
            run(f"{PG_DSN}?options=-csearch_path%3D{schema}", ds, args.hours, "PostgreSQL")
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as c:
                c.execute(f'DROP SCHEMA "{schema}" CASCADE')
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", ds, args.hours, "SQLite")


if __name__ == "__main__":
    main()
