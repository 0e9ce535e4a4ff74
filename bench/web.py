"""The dashboard's budgets (issue 12), measured against a real ``infragent server`` on loopback.

    .venv/bin/python bench/web.py                    # SQLite, ~2 min
    .venv/bin/python bench/web.py --db postgres      # a fresh schema, dropped afterwards
    .venv/bin/python bench/web.py --quick            # < 1 min
    .venv/bin/python bench/web.py --parts js,pages   # only some parts

The database is seeded first (``bench/web_seed.py``: a tenant, 100 users with sessions, 1,000 hosts
with an agent row and a ``metric_hosts`` row each, one host with 7 days of the agent's chart series
at 10 s, compacted as the server does), then a server subprocess opens it and the parts run:

1. **JavaScript on first load**: each page's HTML (overview, hosts, a host, incidents), every
   ``<script src>`` and stylesheet it names fetched from the server and gzipped at level 9; summed
   per page. Budget: JavaScript ≤ 100 KB (100,000 bytes) gzipped on every page.
2. **Server-side rendering**: ``--requests`` sequential GETs per page over one keep-alive
   connection (httpx, session cookie), after 3 warm-ups: the hosts page with 1,000 hosts
   (budget p95 ≤ 200 ms) and the host page of the week-long host (p95 ≤ 500 ms), at its default
   range and at the ranges its ``range-24h``/``range-7d`` links name; the next hosts page and a search too.
3. **Live stream**: ``bench/web_stream.py`` — ``--clients`` SSE connections to
   ``/api/v1/stream?host=H`` while a writer sends one batch of H per second for ``--duration``
   seconds; server CPU, delivery lag p50/p95/max, events delivered vs expected, clients dropped.

Every figure is printed with its budget and PASS/MISS; the exit code is 0 whatever they are (a
benchmark reports; tests assert behaviour). A page or route that does not exist yet is reported as
missing and its part skipped.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from ingest import pg_schema, server_process
from web_seed import HOST, Seeded, seed
from web_stream import StreamResult, settle
from web_stream import run as run_stream

from infragent.auth import sessions as tokens

PG_DSN = os.environ.get("INFRAGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
VENV_BIN = Path(sys.executable).parent
JS_BUDGET = 100_000
HOSTS_BUDGET_MS = 200.0
HOST_BUDGET_MS = 500.0
COLS = (6, 7, 10, 10, 10, 10)
Verdict = tuple[str, str, str, bool | None]  # (what, measured, budget, met; None: not measured)


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-int(q * 1000) * len(s) // 1000) - 1))]


def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "postgres":
        with pg_schema() as schema:
            yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-db-"))
    try:
        yield f"sqlite:///{tmp}/infragent.db"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def server(url: str) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``infragent server`` on ``url`` (already seeded), every setting at its default but the address."""
    with server_process({"INFRAGENT_DATABASE_URL": url}, "bench-web-") as (proc, port, tmp):
        yield proc, port, tmp / "server.log"


class Assets(HTMLParser):
    """Scripts and stylesheets a page names, and the ``href`` of each ``data-test`` link."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.links: dict[str, str] = {}
        self.tests: dict[str, int] = {}
        self.points: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "link" and "stylesheet" in a.get("rel", "").split() and a.get("href"):
            self.styles.append(a["href"])
        test = a.get("data-test")
        if test:
            self.tests[test] = self.tests.get(test, 0) + 1
            if tag == "a" and a.get("href"):
                self.links.setdefault(test, a["href"])
            if "data-points" in a:
                self.points[test] = a["data-points"]


def parse(html: str) -> Assets:
    p = Assets()
    p.feed(html)
    return p


PAGES = {"overview": "/", "hosts": "/hosts", "host": f"/hosts/{HOST}", "incidents": "/incidents"}


def js_weight(http: httpx.Client, verdicts: list[Verdict]) -> None:
    print("\n1. JavaScript and CSS on first load (gzip -9 of each file, summed per page)")
    head = ("page", "status", "scripts", "JS raw", "JS gzip", "CSS raw", "CSS gzip")
    print(f"   {head[0]:<10} " + " ".join(f"{h:>{w}}" for h, w in zip(head[1:], COLS, strict=True)))
    cache: dict[str, tuple[int, int]] = {}

    def weigh(base: str, refs: list[str]) -> tuple[int, int]:
        raw = packed = 0
        for ref in dict.fromkeys(refs):
            url = urljoin(base, ref)
            if url not in cache:
                r = http.get(url)
                body = r.content if r.status_code == 200 else b""
                if r.status_code != 200:
                    print(f"   ! {url}: {r.status_code}")
                cache[url] = (len(body), len(gzip.compress(body, compresslevel=9)))
            raw += cache[url][0]
            packed += cache[url][1]
        return raw, packed

    worst: int | None = None
    for name, path in PAGES.items():
        r = http.get(path)
        if r.status_code != 200:
            print(f"   {name:<10} {r.status_code:>6}   (page not there yet: skipped)")
            continue
        found = parse(r.text)
        js = weigh(str(r.url), found.scripts)
        css = weigh(str(r.url), found.styles)
        worst = max(worst or 0, js[1])
        cells = (r.status_code, len(found.scripts), *js, *css)
        print(f"   {name:<10} " + " ".join(f"{c:>{w},}" for c, w in zip(cells, COLS, strict=True)))
    verdicts.append(
        (
            "JS on first load, gzip (worst page)",
            "-" if worst is None else f"{worst / 1000:.1f} KB",
            "≤ 100 KB",
            None if worst is None else worst <= JS_BUDGET,
        )
    )


def timed(http: httpx.Client, path: str, n: int) -> tuple[list[float], httpx.Response]:
    """``n`` GETs of ``path`` after 3 warm-ups: (seconds each, the last response)."""
    r = http.get(path)
    for _ in range(2):
        r = http.get(path)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = http.get(path)
        r.read()
        times.append(time.perf_counter() - t0)
        if r.status_code != 200:
            break
    return times, r


def page_times(http: httpx.Client, n: int, verdicts: list[Verdict]) -> None:
    print(f"\n2. Server-side rendering: {n} sequential GETs each (ms)")
    print(f"   {'page':<34} {'status':>6} {'p50':>8} {'p95':>8} {'max':>8} {'KB':>7}  what it rendered")
    first = http.get("/hosts")
    host = http.get(f"/hosts/{HOST}")
    targets: list[tuple[str, str, float | None]] = [("/hosts", "/hosts", HOSTS_BUDGET_MS)]
    if first.status_code == 200:
        links = parse(first.text).links
        if "next-page" in links:
            targets.append(("/hosts, next page", links["next-page"], HOSTS_BUDGET_MS))
        targets.append(("/hosts?q=host-09 (search)", "/hosts?q=host-09", HOSTS_BUDGET_MS))
    targets.append((f"/hosts/{HOST} (default range)", f"/hosts/{HOST}", HOST_BUDGET_MS))
    if host.status_code == 200:
        links = parse(host.text).links
        for rng in ("range-24h", "range-7d"):
            if rng in links:
                targets.append((f"/hosts/{HOST} ({rng[6:]})", links[rng], HOST_BUDGET_MS))
    for label, path, budget in targets:
        times, r = timed(http, path, n)
        if r.status_code != 200:
            print(f"   {label:<34} {r.status_code:>6}   (not there yet: skipped)")
            verdicts.append((f"{label} p95", "-", f"≤ {budget:.0f} ms", None))
            continue
        ms = [t * 1000 for t in times]
        found = parse(r.text)
        what = f"{found.tests.get('host-row', 0)} host rows"
        if found.points:
            what = "points " + " ".join(f"{k[6:]}={v}" for k, v in sorted(found.points.items()))
        p95 = pct(ms, 0.95)
        print(
            f"   {label:<34} {r.status_code:>6} {pct(ms, 0.5):>8.1f} {p95:>8.1f} {max(ms):>8.1f} "
            f"{len(r.content) / 1000:>7.1f}  {what}"
        )
        if budget is not None:
            verdicts.append((f"{label} p95", f"{p95:.1f} ms", f"≤ {budget:.0f} ms", p95 <= budget))


def stream_part(
    port: int, pid: int, log_path: Path, seeded: Seeded, args: argparse.Namespace, verdicts: list[Verdict]
) -> None:
    print(
        f"\n3. Live stream: {args.clients} SSE clients on /api/v1/stream?host={HOST}, one batch/s for "
        f"{args.duration:g} s (baseline: the writer alone for {args.baseline:g} s)"
    )
    res: StreamResult = run_stream(
        port, pid, seeded.api_key, seeded.cookies, args.clients, args.duration, args.baseline
    )
    statuses: dict[int, int] = {}
    for c in res.clients:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    connected = sum(c.connected for c in res.clients)
    dropped = sum(c.ended_early for c in res.clients)
    got, expected = res.delivered()
    lags = [x * 1000 for x in res.lags]
    kinds: dict[str, int] = {}
    for c in res.clients:
        for k, v in c.events.items():
            kinds[k] = kinds.get(k, 0) + v
    print(f"   connect statuses: {statuses}; connected {connected}, dropped during the run {dropped}")
    if dropped:
        ends = sorted(c.ended_at - res.started for c in res.clients if c.ended_early)
        print(f"   ! streams ended early between {ends[0]:.1f} s and {ends[-1]:.1f} s into the writer's run")
        for line in log_path.read_text(errors="replace").splitlines()[-15:]:
            print(f"   ! server log: {line[:200]}")
    errors = {c.error for c in res.clients if c.error}
    for e in sorted(errors)[:3]:
        print(f"   ! {e}")
    print(f"   events received by kind: {kinds or '{}'}; heartbeats {sum(c.heartbeats for c in res.clients)}")
    print(
        f"   writer: {len(res.posted)} batches accepted, {res.post_errors} refused; POST round trip "
        f"p50 {pct(res.post_rtt, 0.5) * 1000:.1f} ms, p95 {pct(res.post_rtt, 0.95) * 1000:.1f} ms"
    )
    print(f"   metrics events delivered: {got:,} of {expected:,} expected")
    if lags:
        print(
            f"   delivery lag (sample ts → received): p50 {pct(lags, 0.5):.0f} ms, "
            f"p95 {pct(lags, 0.95):.0f} ms, max {max(lags):.0f} ms over {len(lags):,} events"
        )
    print(
        f"   server CPU: {res.base_cpu_per_s:.3f} CPU s/s with the writer alone, "
        f"{res.load_cpu_per_s:.3f} with {connected} clients "
        f"(+{res.load_cpu_per_s - res.base_cpu_per_s:.3f}); this load generator "
        f"{res.client_cpu_s / res.load_seconds:.3f} CPU s/s"
    )
    ok = connected == args.clients and dropped == 0
    verdicts.append(
        (
            "SSE clients connected, none dropped",
            f"{connected - dropped} of {args.clients}",
            "all",
            ok if connected else None,
        )
    )
    verdicts.append(
        ("SSE events delivered", f"{got:,} / {expected:,}", "all", (got == expected) if expected else None)
    )
    verdicts.append(
        ("SSE delivery lag p95", f"{pct(lags, 0.95):.0f} ms" if lags else "-", "(reported)", None)
    )
    cpu = f"{res.load_cpu_per_s:.3f} CPU s/s" if connected else "-"
    verdicts.append((f"server CPU, {connected} clients + 1 s updates", cpu, "(reported)", None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--quick", action="store_true", help="fewer requests, a 10 s stream: < 1 min")
    ap.add_argument("--parts", default="js,pages,stream", help="comma-separated: js, pages, stream")
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--days", type=float, default=7.0, help="history of the measured host")
    ap.add_argument("--requests", type=int, default=None, help="GETs per page (default 100; --quick 30)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--duration", type=float, default=None, help="stream seconds (default 30; --quick 10)")
    ap.add_argument(
        "--baseline", type=float, default=None, help="writer-alone seconds (default 10; --quick 5)"
    )
    args = ap.parse_args()
    args.requests = args.requests or (30 if args.quick else 100)
    args.duration = args.duration or (10.0 if args.quick else 30.0)
    args.baseline = args.baseline if args.baseline is not None else (5.0 if args.quick else 10.0)
    parts = set(args.parts.split(","))
    started = time.monotonic()
    verdicts: list[Verdict] = []
    with database(args.db) as url:
        print(
            f"seeding {args.db}: {args.hosts:,} hosts, {HOST} with {args.days:g} days at 10 s, "
            f"{args.clients} users"
        )
        seeded = seed(url, hosts=args.hosts, days=args.days, users_n=max(1, args.clients), now=time.time())
        print(
            "   "
            + ", ".join(f"{k} {v:.1f} s" for k, v in seeded.seconds.items())
            + f"; {seeded.host_points:,} points for {HOST}"
        )
        with server(url) as (proc, port, log_path):
            t = time.monotonic()
            idle = settle(proc.pid)  # start-up: the alert evaluator loads 1,000 hosts' windows
            print(f"   server up (pid {proc.pid}); {idle:.3f} CPU s/s after {time.monotonic() - t:.0f} s")
            cookies = {tokens.COOKIE: seeded.cookies[0]}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies=cookies, timeout=60) as http:
                if "js" in parts:
                    js_weight(http, verdicts)
                if "pages" in parts:
                    page_times(http, args.requests, verdicts)
            if "stream" in parts:
                stream_part(port, proc.pid, log_path, seeded, args, verdicts)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nBudgets ({args.db}, {time.monotonic() - started:.0f} s in all; machine load average {load})")
    width = max(len(v[0]) for v in verdicts) if verdicts else 10
    for what, measured, budget, ok in verdicts:
        print(f"   {what:<{width}}  {measured:>16}  {budget:>12}  {mark(ok)}")


if __name__ == "__main__":
    main()
