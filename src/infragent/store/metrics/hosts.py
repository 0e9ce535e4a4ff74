"""The fleet view's table: one ``metric_hosts`` row per (tenant, host), kept current at write time.

``note_batch`` runs in the write transaction of every stored batch (one ``INSERT … ON CONFLICT DO
UPDATE``); ``read_hosts`` is the fleet view's only query (``GET /api/v1/hosts``).

Why a table written at ingest rather than a query over the samples: the fleet view must find, per
host, the newest sample of a few series picked by *label* (CPU ``idle``, memory ``used``, each
mount's filesystem ``used``). Over the samples that means testing the labels of every series of
the tenant (19,000 of a 1,000-host fleet's 33,000) and probing the newest chunk of 4,000, plus a
scan for the host list: measured 45 ms of PostgreSQL time and 65 ms of SQLite's for the label
tests alone, on every page load. Here the batch in hand is looked at once (a few µs of Python for an
agent's 33 series) and the read is 1,000 short rows.

What is kept per host: ``last_seen`` (its newest sample of any series) and, for each fleet value,
the newest sample's time and value. A value only replaces the stored one when it is at least as
new, so a spooled batch delivered late cannot roll the view back. The filesystem value is the
fullest mount *of a batch* (an agent reports all its mounts each tick). Samples more than
``FUTURE_S`` ahead of the server's clock are ignored, as the fleet view ignored them before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from infragent.wire import SeriesData

CPU = "system.cpu.utilization"
MEMORY = "system.memory.utilization"
FILESYSTEM = "system.filesystem.utilization"
#: column prefix -> (metric name, label, value) a series must have to feed it
FLEET: dict[str, tuple[str, str, str]] = {
    "cpu": (CPU, "cpu.mode", "idle"),
    "memory": (MEMORY, "system.memory.state", "used"),
    "filesystem": (FILESYSTEM, "system.filesystem.state", "used"),  # the fullest mount
}
#: Samples stamped further ahead of ``now`` than this are not "seen".
FUTURE_S = 3600.0


def _newer(col: str) -> str:
    return (
        f"excluded.{col} IS NOT NULL AND (metric_hosts.{col} IS NULL OR excluded.{col} >= metric_hosts.{col})"
    )


def _keep_newest(prefix: str) -> str:
    cond = _newer(f"{prefix}_ts")
    return (
        f"{prefix} = CASE WHEN {cond} THEN excluded.{prefix} ELSE metric_hosts.{prefix} END, "
        f"{prefix}_ts = CASE WHEN {cond} THEN excluded.{prefix}_ts ELSE metric_hosts.{prefix}_ts END"
    )


# Portable: SQLite and PostgreSQL both evaluate SET against the old row and know ``excluded``.
_SET = ", ".join(_keep_newest(p) for p in FLEET)
_UPSERT = f"""
INSERT INTO metric_hosts
    (client_id, host, last_seen, cpu_ts, cpu, memory_ts, memory, filesystem_ts, filesystem)
VALUES (:client_id, :host, :last_seen, :cpu_ts, :cpu, :memory_ts, :memory, :filesystem_ts, :filesystem)
ON CONFLICT (client_id, host) DO UPDATE SET
    last_seen = CASE WHEN excluded.last_seen > metric_hosts.last_seen
                     THEN excluded.last_seen ELSE metric_hosts.last_seen END,
    {_SET}
"""  # noqa: S608 - built from constants only
_READ = (
    "SELECT host, last_seen, cpu_ts, cpu, memory_ts, memory, filesystem_ts, filesystem "
    "FROM metric_hosts WHERE client_id = :client_id"
)
# psycopg's placeholders (``exec_driver_sql`` hands the SQL to the driver as is)
_PG_UPSERT = re.sub(r":(\w+)", r"%(\1)s", _UPSERT)
_PG_READ = re.sub(r":(\w+)", r"%(\1)s", _READ)
_COLUMNS = ("last_seen", "cpu_ts", "cpu", "memory_ts", "memory", "filesystem_ts", "filesystem")


def pg_cte(claim: str) -> str:
    """``note_batch`` as the body of a data-modifying CTE, for a PostgreSQL statement that claims the
    batch in a CTE named ``claim`` (``pg._CLAIM_AND_INSERT``): it writes only if the claim
    did. Its parameters are ``note_params``'s.
    """
    values = ", ".join(f"%({c})s::float8" for c in _COLUMNS)
    head, _, tail = _PG_UPSERT.partition("VALUES (")
    _, _, conflict = tail.partition(")\n")
    where = f"WHERE %(last_seen)s::float8 IS NOT NULL AND EXISTS (SELECT FROM {claim})"
    return f"{head}SELECT %(client_id)s, %(host)s, {values} {where}\n{conflict}"


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host's row: its newest sample time and each fleet value as ``(ts, value)`` or ``None``."""

    host: str
    last_seen: float
    cpu: tuple[float, float] | None
    memory: tuple[float, float] | None
    filesystem: tuple[float, float] | None


def summarize(series: Sequence[SeriesData], now: float) -> dict[str, float | None] | None:
    """``note_batch``'s parameters for one batch of one host (``None``: nothing to note)."""
    limit = now + FUTURE_S
    last_seen: float | None = None
    out: dict[str, float | None] = {}
    for s in series:
        if not s.timestamps:
            continue
        newest = max(s.timestamps)
        if newest > limit:
            kept = [t for t in s.timestamps if t <= limit]
            if not kept:
                continue
            newest = max(kept)
        last_seen = newest if last_seen is None else max(last_seen, newest)
        for prefix, (name, key, value) in FLEET.items():
            if s.name != name or s.attributes.get(key) != value:
                continue
            # the value at the newest time (the last one sent, on a tie)
            at = max(i for i, t in enumerate(s.timestamps) if t == newest)
            prev_ts = out.get(f"{prefix}_ts")
            v = s.values[at]
            if prev_ts is None or newest > prev_ts:
                out[f"{prefix}_ts"], out[prefix] = newest, v
            elif prefix == "filesystem" and newest == prev_ts:
                cur = out[prefix]
                out[prefix] = v if cur is None else max(cur, v)
    if last_seen is None:
        return None
    return {"last_seen": last_seen} | {k: out.get(k) for p in FLEET for k in (f"{p}_ts", p)}


def note_batch(
    conn: sa.Connection,
    *,
    postgres: bool,
    client_id: str,
    host: str,
    series: Sequence[SeriesData],
    now: float,
) -> None:
    """Fold one stored batch into its host's row: one statement, in the caller's write transaction.

    ``postgres`` picks the placeholder style (the statement itself is the same on both databases).
    Call it only for a batch actually stored (not for a duplicate).
    """
    params = note_params(client_id, host, series, now)
    if params["last_seen"] is not None:
        conn.exec_driver_sql(_PG_UPSERT if postgres else _UPSERT, params)


def note_params(client_id: str, host: str, series: Sequence[SeriesData], now: float) -> dict[str, object]:
    """The parameters of ``note_batch``'s statement (and of ``pg_cte``): ``last_seen`` is ``None``
    when the batch holds no sample to note."""
    summary = summarize(series, now) or dict.fromkeys(_COLUMNS)
    return {**summary, "client_id": client_id, "host": host}


def read_hosts(conn: sa.Connection, client_id: str) -> list[HostRow]:
    """The tenant's hosts, in no particular order."""
    sql = _PG_READ if conn.dialect.name == "postgresql" else _READ
    rows = conn.exec_driver_sql(sql, {"client_id": client_id}).all()
    return [
        HostRow(
            str(h),
            float(seen),
            None if cpu_ts is None else (float(cpu_ts), float(cpu)),
            None if mem_ts is None else (float(mem_ts), float(mem)),
            None if fs_ts is None else (float(fs_ts), float(fs)),
        )
        for h, seen, cpu_ts, cpu, mem_ts, mem, fs_ts, fs in rows
    ]


def backfill(conn: sa.Connection) -> int:
    """Rows for the hosts already stored (migration 0005): each series' newest chunk, folded as a
    one-point batch per series. Returns the number of hosts."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        sql = (
            "SELECT s.client_id, s.host, s.name, s.labels, n.end_ts, n.vlast FROM metric_series s "
            "CROSS JOIN LATERAL (SELECT end_ts, vlast FROM metric_chunks c WHERE c.series_id = s.id "
            "ORDER BY c.start_ts DESC LIMIT 1) n"
        )
    else:
        sql = (
            "SELECT s.client_id, s.host, s.name, s.labels, c.end_ts, c.vlast FROM metric_series s "
            "JOIN metric_chunks c ON c.rowid = (SELECT p.rowid FROM metric_chunks p "
            "WHERE p.series_id = s.id ORDER BY p.start_ts DESC LIMIT 1)"
        )
    hosts: dict[tuple[str, str], list[SeriesData]] = {}
    for client_id, host, name, labels, end_ts, vlast in conn.exec_driver_sql(sql).all():
        attrs: dict[str, str] = labels if isinstance(labels, dict) else orjson.loads(labels)  # SQLite: text
        item = SeriesData(name, "", "gauge", False, attrs, [float(end_ts)], [float(vlast)])
        hosts.setdefault((str(client_id), str(host)), []).append(item)
    for (client_id, host), series in hosts.items():
        newest = max(s.timestamps[0] for s in series)
        note_batch(conn, postgres=postgres, client_id=client_id, host=host, series=series, now=newest)
    return len(hosts)
