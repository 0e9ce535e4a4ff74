"""Rule evaluation cost at fleet scale: the same agent-like ingest into a server with rules on and off.

10,017 series (189 hosts x the 53 series an agent sends: ``system.cpu.utilization`` by mode, memory
and filesystem usage and utilization by state and mountpoint, load, uptime, network and disk
counters, the agent's own metrics), one native batch per host and 10 s tick, so the default rule
pack matches what it was written for; the tenant has the default pack plus the 20 threshold rules
below, created through the rules API. A few hosts run hot, so some rules go pending and fire.
Each mode (``INFRAGENT_RULES_ENABLED`` true / false) gets a fresh ``infragent server`` process
(``bench/ingest.py``'s, same settings otherwise), warmed up with one tick of every host, then:

* **steady**: the fleet at its real rate (1,000 samples/s, 18.9 batches/s, each stamped with the
  wall clock when sent, one connection) for ``--steady`` seconds → server CPU seconds per second
  (the process and its ingest workers: utime+stime from ``/proc/PID/stat`` via psutil, as
  ``bench/ingest.py`` counts);
* **push**: pre-rendered batches of the same fleet pushed as fast as ``--workers`` connections go
  (``bench/ingest.py``'s ``post_all``) for ``--push`` seconds → batches/s and points/s; then the
  time until the server is idle again (the evaluator runs in its own thread and may still be
  working through what the window queued), and the rate over window + that time.

The rules' cost: CPU per second of ingest on vs off, and 1 - throughput on / off (goal, issue #11:
rules cost ≤ 10 % of ingest throughput). Modes alternate (off, on, off, on … for ``--rounds``) so
a slow spell of this shared machine falls on both; the CPU of every other process is printed too.
``datagen.Dataset`` gives the batch indexing; its synthetic series names would match no rule.

    .venv/bin/python bench/rule_eval_cost.py                       # SQLite, 60 s steady, 20 s push, 2 rounds
    .venv/bin/python bench/rule_eval_cost.py --database pg --ingest-processes 3
    .venv/bin/python bench/rule_eval_cost.py --quick               # smoke run, < 60 s
    .venv/bin/python bench/rule_eval_cost.py --py-spy /tmp/spy     # where the server's time goes
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from datagen import Dataset
from ingest import (
    NATIVE_TYPE,
    PG_DSN,
    cpu_by_process,
    cpu_since,
    cpu_split,
    infragent_server,
    pg_schema,
    post_all,
    profiled,
    tree_cpu,
)

from infragent.agent.http import HttpClient
from infragent.wire import MetricBatch, SeriesData, encode_batch

GIB = float(1 << 30)
CPU_MODES = ("user", "system", "idle", "iowait", "nice", "irq", "softirq", "steal")
MEMORY_STATES = ("used", "free", "cached", "buffers")
MOUNTS = (("/", "/dev/sda1"), ("/var", "/dev/sda2"))
FS_STATES = ("used", "free", "reserved")


def agent_series() -> list[tuple[str, str, str, bool, dict[str, str]]]:
    """(name, unit, kind, monotonic, attributes) of one host's series, as the agent names them
    (src/infragent/agent/collectors/*.py, agent/runtime.py's self-metrics)."""
    out: list[tuple[str, str, str, bool, dict[str, str]]] = []
    out += [("system.cpu.utilization", "1", "gauge", False, {"cpu.mode": m}) for m in CPU_MODES]
    for name, unit in (("system.memory.usage", "By"), ("system.memory.utilization", "1")):
        out += [(name, unit, "gauge", False, {"system.memory.state": s}) for s in MEMORY_STATES]
    out.append(("system.linux.memory.available", "By", "gauge", False, {}))
    for mount, device in MOUNTS:
        base = {
            "system.device": device,
            "system.filesystem.mountpoint": mount,
            "system.filesystem.type": "ext4",
            "system.filesystem.mode": "rw",
        }
        for name, unit in (("system.filesystem.usage", "By"), ("system.filesystem.utilization", "1")):
            out += [(name, unit, "gauge", False, {**base, "system.filesystem.state": s}) for s in FS_STATES]
    out += [(f"system.cpu.load_average.{w}", "{thread}", "gauge", False, {}) for w in ("1m", "5m", "15m")]
    out += [
        ("system.uptime", "s", "gauge", False, {}),
        ("system.cpu.logical.count", "{cpu}", "sum", False, {}),
    ]
    out += [
        ("infragent.agent.memory.rss", "By", "gauge", False, {}),
        ("infragent.agent.cpu.time", "s", "sum", True, {}),
        ("infragent.agent.buffer.size", "By", "gauge", False, {}),
        ("infragent.agent.buffer.utilization", "1", "gauge", False, {}),
        ("infragent.agent.points.dropped", "{point}", "sum", True, {}),
        ("infragent.agent.server.reachable", "1", "gauge", False, {}),
        ("infragent.agent.load.per_core", "1", "gauge", False, {}),
    ]
    for name in (
        "system.network.io",
        "system.network.packets",
        "system.network.errors",
        "system.network.dropped",
    ):
        unit = "By" if name.endswith(".io") else "{packet}"
        for d in ("transmit", "receive"):
            out.append(
                (name, unit, "sum", True, {"network.interface.name": "eth0", "network.io.direction": d})
            )
    for name, unit in (("system.disk.io", "By"), ("system.disk.operations", "{operation}")):
        out += [
            (name, unit, "sum", True, {"system.device": "sda", "disk.io.direction": d})
            for d in ("read", "write")
        ]
    return out


SERIES = agent_series()


@dataclass(frozen=True)
class Fleet(Dataset):
    """``bench/datagen.py``'s batch indexing (batch ``i`` = host ``i % hosts``, tick ``i // hosts``)
    over agent-shaped series with plausible values instead of its synthetic ones."""

    hosts: int = 189
    series_per_host: int = len(SERIES)
    points: int = 1
    hot_every: int = 25  # every n-th host runs hot (CPU, memory, a filling disk): some rules fire

    def values(self, host: int, t: float) -> list[float]:
        """One tick of a host's series at data time ``t``: a function of (host, t) only."""
        hot = host % self.hot_every == 0
        wave = 0.5 + 0.5 * math.sin(t / 300.0 + host)
        jitter = ((host * 7919 + int(t) * 104729) % 1000) / 1000.0
        idle = 0.03 if hot else 0.55 + 0.3 * wave
        busy = 1.0 - idle
        cpu = [busy * 0.6, busy * 0.25, idle, busy * 0.06, busy * 0.03, busy * 0.02, busy * 0.03, busy * 0.01]
        total = 16 * GIB
        used = (0.95 if hot else 0.35 + 0.2 * wave) * total
        cached, buffers = 0.2 * (total - used), 0.02 * (total - used)
        mem = [used, total - used - cached - buffers, cached, buffers]
        fs: list[float] = []
        for k in range(len(MOUNTS)):
            size = 100 * GIB
            fill = min(
                0.97, (0.93 if hot and k == 1 else 0.4) + (t % 86400.0) / 86400.0 * (0.05 if hot else 0.01)
            )
            reserved = 0.05 * size
            parts = [fill * size, size - fill * size - reserved, reserved]
            fs += [*parts, *(p / size for p in parts)]
        load1 = (6.0 if hot else 0.5 + 1.5 * wave) + jitter
        load = [load1, load1 * 0.9, load1 * 0.8]
        uptime = t - (1_700_000_000.0 - host * 86400.0)
        agent = [15e6 + 1e5 * jitter, t / 1000.0, 0.0, 0.0, 0.0, 1.0, load[1] / 4.0]
        counters = [t * rate * (1 + host % 5) for rate in (1.2e5, 1.5e5, 90.0, 110.0, 0.0, 0.0, 0.001, 0.0)]
        disk = [t * rate for rate in (2e5, 8e5, 20.0, 60.0)]
        return [
            *cpu,
            *mem,
            *(m / total for m in mem),
            (total - used),
            *fs,
            *load,
            uptime,
            4.0,
            *agent,
            *counters,
            *disk,
        ]

    def host_batch(self, host: int, ticks: list[float]) -> bytes:
        """Host ``host``'s batch of ``ticks`` as the agent sends it (gzip'd msgpack, wire v2)."""
        rows = [self.values(host, t) for t in ticks]
        series = [
            SeriesData(name, unit, kind, mono, attrs, ticks, [row[j] for row in rows])  # type: ignore[arg-type]
            for j, (name, unit, kind, mono, attrs) in enumerate(SERIES)
        ]
        node = f"host-{host:04d}"
        return encode_batch(MetricBatch(uuid.uuid4().hex, node, {"host.name": node}, series))

    def native(self, i: int, *, level: int = 1) -> bytes:
        host, k = i % self.hosts, i // self.hosts
        return self.host_batch(
            host, [self.t0 + (k * self.points + p) * self.step_s for p in range(self.points)]
        )


#: 20 threshold rules an operator adds on top of the default pack (docs/rules.md's format), over the
#: series above: several per metric family, a few hosts breaching some of them.
THRESHOLDS = [
    ("CpuUserHigh", 'system.cpu.utilization{cpu.mode="user"}', "avg", "1m", ">", 0.8, "1m"),
    ("CpuSystemHigh", 'system.cpu.utilization{cpu.mode="system"}', "avg", "1m", ">", 0.3, "2m"),
    ("CpuIowaitHigh", 'system.cpu.utilization{cpu.mode="iowait"}', "avg", "5m", ">", 0.2, "5m"),
    ("CpuStealHigh", 'system.cpu.utilization{cpu.mode="steal"}', "avg", "5m", ">", 0.1, "5m"),
    ("CpuIdleLow", 'system.cpu.utilization{cpu.mode="idle"}', "max", "2m", "<", 0.05, "1m"),
    ("MemoryUsed95", 'system.memory.utilization{system.memory.state="used"}', "last", "1m", ">", 0.95, "0s"),
    ("MemoryFreeLow", 'system.memory.usage{system.memory.state="free"}', "min", "1m", "<", 2.0e8, "2m"),
    ("MemAvailableLow", "system.linux.memory.available", "last", "1m", "<", 1.0e9, "1m"),
    (
        "RootFsUsed",
        'system.filesystem.utilization{system.filesystem.mountpoint="/",system.filesystem.state="used"}',
        "last",
        "5m",
        ">",
        0.85,
        "5m",
    ),
    (
        "VarFsUsed",
        'system.filesystem.utilization{system.filesystem.mountpoint="/var",system.filesystem.state="used"}',
        "last",
        "5m",
        ">",
        0.9,
        "1m",
    ),
    ("Load1High", "system.cpu.load_average.1m", "avg", "1m", ">", 5.0, "1m"),
    ("Load15High", "system.cpu.load_average.15m", "last", "5m", ">", 4.0, "10m"),
    ("NetRxHigh", 'system.network.io{network.io.direction="receive"}', "rate", "1m", ">", 1.0e8, "2m"),
    ("NetTxHigh", 'system.network.io{network.io.direction="transmit"}', "rate", "1m", ">", 1.0e8, "2m"),
    ("NetErrors", "system.network.errors", "increase", "5m", ">", 100.0, "0s"),
    ("DiskWriteHigh", 'system.disk.io{disk.io.direction="write"}', "rate", "5m", ">", 2.0e8, "5m"),
    ("DiskOpsHigh", "system.disk.operations", "rate", "1m", ">", 5000.0, "2m"),
    ("AgentRssHigh", "infragent.agent.memory.rss", "max", "5m", ">", 1.0e8, "5m"),
    ("AgentCpuHigh", "infragent.agent.cpu.time", "rate", "5m", ">", 0.1, "5m"),
    ("AgentDropping", "infragent.agent.points.dropped", "increase", "5m", ">", 0.0, "0s"),
]


def rule_yaml(name: str, metric: str, fn: str, window: str, op: str, value: float, for_: str) -> str:
    return (
        f"alert: {name}\nkind: threshold\nmetric: '{metric}'\nfunction: {fn}\nwindow: {window}\n"
        f'op: "{op}"\nvalue: {value!r}\nby: [host]\nfor: {for_}\n'
    )


@dataclass
class Run:
    mode: str  # "on" | "off"
    round: int
    steady_s: float = 0.0
    steady_points: int = 0
    steady_cpu_s: float = 0.0
    steady_other_s: float = 0.0
    steady_evals: float | None = None
    steady_lat: list[float] = field(default_factory=list)
    push_s: float = 0.0
    settle_s: float = 0.0
    push_points: int = 0
    push_cpu_s: float = 0.0
    push_client_s: float = 0.0
    push_other_s: float = 0.0
    push_evals: float | None = None
    push_errors: int = 0
    note: str = ""

    @property
    def cpu_per_s(self) -> float:
        return self.steady_cpu_s / self.steady_s if self.steady_s else float("nan")

    @property
    def points_per_s(self) -> float:
        return self.push_points / self.push_s if self.push_s else float("nan")

    @property
    def drained_per_s(self) -> float:
        """Points over the push and the time the server then needed to go idle (evaluation runs in
        its own thread, so work queued during the window would otherwise not count)."""
        return self.push_points / (self.push_s + self.settle_s) if self.push_s else float("nan")


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "pg":
        with pg_schema() as schema:
            yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-rules-db-"))
    try:
        yield f"sqlite:///{tmp}/infragent.db"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def create_rule(port: int, key: str, text: str) -> None:
    """One rule through the rules API (YAML body, as an operator would paste a rule)."""
    r = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/rules",
        content=text.encode(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/yaml"},
        timeout=30,
    )
    if r.status_code != 201:
        raise RuntimeError(f"creating the rule failed: {r.status_code} {r.text[:500]}")


@contextmanager
def server(args: argparse.Namespace, mode: str) -> Iterator[tuple[int, int, dict[str, str]]]:
    """A fresh server whose tenant has the default pack and the 20 rules, and has sent one tick of
    every host (the series exist, the evaluator has loaded the tenant); yields (pid, port,
    ingest headers)."""
    env = {"INFRAGENT_RULES_ENABLED": "true" if mode == "on" else "false"}
    with (
        database(args.database) as url,
        infragent_server(url, args.ingest_processes, env) as (proc, port, key, _),
    ):
        for rule in THRESHOLDS:
            create_rule(port, key, rule_yaml(*rule))
        ingest = {"Authorization": f"Bearer {key}", "Content-Type": NATIVE_TYPE, "Content-Encoding": "gzip"}
        fleet, now = Fleet(), time.time() - 60
        with HttpClient(f"http://127.0.0.1:{port}", timeout_s=30) as client:
            for host in range(fleet.hosts):
                r = client.request("POST", "/api/v1/metrics", fleet.host_batch(host, [now]), ingest)
                if r.status // 100 != 2:
                    raise RuntimeError(f"warm-up batch refused: {r.status} {r.text()}")
        settle(proc.pid)  # series created; rules loaded on the evaluator's tick (1 s)
        time.sleep(2.0)
        yield proc.pid, port, ingest


def evaluations(port: int) -> float | None:
    """``infragent_rule_evaluations_total`` from the server's /metrics (None when not exposed)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = [
        float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("infragent_rule_evaluations_total")
    ]
    return sum(found) if found else None


def settle(pid: int, idle_cores: float = 0.1, timeout_s: float = 60.0) -> float:
    """Seconds until the server (with its workers) uses under ``idle_cores`` over a 0.25 s slice."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        before, t = tree_cpu(pid), time.monotonic()
        time.sleep(0.25)
        if cpu_since(pid, before) / (time.monotonic() - t) < idle_cores:
            return time.monotonic() - start - 0.25
    return timeout_s


def steady(run: Run, pid: int, port: int, headers: dict[str, str], fleet: Fleet, seconds: float) -> None:
    """The fleet at its real rate: host h sends its tick at h/hosts of each 10 s period, stamped
    with the wall clock, one keep-alive connection (the hosts' batches are small and spread)."""
    evals0 = evaluations(port)
    with HttpClient(f"http://127.0.0.1:{port}", timeout_s=30) as client:
        gap = fleet.step_s / fleet.hosts
        start = time.monotonic()
        cpu0, all0 = tree_cpu(pid), cpu_by_process()
        n = 0
        while (due := start + n * gap) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            body = fleet.host_batch(n % fleet.hosts, [time.time()])
            t0 = time.perf_counter()
            r = client.request("POST", "/api/v1/metrics", body, headers)
            run.steady_lat.append(time.perf_counter() - t0)
            if r.status // 100 == 2:
                run.steady_points += fleet.series_per_host
            else:
                run.note += f" steady {r.status}"
            n += 1
        run.steady_s = time.monotonic() - start
        run.steady_cpu_s = cpu_since(pid, cpu0)
        _, _, run.steady_other_s = cpu_split(all0, set(tree_cpu(pid)))
    evals1 = evaluations(port)
    run.steady_evals = None if evals0 is None or evals1 is None else evals1 - evals0


def push(run: Run, pid: int, port: int, headers: dict[str, str], args: argparse.Namespace) -> None:
    """Pre-rendered batches as fast as ``args.workers`` connections go (``post_all``).

    Timestamps: batch i is stamped about ``i / pool_rate`` s after the render started, so while the
    push runs below the pool's rate its data trails the wall clock by at most the render time plus
    the window — inside every rule's window (≥ 1 m), where the evaluator really evaluates it (it
    evaluates at the wall clock: data stamped in the future, or older than a window, would be
    cheap). Each series then gets a sample every hosts / pool_rate s instead of every 10 s."""
    n = int(args.push * args.pool_rate) + 1
    pool = Fleet(t0=time.time(), step_s=Fleet().hosts / args.pool_rate)
    bodies = [pool.native(i) for i in range(n)]
    lower = {k.lower(): v for k, v in headers.items()}
    evals0 = evaluations(port)
    cpu0, all0 = tree_cpu(pid), cpu_by_process()
    res = post_all(port, "/api/v1/metrics", lower, bodies, pool.series_per_host, args.push, args.workers)
    run.settle_s = settle(pid)
    run.push_cpu_s = cpu_since(pid, cpu0)
    _, run.push_client_s, run.push_other_s = cpu_split(all0, set(tree_cpu(pid)))
    evals1 = evaluations(port)
    run.push_evals = None if evals0 is None or evals1 is None else evals1 - evals0
    run.push_s, run.push_points, run.push_errors = res.seconds, res.points, res.errors
    if res.note:
        run.note += f" push: {res.note} (raise --pool-rate)"


def measure(args: argparse.Namespace, mode: str, rnd: int) -> Run:
    """One mode on one fresh server: the steady phase, then the push (its data is stamped after
    the steady phase's, so every series stays in time order)."""
    run = Run(mode, rnd)
    with server(args, mode) as (pid, port, headers):
        steady(run, pid, port, headers, Fleet(), args.steady)
        with profiled(pid, f"push-rules-{mode}-{rnd}", args.py_spy):
            push(run, pid, port, headers, args)
    return run


def median(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def _evals(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    fleet = Fleet()
    db = "PostgreSQL" if args.database == "pg" else "SQLite"
    print(
        f"\n## rule evaluation cost: {fleet.series:,} series ({fleet.hosts} hosts x {fleet.series_per_host}) "
        f"at {fleet.step_s:g} s, default pack + {len(THRESHOLDS)} threshold rules, {db}, "
        f"ingest_processes={args.ingest_processes}, {os.cpu_count()} cores shared\n"
    )
    print(
        "| rules | round | steady: server CPU s/s | samples/s | req p50 ms | other procs s/s | evals/s "
        "| push: batches/s | points/s | server cores | client | other | idle after s | points/s incl. that "
        "| evals/s | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    per = fleet.series_per_host
    for r in runs:
        p50 = statistics.median(r.steady_lat) * 1000 if r.steady_lat else float("nan")
        steady_evals = None if r.steady_evals is None else r.steady_evals / r.steady_s
        push_evals = None if r.push_evals is None else r.push_evals / (r.push_s + r.settle_s)
        note = r.note.strip() + (f" errors={r.push_errors}" if r.push_errors else "")
        print(
            f"| {r.mode} | {r.round} | {r.cpu_per_s:.3f} | {r.steady_points / r.steady_s:,.0f} | {p50:.1f} "
            f"| {r.steady_other_s / r.steady_s:.2f} | {_evals(steady_evals)} "
            f"| {r.points_per_s / per:,.0f} | {r.points_per_s:,.0f} "
            f"| {r.push_cpu_s / (r.push_s + r.settle_s):.2f} | {r.push_client_s / r.push_s:.2f} "
            f"| {r.push_other_s / r.push_s:.2f} | {r.settle_s:.2f} | {r.drained_per_s:,.0f} "
            f"| {_evals(push_evals)} | {note} |"
        )
    on = [r for r in runs if r.mode == "on"]
    off = [r for r in runs if r.mode == "off"]
    cpu_on, cpu_off = median([r.cpu_per_s for r in on]), median([r.cpu_per_s for r in off])
    print(
        "server CPU = the server process and its ingest workers, utime+stime (/proc/PID/stat) per wall "
        "second; client = this load generator; other = every other process on the machine (jobs "
        "sharing the cores); evals = infragent_rule_evaluations_total per second"
    )
    print(
        f"\nmedians: steady server CPU {cpu_off:.3f} (off) → {cpu_on:.3f} (on) s per s of ingest: rules add "
        f"{cpu_on - cpu_off:+.3f} ({(cpu_on / cpu_off - 1) * 100:+.1f} %)"
    )
    for what, attr in (("max ingest", "points_per_s"), ("max ingest, until idle", "drained_per_s")):
        tp_on = median([getattr(r, attr) for r in on])
        tp_off = median([getattr(r, attr) for r in off])
        cost = 1 - tp_on / tp_off
        print(
            f"{what}: {tp_off:,.0f} (off) → {tp_on:,.0f} (on) points/s: rules cost {cost * 100:.1f} % "
            f"of throughput (goal ≤ 10 %: {'met' if cost <= 0.10 else 'NOT met'})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steady", type=float, default=60.0, help="seconds at the fleet's real rate")
    ap.add_argument("--push", type=float, default=20.0, help="seconds of pushing as fast as possible")
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternated")
    ap.add_argument("--workers", type=int, default=4, help="client connections in the push")
    ap.add_argument("--pool-rate", type=float, default=1500.0, help="batches/s the push's pool is sized for")
    ap.add_argument("--database", choices=["sqlite", "pg"], default="sqlite")
    ap.add_argument("--ingest-processes", type=int, default=0, help="INFRAGENT_INGEST_PROCESSES (PostgreSQL)")
    ap.add_argument("--py-spy", metavar="DIR", help="record the server's stacks in each push with py-spy")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 6 s steady, 3 s push (< 60 s)")
    args = ap.parse_args()
    if args.quick:
        args.steady, args.push, args.rounds = 6.0, 3.0, 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so finally-blocks stop every server
    runs = []
    for rnd in range(1, args.rounds + 1):
        for mode in ("off", "on"):
            print(f"round {rnd}, rules {mode} …", file=sys.stderr, flush=True)
            runs.append(measure(args, mode, rnd))
    report(runs, args)


if __name__ == "__main__":
    main()
