"""The notification benchmark's load parts: outbox throughput with two server processes, and a
receiver outage (``bench/notify.py`` runs them and prints the figures).

**Throughput** (PostgreSQL): a server with the pipeline off (``INFRAGENT_NOTIFY_ENABLED=false``)
takes ``n`` events, each opening an incident whose change waits in the outbox; it stops, and two
server processes with the pipeline on start at once on the same database. They share the work
(claims with ``FOR UPDATE SKIP LOCKED``): route the changes, flush the groups, send the deliveries
to the webhook stand-in. Rate = notifications received / (last arrival - both servers ready); the
split per process is counted from ``notify_attempts.worker`` of the delivered attempts.

**Outage**: a server with every notify setting at its default (backoff base 1 s, cap 30 s, retries
for 1 h); the webhook stand-in goes down (connection refused), one incident opens every
``outage_s / n`` seconds for the whole outage, the stand-in comes back after ``outage_s``. Produced
= deliveries in the outbox; delivered = unique ``webhook-id``s received; duplicates = posts - unique;
recovery delay = arrival - the moment the stand-in listened again (goal: every one ≤ 60 s).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg
from notify_common import Tenant, database, incident_of, registered_server, server_process, signing_secret

from support.standins import WebhookReceiver


@dataclass
class Throughput:
    produced: int = 0
    received: int = 0
    unique: int = 0
    seconds: float = 0.0
    per_worker: dict[str, int] = field(default_factory=dict)
    #: stage → (first, last) wall time, and when both servers were ready
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)
    ready_at: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.unique / self.seconds if self.seconds else float("nan")


def _delivered_by_worker(url: str) -> dict[str, int]:
    dsn, _, options = url.partition("?options=")
    search_path = options.replace("-csearch_path%3D", "")
    with psycopg.connect(dsn, autocommit=True, options=f"-csearch_path={search_path}") as c:
        rows = c.execute(
            "SELECT worker, count(*) FROM notify_attempts WHERE outcome = 'delivered' GROUP BY worker"
        ).fetchall()
    return {str(w): int(n) for w, n in rows}


def _phases(url: str) -> dict[str, tuple[float, float]]:
    """(first, last) time of each stage in the outbox: changes routed, deliveries created (group
    flushes), deliveries recorded delivered; which stage the rate is bound by."""
    dsn, _, options = url.partition("?options=")
    search_path = options.replace("-csearch_path%3D", "")
    queries = {
        "routed": "SELECT min(processed_at), max(processed_at) FROM notify_changes",
        "flushed": "SELECT min(created_at), max(created_at) FROM notify_deliveries",
        "delivered": "SELECT min(delivered_at), max(delivered_at) FROM notify_deliveries",
    }
    out: dict[str, tuple[float, float]] = {}
    with psycopg.connect(dsn, autocommit=True, options=f"-csearch_path={search_path}") as c:
        for name, query in queries.items():
            row = c.execute(query).fetchone()
            if row and row[0] is not None:
                out[name] = (float(row[0]), float(row[1]))
    return out


def _produced(url: str) -> int:
    dsn, _, options = url.partition("?options=")
    search_path = options.replace("-csearch_path%3D", "")
    with psycopg.connect(dsn, autocommit=True, options=f"-csearch_path={search_path}") as c:
        row = c.execute("SELECT count(*) FROM notify_deliveries").fetchone()
    return int(row[0]) if row else 0


def throughput(n: int, processes: int = 2, timeout_s: float = 600.0) -> Throughput:
    """``n`` notifications through the outbox shared by ``processes`` servers on PostgreSQL."""
    out = Throughput()
    secret = signing_secret()
    with database("pg") as url, WebhookReceiver(secret) as hook:
        print(f"  throughput: {n} incidents into the outbox (pipeline off) …", flush=True)
        with registered_server(url, {"INFRAGENT_NOTIFY_ENABLED": "false"}) as (_, tenant):
            tenant.webhook_and_slack(hook, None, secret)
            tenant.events([f"tp-{i}" for i in range(n)])
        env = {"INFRAGENT_DATABASE_URL": url, "INFRAGENT_API_RATE_LIMIT_PER_KEY": "0"}
        with ExitStack() as stack:
            cms = [server_process(env, f"bench-notify-{k}-") for k in range(processes)]
            # entered at once, so neither drains the outbox alone while the other starts
            with ThreadPoolExecutor(processes) as pool:
                list(pool.map(lambda cm: stack.enter_context(cm), cms))
            ready = time.time()
            print(f"  throughput: {processes} servers ready, sharing the outbox …", flush=True)
            deadline = time.monotonic() + timeout_s
            while len({p.headers["webhook-id"] for p in hook.received}) < n and time.monotonic() < deadline:
                time.sleep(0.2)
            arrivals = [p.at for p in hook.received]
        out.received = len(hook.received)
        out.unique = len({p.headers["webhook-id"] for p in hook.received})
        out.seconds = (max(arrivals) - ready) if arrivals else 0.0
        out.produced = _produced(url)
        out.per_worker = _delivered_by_worker(url)
        out.phases = _phases(url)
        out.ready_at = ready
        if out.unique < n:
            out.note = f"only {out.unique} of {n} received within {timeout_s:.0f} s"
    return out


@dataclass
class Outage:
    outage_s: float
    produced: int = 0
    unique: int = 0
    received: int = 0
    delays: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.received - self.unique


def outage(db: str, outage_s: float, incidents: int, after_s: float = 120.0) -> Outage:
    """The webhook stand-in down for ``outage_s`` while ``incidents`` open, evenly spread."""
    out = Outage(outage_s)
    secret = signing_secret()
    with database(db) as url, WebhookReceiver(secret) as hook:
        with registered_server(url, {}) as (_, tenant):
            tenant.webhook_and_slack(hook, None, secret)
            hook.down()
            down_at = time.monotonic()
            print(
                f"  outage: receiver down for {outage_s:.0f} s, {incidents} incidents opening …", flush=True
            )
            opened: list[str] = []
            for k in range(incidents):
                time.sleep(max(0.0, down_at + k * outage_s / incidents - time.monotonic()))
                opened.append(tenant.event(f"outage-{k}")[0])
            time.sleep(max(0.0, down_at + outage_s - time.monotonic()))
            hook.up()
            up_at = time.time()
            print("  outage: receiver back; waiting for the backlog …", flush=True)
            deadline = time.monotonic() + after_s
            while (
                len({p.headers["webhook-id"] for p in hook.received}) < incidents
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            # anything more (a duplicate) would come within a backoff cap: watch that long too
            time.sleep(30.0)
            out.produced = _count_deliveries(tenant)
        ids: Counter[str] = Counter(p.headers["webhook-id"] for p in hook.received)
        out.unique, out.received = len(ids), sum(ids.values())
        first: dict[str, float] = {}
        for p in hook.received:
            first.setdefault(p.headers["webhook-id"], p.at)
        out.delays = [at - up_at for at in first.values()]
        seen = {incident_of(p.json)["id"] for p in hook.received}
        out.lost = [i for i in opened if i not in seen]
    return out


def _count_deliveries(tenant: Tenant) -> int:
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = tenant.http.get("/api/v1/notify/deliveries", params=params)
        if page.status_code != 200:
            with contextlib.suppress(ValueError):
                print(f"  deliveries API: {page.status_code} {page.json()}")
            return -1
        body = page.json()
        total += len(body["deliveries"])
        cursor = body.get("next_cursor")
        if not cursor:
            return total
