"""Host-agent footprint: our agent side by side with node_exporter, collectd and Glances.

Each anchor is run by ``../shared/anchors/agent_footprint.py`` (its own start-up, loopback only, temp
dirs); ours is started here against a real local server and measured with the anchors' own
``procstat.py``: steady-state RSS and PSS of the process tree and CPU % of one core over the window,
after a warm-up. Prints one table per interval with our ratio to each anchor. No assertions.

``--with-checks`` adds a run of our agent with health checks and actions configured, as an operator
would: 3 checks every 10 s (http against a loopback server this bench starts, tcp to the same
server, process by name) and 2 actions (a parameterised systemd restart, an http POST to the
loopback server), in pull mode with the tenant's webhook secret so the command poller runs too.
The bench counts the health requests its server answered, to show the checks really ran.

    .venv/bin/python bench/agent_footprint.py                       # 10 s and 1 s, 20 s warm-up, 90 s window
    .venv/bin/python bench/agent_footprint.py --intervals 10 --duration 30 --anchors none   # ours only
    .venv/bin/python bench/agent_footprint.py --intervals 10 --with-checks --anchor-agents node_exporter
    .venv/bin/python bench/agent_footprint.py --intervals 10 --with-checks --anchor-agents node_exporter \
        --runs 3

``--runs N`` repeats each interval's side-by-side measurement N times (every agent once per run,
in turn) and ends with the min-max of each figure over the runs, and of our ratios to each anchor
taken within each run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from ports import agent_port, announced_port

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ANCHORS = REPO.parent / "shared" / "anchors"
ANCHOR_AGENTS = ("node_exporter", "collectd", "glances")


def _wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


class _LocalApp(BaseHTTPRequestHandler):
    """The service the checks watch: ``GET /health`` and ``POST /admin/flush``, counted."""

    served: dict[str, int] = {}  # one counter per bench process, read at the end

    def do_GET(self) -> None:
        self._answer(b"status: healthy")

    def do_POST(self) -> None:
        self._answer(b"flushed")

    def _answer(self, body: bytes) -> None:
        self.served[self.path] = self.served.get(self.path, 0) + 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_app() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LocalApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def checks_config(app_port: int, process_name: str) -> dict[str, Any]:
    """The agent config of the ``--with-checks`` run: 3 checks every 10 s and 2 actions."""
    return {
        "checks": [
            {
                "type": "http",
                "name": "app-http",
                "url": f"http://127.0.0.1:{app_port}/health",
                "body_regex": "healthy",
                "interval_s": 10,
            },
            {"type": "tcp", "name": "app-tcp", "host": "127.0.0.1", "port": app_port, "interval_s": 10},
            {"type": "process", "name": "server-process", "process_name": process_name, "interval_s": 10},
        ],
        "actions": [
            {
                "name": "restart",
                "kind": "systemd",
                "op": "restart",
                "unit": "{unit}.service",
                "params": {"unit": "[a-z0-9][a-z0-9@_-]{0,63}"},
            },
            {
                "name": "flush-cache",
                "kind": "http",
                "method": "POST",
                "url": f"http://127.0.0.1:{app_port}/admin/flush",
            },
        ],
    }


def measure_ours(
    anchors: Path | None, interval: int, warmup: float, duration: float, *, with_checks: bool = False
) -> dict[str, Any]:
    if with_checks:
        with local_app() as app:
            _LocalApp.served.clear()
            result = _measure_ours(anchors, interval, warmup, duration, app.server_address[1])
            result["health_requests_served"] = _LocalApp.served.get("/health", 0)
            return result
    return _measure_ours(anchors, interval, warmup, duration, None)


def _measure_ours(
    anchors: Path | None, interval: int, warmup: float, duration: float, app_port: int | None
) -> dict[str, Any]:
    if anchors is not None:
        sys.path.insert(0, str(anchors))
    import procstat  # the anchors' sampler when available, so both sides are measured alike

    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    with tempfile.TemporaryDirectory(prefix="infragent-footprint-") as tmp:
        server_log = Path(tmp) / "server.log"
        with server_log.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "infragent", "server", "--port", "0"],
                env={
                    **env,
                    "INFRAGENT_DATA_DIR": f"{tmp}/server",
                    "INFRAGENT_LOG_LEVEL": "warning",
                    "INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the (unused) webhook is local
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        agent = None
        try:
            base = f"http://127.0.0.1:{announced_port(server, server_log)}"
            _wait_http(f"{base}/health/ready")
            reg = httpx.post(
                f"{base}/api/v1/clients/register",
                json={"email": "bench@example.com", "company_name": "Bench", "webhook_url": f"{base}/unused"},
            ).json()
            command = [sys.executable, "-m", "infragent.agent", "run"]
            extra: dict[str, str] = {}
            if app_port is not None:
                config = Path(tmp) / "agent.json"
                config.write_text(json.dumps(checks_config(app_port, Path(sys.executable).name)))
                command += ["--config", str(config)]
                extra["INFRAGENT_WEBHOOK_SECRET"] = reg["webhook_secret"]
            agent = subprocess.Popen(
                command,
                env={
                    **env,
                    "INFRAGENT_SERVER_URL": base,
                    "INFRAGENT_API_KEY": reg["api_key"],
                    "METRICS_INTERVAL": str(interval),
                    "HEALTH_CHECK_PORT": "0",
                    "INFRAGENT_AGENT_DATA_DIR": f"{tmp}/agent",
                    "LOG_LEVEL": "warning",
                    **extra,
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            health_port = agent_port(agent, Path(tmp) / "agent")
            _wait_http(f"http://127.0.0.1:{health_port}/health/live")
            time.sleep(warmup)
            if agent.poll() is not None:
                raise RuntimeError(f"our agent exited early with {agent.returncode}")
            result: dict[str, Any] = procstat.Sampler(agent.pid, tree=True).run(duration, every=0.5)
            metrics = httpx.get(f"http://127.0.0.1:{health_port}/metrics", timeout=5).text
            sent = [line for line in metrics.splitlines() if line.startswith("agent_points_sent_total")]
            result["points_sent_total"] = float(sent[0].split()[-1]) if sent else None
            result["agent"] = "infragent" if app_port is None else "infragent + 3 checks, 2 actions"
            result["interval_s"] = interval
            return result
        finally:
            for proc in (agent, server):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:  # e.g. a command long poll still held open
                        proc.kill()
                        proc.wait(5)


def measure_anchor(anchors: Path, name: str, interval: int, warmup: float, duration: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(anchors / "agent_footprint.py"),
        name,
        "--interval",
        str(interval),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + 120, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"agent": name, "interval_s": interval, "error": (proc.stderr or proc.stdout).strip()[-300:]}
    return dict(json.loads(lines[-1]))


def _row(r: dict[str, Any], ours: list[dict[str, Any]]) -> str:
    if "error" in r:
        return f"| {r['agent']} | - | - | - | failed: {r['error'][:80]} |"
    cells = [
        r["agent"],
        f"{r['rss_mib_mean']:.1f}",
        f"{r['pss_mib_mean'] or 0:.1f}",
        f"{r['cpu_pct_one_core']:.3f}",
    ]
    ratios = []
    for mine in ours if r not in ours else ():
        rss = mine["rss_mib_mean"] / r["rss_mib_mean"] if r["rss_mib_mean"] else float("nan")
        cpu = mine["cpu_pct_one_core"] / r["cpu_pct_one_core"] if r["cpu_pct_one_core"] else float("nan")
        label = "ours" if mine["agent"] == "infragent" else "ours with checks"
        ratios.append(f"{label}/this: RSS {rss:.2f}x, CPU {cpu:.2f}x")
    cells.append("; ".join(ratios))
    return "| " + " | ".join(cells) + " |"


def _span(values: list[float], digits: int) -> str:
    low, high = min(values), max(values)
    return (
        f"{low:.{digits}f}"
        if f"{low:.{digits}f}" == f"{high:.{digits}f}"
        else f"{low:.{digits}f}-{high:.{digits}f}"
    )


def summary(runs: list[list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: each agent's RSS, PSS and CPU as min-max over the runs, and our ratios."""
    ok = [[r for r in rows if "error" not in r] for rows in runs]
    names = list(dict.fromkeys(r["agent"] for rows in ok for r in rows))
    lines = [
        "| agent | runs | RSS MiB | PSS MiB | CPU % of one core | ratio (min-max over runs) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        mine = [r for rows in ok for r in rows if r["agent"] == name]
        ratios = []
        if not name.startswith("infragent"):
            for ours in dict.fromkeys(
                r["agent"] for rows in ok for r in rows if r["agent"].startswith("infragent")
            ):
                pairs = [
                    (o, a)
                    for rows in ok
                    for o in rows
                    for a in rows
                    if o["agent"] == ours
                    and a["agent"] == name
                    and a["rss_mib_mean"]
                    and a["cpu_pct_one_core"]
                ]
                if pairs:
                    rss = [o["rss_mib_mean"] / a["rss_mib_mean"] for o, a in pairs]
                    cpu = [o["cpu_pct_one_core"] / a["cpu_pct_one_core"] for o, a in pairs]
                    ratios.append(f"{ours}/this: RSS {_span(rss, 2)}x, CPU {_span(cpu, 2)}x")
        cells = [
            name,
            str(len(mine)),
            _span([r["rss_mib_mean"] for r in mine], 1),
            _span([r["pss_mib_mean"] or 0.0 for r in mine], 1),
            _span([r["cpu_pct_one_core"] for r in mine], 3),
            "; ".join(ratios),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--intervals", default="10,1", help="comma-separated seconds")
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--duration", type=float, default=90)
    parser.add_argument(
        "--anchors", default=str(DEFAULT_ANCHORS), help="anchors dir, or 'none' for ours only"
    )
    parser.add_argument(
        "--anchor-agents", default=",".join(ANCHOR_AGENTS), help="comma-separated anchors to run"
    )
    parser.add_argument(
        "--with-checks", action="store_true", help="also run our agent with 3 checks and 2 actions"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="side-by-side runs per interval (min-max at the end)"
    )
    parser.add_argument("--json", dest="json_out", help="also write all results as JSON lines here")
    args = parser.parse_args()
    anchors = None if args.anchors == "none" else Path(args.anchors)
    if anchors is not None and not (anchors / "agent_footprint.py").exists():
        print(f"anchors not found at {anchors}: measuring ours only", file=sys.stderr)
        anchors = None
    results: list[dict[str, Any]] = []
    for interval in (int(x) for x in args.intervals.split(",")):
        runs: list[list[dict[str, Any]]] = []
        for run in range(1, args.runs + 1):
            label = f", run {run} of {args.runs}" if args.runs > 1 else ""
            print(
                f"\n## interval {interval} s (warm-up {args.warmup:g} s, window {args.duration:g} s{label})",
                flush=True,
            )
            ours = [measure_ours(anchors, interval, args.warmup, args.duration)]
            if args.with_checks:
                print("   measuring ours with checks and actions ...", file=sys.stderr, flush=True)
                ours.append(measure_ours(anchors, interval, args.warmup, args.duration, with_checks=True))
                print(f"   health requests served: {ours[-1]['health_requests_served']}", file=sys.stderr)
            rows = list(ours)
            for name in args.anchor_agents.split(",") if anchors is not None else ():
                print(f"   measuring {name} ...", file=sys.stderr, flush=True)
                rows.append(measure_anchor(anchors, name.strip(), interval, args.warmup, args.duration))
            print("| agent | RSS MiB | PSS MiB | CPU % of one core | ratio |\n|---|---|---|---|---|")
            for r in rows:
                print(_row(r, ours))
            for r in rows:
                r["run"] = run
            runs.append(rows)
            results.extend(rows)
        if args.runs > 1:
            print(f"\n## interval {interval} s: {args.runs} runs", flush=True)
            print("\n".join(summary(runs)), flush=True)
    if args.json_out:
        Path(args.json_out).write_text("".join(json.dumps(r) + "\n" for r in results))


if __name__ == "__main__":
    main()
