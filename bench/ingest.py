"""Ingest benchmark: sustained points/s, request latency and bytes per stored sample, side by side.

    .venv/bin/python bench/ingest.py [--seconds 20] [--targets pg,sqlite,otlp,vm] [--workers 4]
                                     [--ingest-processes 3] [--no-compact] [--py-spy DIR]

Targets, all fed the same samples from ``bench/datagen.py`` (10,000 series, 6,000-point batches):

* ``pg``     — our native ``POST /api/v1/metrics`` on a real ``infragent server`` subprocess, into
  PostgreSQL (127.0.0.1:5432, database ``test``, a fresh schema dropped afterwards);
* ``sqlite`` — the same server on a SQLite file in a temp dir;
* ``otlp``   — OTLP/HTTP protobuf ``POST /v1/metrics`` into PostgreSQL (when the route exists);
* ``vm``     — VictoriaMetrics (``/usr/bin/victoria-metrics``, temp data dir) importing the same
  samples as Prometheus text at ``/api/v1/import/prometheus``, as the anchor script does.

Request bodies are rendered before each target's timed window (as ``vm_ingest.py`` does), then
``--workers`` threads POST them over keep-alive connections until ``--seconds`` pass or the pool
runs out. The rate is points in 2xx responses over the window; after it the stored count is
checked (ours: sum of chunk point counts; VictoriaMetrics: ``vm_rows_added_to_storage_total``
after ``/internal/force_flush``). Bytes per sample: PostgreSQL ``pg_total_relation_size`` of every
metric table and partition; SQLite the database file (+WAL); VictoriaMetrics its data dir.
Load generator, servers and databases share this machine's cores; each server is stopped by PID.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from datagen import Dataset
from ports import announced_port, listening_port

PG_DSN = os.environ.get("INFRAGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
VENV_BIN = Path(sys.executable).parent
VM_BIN = "/usr/bin/victoria-metrics"
NATIVE_TYPE = "application/vnd.infragent.metrics+msgpack"
#: Points/s each target's pre-rendered pool is sized for; a target faster than this runs out early.
POOL_RATE = {"pg": 1.8e6, "sqlite": 1.0e6, "otlp": 0.5e6, "vm": 3.6e6}


@dataclass
class Result:
    target: str
    points: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    stored: int | None = None
    disk_bytes: int | None = None
    server_cpu_s: float = 0.0
    db_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    raw_bytes: int | None = None
    compaction: dict[str, float] | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of a process and each of its descendants (ingest workers), by pid."""
    root = psutil.Process(pid)
    out = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[p.pid] = t.user + t.system
    return out


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """(name, CPU seconds) of every process now: the columns "db cores" and "other" come from two
    of these snapshots (a process that exits during the window drops out; one that starts counts
    from zero)."""
    out = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[p.pid] = (p.info["name"] or "", t.user + t.system)
    return out


def cpu_split(before: dict[int, tuple[str, float]], server: set[int]) -> tuple[float, float, float]:
    """CPU seconds since ``before`` of (PostgreSQL, this load generator, everything else but the
    server): "other" shows jobs that shared the cores with the measurement."""
    db = client = other = 0.0
    me = os.getpid()
    for pid, (name, t) in cpu_by_process().items():
        used = t - before.get(pid, (name, 0.0))[1]
        if pid in server:
            continue
        if name == "postgres":
            db += used
        elif pid == me:
            client += used
        else:
            other += used
    return db, client, other


def cpu_since(pid: int, before: dict[int, float]) -> float:
    """Server CPU seconds since ``before``: processes started since count from zero."""
    return sum(t - before.get(p, 0.0) for p, t in tree_cpu(pid).items())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def post_all(
    port: int,
    path: str,
    headers: dict[str, str],
    bodies: list[bytes],
    points_each: int,
    seconds: float,
    workers: int,
) -> Result:
    """POST ``bodies`` from ``workers`` keep-alive connections until done or ``seconds`` pass."""
    res = Result("")
    nxt = itertools.count()
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds
    last = [start]

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        lat: list[float] = []
        ok = bad = 0
        while time.perf_counter() < deadline:
            i = next(nxt)
            if i >= len(bodies):
                break
            t0 = time.perf_counter()
            conn.request("POST", path, body=bodies[i], headers=headers)
            r = conn.getresponse()
            r.read()
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            if r.status // 100 == 2:
                ok += 1
            else:
                bad += 1
        conn.close()
        with lock:
            res.latencies += lat
            res.points += ok * points_each
            res.errors += bad
            last[0] = max(last[0], time.perf_counter())

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.seconds = last[0] - start
    if next(nxt) >= len(bodies):
        res.note = "pool exhausted before --seconds"
    return res


@contextmanager
def server_process(
    env_extra: Mapping[str, str], prefix: str = "bench-"
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A real ``infragent server`` subprocess on loopback, ready; yields (process, port, temp dir).
    Its settings are the defaults but the address, a temp data dir and ``env_extra``; its log is
    ``<temp dir>/server.log``, whose tail is printed when the server died during the run."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")},
        "INFRAGENT_DATA_DIR": str(tmp),
        "INFRAGENT_HOST": "127.0.0.1",
        "INFRAGENT_PORT": "0",
        "INFRAGENT_LOG_LEVEL": "warning",
        "INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the tenant's (unused) webhook is local
        **env_extra,
    }
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "infragent"), "server"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        port = announced_port(proc, tmp / "server.log")
        wait_http(f"http://127.0.0.1:{port}/health/ready")
        yield proc, port, tmp
    finally:
        died = proc.poll()
        stop(proc)
        log.close()
        if died is not None:
            tail = (tmp / "server.log").read_text(errors="replace").splitlines()[-30:]
            print(f"  the server exited with {died} during the run; its log ends:", *tail, sep="\n    ")
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def infragent_server(
    database_url: str, ingest_processes: int = 0, extra_env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int, str, Path]]:
    """A real ``infragent server`` subprocess with a registered tenant; yields (process, port, bearer
    key, temp dir). ``extra_env`` adds settings (``INFRAGENT_*`` variables) on top of the benchmark's own."""
    env = {
        "INFRAGENT_DATABASE_URL": database_url,
        "INFRAGENT_MAX_BODY_BYTES": str(16 << 20),
        "INFRAGENT_API_RATE_LIMIT_PER_KEY": "0",  # one key sends every batch: measure the server
        "INFRAGENT_INGEST_PROCESSES": str(ingest_processes),
        **(extra_env or {}),
    }
    with server_process(env, "bench-ingest-") as (proc, port, tmp):
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/clients/register",
            data=json.dumps(
                {"email": "b@example.com", "company_name": "Bench", "webhook_url": "http://127.0.0.1:9/h"}
            ).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            key = json.loads(r.read())["api_key"]
        yield proc, port, key, tmp


@contextmanager
def profiled(pid: int, name: str, out_dir: str | None) -> Iterator[None]:
    """Sample the server with py-spy (collapsed stacks in ``out_dir/<name>.txt``) when asked."""
    if not out_dir:
        yield
        return
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            str(VENV_BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--subprocesses",
            "--rate",
            "50",
            "--output",
            f"{out_dir}/{name}.txt",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        os.kill(spy.pid, signal.SIGINT)
        spy.wait(30)


@contextmanager
def pg_schema() -> Iterator[str]:
    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_footprint(schema: str) -> tuple[int, int]:
    """(stored points, bytes of every metric table, index, TOAST and partition) in ``schema``."""
    with psycopg.connect(PG_DSN, autocommit=True, options=f"-csearch_path={schema}") as c:
        c.execute("CHECKPOINT")
        stored = int(c.execute("SELECT coalesce(sum(n), 0) FROM metric_chunks").fetchone()[0])  # type: ignore[index]
        size = c.execute(
            "SELECT (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)"
            "        FROM pg_partition_tree('metric_chunks'))"
            " + pg_total_relation_size('metric_batches') + pg_total_relation_size('metric_series')"
            " + pg_total_relation_size('metric_rollups_1h') + pg_total_relation_size('metric_retention')"
        ).fetchone()[0]  # type: ignore[index]
        return stored, int(size)


def run_ours(kind: str, ds: Dataset, args: argparse.Namespace) -> Result:
    n = int(args.seconds * POOL_RATE[kind] / ds.batch_points) + 1
    render: Callable[[int], bytes] = ds.otlp if kind == "otlp" else ds.native
    t0 = time.perf_counter()
    bodies = [render(i) for i in range(n)]
    print(f"  {kind}: rendered {n} bodies in {time.perf_counter() - t0:.1f}s", flush=True)

    def measure(url: str, footprint: Callable[[], tuple[int, int]]) -> Result:
        with infragent_server(url, args.ingest_processes) as (proc, port, key, tmp):
            if kind == "otlp" and not has_route(port, "/v1/metrics"):
                return Result(kind, note="not available yet")
            headers = {"authorization": f"Bearer {key}", "content-encoding": "gzip"}
            headers["content-type"] = "application/x-protobuf" if kind == "otlp" else NATIVE_TYPE
            path = "/v1/metrics" if kind == "otlp" else "/api/v1/metrics"
            cpu0, all0 = tree_cpu(proc.pid), cpu_by_process()
            with profiled(proc.pid, kind, args.py_spy):
                res = post_all(port, path, headers, bodies, ds.batch_points, args.seconds, args.workers)
            res.server_cpu_s = cpu_since(proc.pid, cpu0)
            res.db_cpu_s, res.client_cpu_s, res.other_cpu_s = cpu_split(all0, set(tree_cpu(proc.pid)))
            res.target = kind
            res.stored, res.raw_bytes = footprint()
            res.disk_bytes = res.raw_bytes
            if args.compact:
                res.compaction = compact_now(url, tmp)
                res.stored, res.disk_bytes = footprint()
            return res

    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
        try:
            db = tmp / "metrics.db"
            return measure(f"sqlite:///{db}", lambda: sqlite_footprint(db))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    with pg_schema() as schema:
        return measure(f"{PG_DSN}?options=-csearch_path%3D{schema}", lambda: pg_footprint(schema))


def sqlite_footprint(db: Path) -> tuple[int, int]:
    """(stored points, bytes of the database file) after a truncating WAL checkpoint (VictoriaMetrics
    is measured after ``force_flush`` the same way)."""
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = int(c.execute("SELECT coalesce(sum(n), 0) FROM metric_chunks").fetchone()[0])
    return stored, sum(p.stat().st_size for p in db.parent.iterdir() if p.name.startswith(db.name))


def compact_now(url: str, data_dir: Path) -> dict[str, float]:
    """``infragent metrics compact`` on the target's database, as the server's own loop would run it
    once the hours close; returns its JSON summary (points, seconds, bytes in and out)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")},
        "INFRAGENT_DATABASE_URL": url,
        "INFRAGENT_DATA_DIR": str(data_dir),
        "INFRAGENT_LOG_LEVEL": "warning",
    }
    out = subprocess.run(
        [str(VENV_BIN / "infragent"), "metrics", "compact", "--json", "--delay", "600"],
        env=env,
        capture_output=True,
        check=True,
        timeout=1800,
    )
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def has_route(port: int, path: str) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=10) as r:
        return path in json.loads(r.read()).get("paths", {})


def vm_rows(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in r.read().decode().splitlines()
                if line.startswith("vm_rows_added_to_storage_total")
            )
        )


def run_vm(ds: Dataset, args: argparse.Namespace) -> Result:
    if not Path(VM_BIN).exists():
        return Result("vm", note=f"{VM_BIN} not installed")
    n = int(args.seconds * POOL_RATE["vm"] / ds.batch_points) + 1
    t0 = time.perf_counter()
    bodies = [ds.prometheus(i) for i in range(n)]
    print(f"  vm: rendered {n} bodies in {time.perf_counter() - t0:.1f}s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-vm-"))
    log = (tmp / "vm.log").open("wb")
    proc = subprocess.Popen(
        [VM_BIN, "-httpListenAddr=127.0.0.1:0", f"-storageDataPath={tmp}/data", "-retentionPeriod=1y"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        port = listening_port(proc, log=tmp / "vm.log")
        wait_http(f"http://127.0.0.1:{port}/health")
        cpu0, all0 = tree_cpu(proc.pid), cpu_by_process()
        res = post_all(
            port, "/api/v1/import/prometheus", {}, bodies, ds.batch_points, args.seconds, args.workers
        )
        res.target, res.server_cpu_s = "vm", cpu_since(proc.pid, cpu0)
        _, res.client_cpu_s, res.other_cpu_s = cpu_split(all0, set(tree_cpu(proc.pid)))
        urllib.request.urlopen(f"http://127.0.0.1:{port}/internal/force_flush", timeout=60).read()
        deadline = time.monotonic() + 60
        while (stored := vm_rows(port)) < res.points and time.monotonic() < deadline:
            time.sleep(0.2)
        res.stored = stored
        urllib.request.urlopen(f"http://127.0.0.1:{port}/internal/force_flush", timeout=60).read()
        time.sleep(1.0)
        res.disk_bytes = sum(p.stat().st_size for p in (tmp / "data").rglob("*") if p.is_file())
        return res
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: list[Result], ds: Dataset, args: argparse.Namespace) -> None:
    vm = next((r for r in results if r.target == "vm" and r.rate), None)
    print()
    print(
        f"ingest: {ds.series:,} series, {ds.batch_points:,}-point batches, {args.workers} client workers, "
        f"{args.seconds:g}s per target, {os.cpu_count()} cores shared by client, server and database"
    )
    head = (
        f"{'target':<8} {'points/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'secs':>6} "
        f"{'srv cores':>9} {'db cores':>8} {'client':>6} {'other':>5} {'stored':>11} {'B raw':>6} "
        f"{'B/sample':>9} {'rate/VM':>8} {'B/VM':>6}  note"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        if not r.rate:
            print(f"{r.target:<8} {'—':>11}  {r.note}")
            continue
        bps = r.disk_bytes / r.stored if r.disk_bytes and r.stored else float("nan")
        db = "—" if r.db_cpu_s is None else f"{r.db_cpu_s / r.seconds:.2f}"
        raw = f"{r.raw_bytes / r.stored:.1f}" if r.raw_bytes and r.stored else "—"
        vm_bps = vm.disk_bytes / vm.stored if vm and vm.disk_bytes and vm.stored else float("nan")
        print(
            f"{r.target:<8} {r.rate:>11,.0f} {r.pct(0.5):>8.1f} {r.pct(0.99):>8.1f} {len(r.latencies):>9} "
            f"{r.seconds:>6.1f} {r.server_cpu_s / r.seconds:>9.2f} {db:>8} "
            f"{r.client_cpu_s / r.seconds:>6.2f} {r.other_cpu_s / r.seconds:>5.2f} {r.stored or 0:>11,} "
            f"{raw:>6} {bps:>9.2f} "
            f"{(r.rate / vm.rate if vm else float('nan')):>8.2f} {bps / vm_bps:>6.2f}  "
            f"{r.note}{f' errors={r.errors}' if r.errors else ''}"
            f"{' STORED != ACCEPTED' if r.stored is not None and r.stored != r.points else ''}"
        )
    print(
        "srv cores = server CPU seconds (ingest workers included) / window; "
        "db cores = every postgres process's CPU seconds / window; client = this load generator; "
        "other = every other process (jobs sharing the cores)"
    )
    print(
        "B raw = bytes per sample as ingested (raw chunks); B/sample = after `infragent metrics compact` "
        "rewrote the closed hours, as the server's own loop does (VictoriaMetrics: after force_flush)"
    )
    for r in results:
        c = r.compaction
        if c and c.get("points"):
            print(
                f"compaction {r.target}: {int(c['points']):,} points in {c['seconds']:.1f} s = "
                f"{c['points_per_s']:,.0f} pts/s, chunk data {c['bytes_in'] / c['points']:.2f} -> "
                f"{c['bytes_out'] / c['points']:.2f} B/point; ingest and compaction together sustain "
                f"{1 / (1 / r.rate + 1 / c['points_per_s']):,.0f} pts/s on these cores"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--targets", default="pg,sqlite,otlp,vm")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--series-per-host", type=int, default=100)
    ap.add_argument("--points", type=int, default=60, help="points per series per batch")
    ap.add_argument(
        "--ingest-processes",
        type=int,
        default=3,
        help="the server's ingest worker processes (INFRAGENT_INGEST_PROCESSES; PostgreSQL only)",
    )
    ap.add_argument(
        "--no-compact",
        dest="compact",
        action="store_false",
        help="measure bytes as ingested only (by default the closed hours are compacted after the run)",
    )
    ap.add_argument("--py-spy", metavar="DIR", help="record the server's stacks with py-spy into DIR")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so finally-blocks stop our servers
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(POOL_RATE)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}; choose from {sorted(POOL_RATE)}")
    probe = Dataset(args.hosts, args.series_per_host, args.points)
    most = max(int(args.seconds * POOL_RATE[t] / probe.batch_points) + 1 for t in targets)
    end = (time.time() // 3600) * 3600 - 3600
    ds = Dataset(args.hosts, args.series_per_host, args.points, t0=end - probe.span_s(most))
    results = []
    for t in targets:
        print(f"running {t} …", flush=True)
        results.append(run_vm(ds, args) if t == "vm" else run_ours(t, ds, args))
    report(results, ds, args)
    print(
        "latency:",
        ", ".join(
            f"{r.target} mean {statistics.fmean(r.latencies) * 1000:.1f} ms" for r in results if r.latencies
        ),
    )


if __name__ == "__main__":
    main()
