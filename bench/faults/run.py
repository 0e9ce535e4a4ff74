"""Fault-injection suite: real processes on this machine, each fault bounded, killed at the end.

    PYTHONPATH=src python bench/faults/run.py [--quick] [--trials 10] [--db sqlite|postgres]

Starts ``infragent up --no-agent`` (server + responder running the step runbooks of ``book.py``),
a real agent in pull mode with a process check (pidfd exit watch on, or off for the 1 s-poll
figure), an HTTP check, an allowlisted ``restart`` action and ``kill-hog``/``kill-leak``/
``cleanup-disk`` scripts, and the service they guard; then breaks things (crash, hung, server and
database restarted mid-incident, CPU hog, memory leak, disk filling, agent offline, crash loop) and
prints, per fault: detected / healed / escalated / MTTR / actions / unsafe / storms. The crash
fault is measured beside Monit (``/work/shared/anchors/monit_heal.py``, 1 s cycle, kill at a
random phase), run in the same run when ``monit`` is installed; otherwise the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import book
import dbfault
import hostfaults
import scenarios
from scenarios import Outcome, pctl
from stack import Stack

ANCHOR = Path("/work/shared/anchors/monit_heal.py")
PG = os.environ.get("INFRAGENT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def say(text: str) -> None:
    print(text, flush=True)


def pg_schema_url(base: str) -> tuple[str, str]:
    """A fresh schema on the shared server, as tests/support/databases.py does for tests."""
    import psycopg

    schema = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = base.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{url}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def monit(trials: int) -> dict[str, object] | str:
    if shutil.which("monit") is None:
        return "Monit anchor not run: monit is not installed here (apt-get install monit)"
    if not ANCHOR.exists():
        return f"Monit anchor not run: {ANCHOR} is missing"
    try:
        done = subprocess.run(
            [sys.executable, str(ANCHOR), "--cycle", "1", "--trials", str(trials)],
            capture_output=True,
            text=True,
            timeout=60 + 15 * trials,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "Monit anchor did not finish in time"
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return f"Monit anchor failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return dict(json.loads(lines[-1]))


def crash_series(work: Path, db: str, trials: int, *, watch_exit: bool) -> Outcome:
    """A timing series: ``trials`` crashes of one service on one host within a few minutes.

    Its stack's budget is raised to ``trials + 5``: ten deliberate crashes in two minutes are what
    the default budget (3 per 30 min) calls a storm and escalates after the third; that guardrail
    is the crash-loop fault's subject, measured with the default budget on a stack of its own.
    """
    stack = Stack(
        work, db, watch_exit=watch_exit, env={"INFRAGENT_BUDGET_MAX_ACTIONS": str(trials + 5)}, say=say
    )
    try:
        stack.up()
        return scenarios.crash(stack, trials, say)
    finally:
        stack.close()


def row(o: Outcome) -> str:
    mttr = "-" if o.mttr_s is None else f"{o.mttr_s:.2f} s"
    yn = lambda b: "yes" if b else "no"  # noqa: E731
    healed = yn(o.healed) if o.remediable else "n/a"
    return (
        f"| {o.fault} | {yn(o.detected)} | {healed} | {yn(o.escalated)}"
        + (f" ({o.escalations})" if o.escalations else "")
        + f" | {mttr} | {o.actions} | "
        f"{o.unsafe} | {o.storms} |" + (f" {o.note}" if o.note else "")
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="each fault once, Monit with 3 trials")
    ap.add_argument("--trials", type=int, default=10, help="crash trials per variant (default 10)")
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs) for a post-mortem")
    ap.add_argument(
        "--only",
        help="comma-separated fault keys: crash,poll,monit,loop,hung,agent,server,cpu,memory,disk,database",
    )
    a = ap.parse_args(argv)
    trials = 1 if a.quick else a.trials
    only = set(a.only.split(",")) if a.only else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def wanted(key: str) -> bool:
        return only is None or key in only

    work = Path(tempfile.mkdtemp(prefix="infragent-faults-"))
    schemas: list[str] = []

    def db_url() -> str:
        if a.db == "sqlite":
            return ""
        url, schema = pg_schema_url(PG)
        schemas.append(schema)
        return url

    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        say(f"faults: work dir {work}, store {a.db}")
        polled: list[float] = []
        ours: list[float] = []
        anchor: dict[str, object] | str = "Monit anchor not run (--only)"
        if wanted("monit"):
            say(f"Monit anchor, 1 s cycle, {3 if a.quick else trials} trials ...")
            anchor = monit(3 if a.quick else trials)
        if wanted("poll"):
            say(f"crash, agent process check polled every 1 s (no exit watch), {trials} trials ...")
            polled = crash_series(work / "poll", db_url(), trials, watch_exit=False).samples
        if wanted("crash"):
            say(f"crash, exit watch, {trials} trials ...")
            crash = crash_series(work / "crash", db_url(), trials, watch_exit=True)
            ours = crash.samples
            outcomes.append(crash)
        host = ("hung", "server", "cpu", "memory", "disk", "agent")
        if any(wanted(k) for k in host):
            base = book.Baseline.now(work)
            say(f"baseline: / {base.disk_used:.4f} used, memory {base.memory_used:.4f} used")
            stack = Stack(work / "main", db_url(), rules=book.rules(base), say=say)
            try:
                say("starting server + responder, agent (exit watch on), service, default budget ...")
                stack.up()
                steps = (
                    ("hung", "hung service ...", scenarios.hung),
                    ("server", "server restarted mid-incident ...", scenarios.server_restart),
                    ("cpu", "CPU hog ...", hostfaults.cpu_hog),
                    ("memory", "memory leak ...", hostfaults.memory_leak),
                    ("disk", "disk filling ...", hostfaults.disk_filling),
                    ("agent", "agent offline ...", hostfaults.agent_offline),
                )
                for key, text, fault in steps:
                    if wanted(key):
                        say(text)
                        outcomes.append(fault(stack, say))
            finally:
                stack.close()
        if wanted("loop"):
            say("crash loop, on a stack of its own (a fresh budget) ...")
            stack = Stack(work / "loop", db_url(), say=say)
            try:
                stack.up()
                outcomes.append(scenarios.crash_loop(stack, say))
            finally:
                stack.close()
        if wanted("database"):
            say("database restarted mid-incident (a private PostgreSQL) ...")
            outcomes.append(dbfault.database_restart(work / "database", say))
        say("")
        say("| fault | detected | healed | escalated | MTTR (p50) | actions | unsafe | storms |")
        say("|---|---|---|---|---|---|---|---|")
        for o in outcomes:
            say(row(o))
        say("")
        say("crash, kill -> HTTP 200 again (kill at a random point of the 1 s check cycle):")
        if isinstance(anchor, str):
            say(f"  {anchor}")
            m95 = None
        else:
            lat = anchor["latency_s"]
            assert isinstance(lat, dict)
            m95 = float(lat["p95"])
            say(
                f"  Monit {anchor.get('version')}, 1 s cycle: p50 {lat['p50']:.3f} s, "
                f"p95 {m95:.3f} s ({anchor['trials']} trials)"
            )
        for label, xs in (("ours, 1 s poll", polled), ("ours, exit watch", ours)):
            if xs:
                p50, p95 = pctl(xs, 50), pctl(xs, 95)
                ratio = f", p95 ratio to Monit {p95 / m95:.2f}x" if m95 else ""
                say(f"  {label}: p50 {p50:.3f} s, p95 {p95:.3f} s ({len(xs)} trials){ratio}")
        remediable = [o for o in outcomes if o.remediable]
        others = [o for o in outcomes if not o.remediable]
        healed = sum(1 for o in remediable if o.healed)
        escalated = sum(1 for o in others if o.escalated)
        say(
            f"healed {healed}/{len(remediable)} remediable; escalated {escalated}/{len(others)} others; "
            f"unsafe {sum(o.unsafe for o in outcomes)}; storms {sum(o.storms for o in outcomes)}"
        )
        say(f"total time {time.monotonic() - started:.0f} s")
    finally:
        for s in schemas:
            drop_schema(PG, s)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
