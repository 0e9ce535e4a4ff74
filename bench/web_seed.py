"""The dashboard benchmark's data: a tenant, signed-in users, a 1,000-host fleet and one host's week.

Written straight into the database the server will open (before it starts), through the store's own
functions, so the rows are exactly what ingest and the API write:

* the tenant (``register_client``: admin key, default rule pack) and ``users`` viewers, each with a
  session made by the real ``SessionService`` — its signing key lives in the database (``server_kv``),
  so the server subprocess accepts the cookies. Several users, not one: the live stream caps
  connections per user (``stream_max_connections``), and 100 browsers are 100 people.
* ``hosts`` hosts, each an agent row (``register_agent`` with an allowlist, as an agent's
  registration writes) and one tick of an agent's series through ``write_batch`` (which keeps the
  ``metric_hosts`` row the hosts page reads). One host in ten last reported two hours ago (offline).
* one host (``HOST``) with ``days`` of the agent's chart series at 10 s, written through
  ``write_batch`` one hour a batch, then compacted as the server's maintenance does (closed hours
  older than 10 minutes), so the 24 h and 7 d ranges read hourly summaries and the last hour raw chunks.

Series are the agent's (``agent/collectors``): CPU by mode, memory and filesystem by state, disk and
network I/O counters by direction, load averages — 37 per host.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from infragent.auth.registration import register_client
from infragent.config import Settings
from infragent.model import ActionSpec
from infragent.server.sessions import SessionService
from infragent.store import users
from infragent.store.agents import register_agent
from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.compaction import CompactionResult, compact
from infragent.store.sql import open_store
from infragent.wire import MetricBatch, SeriesData

F64 = npt.NDArray[np.float64]
STEP_S = 10.0
HOUR_POINTS = 360
#: The host whose page is measured and whose stream is watched.
HOST = "host-0042"
CPU_MODES = ("user", "system", "idle", "iowait", "nice", "irq", "softirq", "steal")
MEMORY_STATES = ("used", "free", "cached", "buffers")
MOUNTS = (("/", "/dev/sda1"), ("/var", "/dev/sda2"))
FS_STATES = ("used", "free", "reserved")
ACTIONS = (
    ActionSpec("restart_service", {"service": r"^(nginx|postgresql|redis)$"}, "Restart a systemd unit"),
    ActionSpec("clear_tmp", {}, "Remove files older than a day from /tmp"),
)


@dataclass(frozen=True)
class Seeded:
    client_id: str
    api_key: str
    #: session cookie values, one per user
    cookies: list[str]
    hosts: int
    host_points: int
    seconds: dict[str, float]


def host_name(i: int) -> str:
    return f"host-{i:04d}"


def series_values(ts: F64, seed: int) -> list[tuple[str, str, str, bool, dict[str, str], F64]]:
    """(name, unit, kind, monotonic, attributes, values) of every agent series at times ``ts``."""
    rng = np.random.default_rng(seed)
    n = len(ts)
    day = 2 * np.pi * ts / 86400
    busy = np.clip(0.25 + 0.15 * np.sin(day + seed) + rng.normal(0, 0.03, n), 0.01, 0.95)
    share = {"user": 0.6, "system": 0.25, "iowait": 0.08, "nice": 0.02, "irq": 0.01, "softirq": 0.03}
    out: list[tuple[str, str, str, bool, dict[str, str], F64]] = []
    for mode in CPU_MODES:
        v = 1 - busy if mode == "idle" else busy * share.get(mode, 0.01)
        out.append(("system.cpu.utilization", "1", "gauge", False, {"cpu.mode": mode}, np.round(v, 4)))
    used = np.clip(0.55 + 0.1 * np.sin(day / 3 + seed) + rng.normal(0, 0.01, n), 0.05, 0.98)
    mem = {"used": used, "cached": (1 - used) * 0.6, "buffers": (1 - used) * 0.05, "free": (1 - used) * 0.35}
    for state in MEMORY_STATES:
        out.append(
            ("system.memory.utilization", "1", "gauge", False, {"system.memory.state": state}, mem[state])
        )
        out.append(
            ("system.memory.usage", "By", "gauge", False, {"system.memory.state": state}, mem[state] * 16e9)
        )
    for k, (mount, device) in enumerate(MOUNTS):
        fill = np.clip(0.4 + 0.2 * k + (ts - ts[0]) / 86400 * 0.01, 0, 0.99)
        fs = {"used": fill, "free": (1 - fill) * 0.95, "reserved": (1 - fill) * 0.05}
        for state in FS_STATES:
            attrs = {
                "system.device": device,
                "system.filesystem.mountpoint": mount,
                "system.filesystem.type": "ext4",
                "system.filesystem.mode": "rw",
                "system.filesystem.state": state,
            }
            out.append(("system.filesystem.utilization", "1", "gauge", False, attrs, np.round(fs[state], 5)))
    k = np.arange(n, dtype=np.float64) + (ts[0] - 1.7e9) / STEP_S  # counters keep rising across calls
    for name, unit, key, dirs, attrs in (
        ("system.disk.io", "By", "disk.io.direction", ("read", "write"), {"system.device": "sda"}),
        (
            "system.network.io",
            "By",
            "network.io.direction",
            ("receive", "transmit"),
            {"network.interface.name": "eth0"},
        ),
    ):
        for j, d in enumerate(dirs):
            rate = (2e5 + 1e5 * j) * (1 + busy)
            out.append(
                (name, unit, "sum", True, {**attrs, key: d}, np.round(1e9 + k * 3e5 + np.cumsum(rate), 0))
            )
    load = busy * 4
    for w in ("1m", "5m", "15m"):
        out.append((f"system.cpu.load_average.{w}", "{thread}", "gauge", False, {}, np.round(load, 2)))
    return out


def agent_batch(host: str, ts: F64, seed: int) -> MetricBatch:
    """One agent batch of ``host`` covering ``ts`` (every series, every time)."""
    tl = ts.tolist()
    series = [
        SeriesData(name, unit, kind, mono, attrs, tl, vals.tolist())  # type: ignore[arg-type]
        for name, unit, kind, mono, attrs, vals in series_values(ts, seed)
    ]
    return MetricBatch(uuid.uuid4().hex, host, {"host.name": host}, series)


def seed(url: str, *, hosts: int, days: float, users_n: int, now: float, quiet: bool = False) -> Seeded:
    """Fill the database at ``url`` (migrating it first); returns what the benchmark needs."""
    secs: dict[str, float] = {}
    store = open_store(url)
    try:
        metrics = SqlMetricStore(store.engine)
        t = time.perf_counter()
        reg = register_client(store, "bench-web@example.com", "Bench", "http://127.0.0.1:9/hook", now=now)
        client_id = reg.client.id
        sessions = SessionService(store, Settings(), time.time)
        cookies: list[str] = []
        for u in range(users_n):
            with store.write() as conn:
                user = users.create_user(
                    conn,
                    email=f"viewer{u}@example.com",
                    name=f"viewer {u}",
                    password_hash="not-a-usable-hash",
                    client_id=client_id,
                    role="admin" if u == 0 else "viewer",
                    now=now,
                    actor="bench",
                )
            cookies.append(sessions.start(user.id, client_id, "127.0.0.1", "bench/web")[0])
        secs["tenant+users"] = time.perf_counter() - t

        t = time.perf_counter()
        names = [host_name(i) for i in range(1, hosts + 1)]
        with store.write() as conn:
            for i, name in enumerate(names):
                seen = now - 7200 if i % 10 == 9 else now - 5
                register_agent(
                    conn,
                    client_id,
                    name,
                    kind="agent",
                    command_mode="pull",
                    actions=ACTIONS,
                    labels={"role": ("web", "db", "cache")[i % 3]},
                    now=seen,
                )

        def tick(i: int) -> None:
            seen = now - 7200 if i % 10 == 9 else now - 5
            metrics.write_batch(client_id, agent_batch(names[i], np.array([seen]), i), now=now)

        with ThreadPoolExecutor(4) as pool:  # agents report at once; PostgreSQL commits overlap
            list(pool.map(tick, range(len(names))))
        secs["fleet"] = time.perf_counter() - t

        t = time.perf_counter()
        points = 0
        total = int(days * 86400 / STEP_S)
        start = now - total * STEP_S
        for h in range(0, total, HOUR_POINTS):
            ts = start + STEP_S * np.arange(h + 1, min(h + HOUR_POINTS, total) + 1, dtype=np.float64)
            batch = agent_batch(HOST, ts, 42)
            metrics.write_batch(client_id, batch, now=now)
            points += batch.point_count
            if not quiet and h % (HOUR_POINTS * 24) == 0:
                print(f"    {HOST}: day {h // (HOUR_POINTS * 24) + 1} of {days:g} written", flush=True)
        secs["host week"] = time.perf_counter() - t

        t = time.perf_counter()
        done = CompactionResult()
        while (step := compact(metrics, now)).did_work:
            done = done + step
        secs["compaction"] = time.perf_counter() - t
        if not quiet:
            print(f"    compacted {done.points:,} points in {done.hours} hours", flush=True)
    finally:
        store.close()
    return Seeded(client_id, reg.api_key, cookies, hosts, points, secs)
