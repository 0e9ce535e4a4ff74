"""Alert latency side by side: a gauge flips → our incident is open / Prometheus + Alertmanager's webhook.

Theirs: ``../shared/anchors/alert_latency.py`` (Prometheus and Alertmanager on loopback, temp dirs,
stopped by PID): ``bench_ok == 0`` with ``for: 0s``, scrape and evaluation every 1 s, ``group_wait 0s``;
latency = gauge flipped → webhook received. The trials are spread over 4 starts of Prometheus
(``--anchor-runs``): each start fixes its own scrape-to-evaluation offset, shifting all its trials.

Ours: a real ``infragent server`` (SQLite in a temp dir or a fresh PostgreSQL schema, port 0, every
setting at its default), a tenant registered through the API, ``RULE_YAML`` created through the
rules API, and an agent-like sender that every ``interval`` reads the gauge and POSTs it as a native
batch (``wire.encode_batch`` through the agent's own HTTP client), as the agent ships a tick.
Latency = gauge flipped → the incident listed by ``GET /api/v1/incidents`` (polled back to back from
when the breach sample is accepted) and received on ``GET /api/v1/incidents/stream``. Also: breach
sample accepted (the POST's answer) → incident listed / streamed / its ``opened_at``.

Each trial uses a new ``trial`` label (a new series and alert group on both sides), waits until the
value 1 is in (scraped there, accepted here), pauses a random 0..max(1 s, interval) so the flip
falls at a random phase of the scrape/send cycle, and flips the gauge to 0. Percentiles are
nearest-rank (the anchors' ``procstat.pctl``) for both sides. Goals (issue #11): our p95 ≤ 0.8 x
theirs; breach accepted → incident open ≤ 50 ms p95.

``--defaults``: theirs with scrape/eval 1 m and ``group_wait`` 30 s, 10 gauges flipped at random
times in one run (the anchor's ``--parallel``); ours with the agent's 10 s interval, 10 trials in
sequence. The sides run at the same time (both idle between scrapes and sends): ~8 min.

    .venv/bin/python bench/alert_latency.py                     # 20 trials each side, ~3 min
    .venv/bin/python bench/alert_latency.py --quick             # 3 trials each side, < 60 s
    .venv/bin/python bench/alert_latency.py --defaults          # defaults on both sides, ~8 min
    .venv/bin/python bench/alert_latency.py --anchors none      # ours only

``--anchors`` defaults to ``../shared/anchors`` next to the checkout; from a git worktree pass the path.
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from ingest import infragent_server
from rule_eval_cost import create_rule, database

from infragent.agent.http import HttpClient, HttpError
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ANCHORS = REPO.parent / "shared" / "anchors"
#: The rule both sides evaluate, in our rule-file syntax (docs/rules.md).
RULE_YAML = """\
alert: BenchGaugeLow
kind: threshold
metric: bench_ok
function: last
window: 10s
op: "=="
value: 0
by: [trial]
for: 0s
"""


def pctl(values: list[float], p: float) -> float:
    """Nearest-rank percentile, as the anchors' ``procstat.pctl``."""
    xs = sorted(values)
    return xs[max(1, math.ceil(p / 100.0 * len(xs))) - 1] if xs else float("nan")


class GaugeSender:
    """An agent-like sender of one gauge: every ``interval_s`` one native batch with the value read
    at that tick, shipped at once. Ticks are on a fixed schedule, as the agent's collection loop."""

    def __init__(self, port: int, key: str, interval_s: float) -> None:
        self._client = HttpClient(f"http://127.0.0.1:{port}", timeout_s=30)
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": CONTENT_TYPE,
            "Content-Encoding": "gzip",
        }
        self._interval = interval_s
        self._lock = threading.Lock()
        self._trial, self._value = "warmup", 1.0
        self._stop = threading.Event()
        #: (trial, value) → wall time of the answer to the first accepted POST carrying it
        self.accepted: dict[tuple[str, float], float] = {}
        self.accepted_cv = threading.Condition()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="gauge-sender", daemon=True)

    def set(self, trial: str, value: float) -> None:
        with self._lock:
            self._trial, self._value = trial, value

    def wait_accepted(self, trial: str, value: float, timeout_s: float) -> float:
        with self.accepted_cv:
            if not self.accepted_cv.wait_for(lambda: (trial, value) in self.accepted, timeout_s):
                raise RuntimeError(f"no accepted sample {trial}={value} in {timeout_s} s: {self.errors[-3:]}")
            return self.accepted[(trial, value)]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._interval + 35)
        self._client.close()

    def _run(self) -> None:
        tick = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                trial, value = self._trial, self._value
            now = time.time()
            series = SeriesData("bench_ok", "1", "gauge", False, {"trial": trial}, [now], [value])
            batch = MetricBatch(uuid.uuid4().hex, "bench-host", {"host.name": "bench-host"}, [series])
            try:
                answer = self._client.request("POST", "/api/v1/metrics", encode_batch(batch), self._headers)
            except HttpError as exc:
                self.errors.append(str(exc))
            else:
                done = time.time()
                if answer.status // 100 == 2:
                    with self.accepted_cv:
                        self.accepted.setdefault((trial, value), done)
                        self.accepted_cv.notify_all()
                else:
                    self.errors.append(f"{answer.status} {answer.text()}")
            tick += self._interval
            self._stop.wait(max(0.0, tick - time.monotonic()))


class IncidentWatcher:
    """Records when each trial's incident is first seen open on ``GET /api/v1/incidents/stream``
    (the server polls its changes every 0.25 s for the stream; docs/api.md)."""

    def __init__(self, port: int, key: str) -> None:
        self._url = f"http://127.0.0.1:{port}/api/v1/incidents/stream"
        self._headers = {"authorization": f"Bearer {key}"}
        self.seen: dict[str, float] = {}
        self.cv = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="incident-watcher", daemon=True)
        self._ready: queue.Queue[str] = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))

    def start(self, timeout_s: float = 30) -> None:
        self._thread.start()
        got = self._ready.get(timeout=timeout_s)
        if got != "ok":
            raise RuntimeError(f"the incident stream did not open: {got}")

    def wait(self, trial: str, timeout_s: float) -> float:
        with self.cv:
            if not self.cv.wait_for(lambda: trial in self.seen, timeout_s):
                raise RuntimeError(f"no incident for trial {trial} on the stream within {timeout_s} s")
            return self.seen[trial]

    def stop(self) -> None:
        """Close the stream first: a server stopping waits for open connections to end."""
        self._stop.set()
        self._client.close()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self._url, headers=self._headers) as r:
                if r.status_code != 200:
                    self._ready.put(f"{r.status_code} {r.read()[:300]!r}")
                    return
                self._ready.put("ok")
                data: list[str] = []
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        self._note(json.loads("\n".join(data)).get("incident", {}), time.time())
                        data = []
        except (httpx.HTTPError, OSError, RuntimeError) as exc:  # RuntimeError: closed by stop()
            self._ready.put(repr(exc))
            if not self._stop.is_set():
                print(f"  incident stream ended: {exc!r}", file=sys.stderr)

    def _note(self, incident: dict[str, Any], at: float) -> None:
        trial = (incident.get("labels") or {}).get("trial")
        if trial is not None and incident.get("status") in OPEN:
            with self.cv:
                self.seen.setdefault(trial, at)
                self.cv.notify_all()


OPEN = ("open", "acknowledged", "remediating")


def visible(http: httpx.Client, trial: str, timeout_s: float) -> tuple[float, float, float]:
    """Poll ``GET /api/v1/incidents`` back to back until the trial's incident is listed open:
    (when the answer that listed it arrived, that request's round trip, the incident's
    ``opened_at``). Started when the breach sample is accepted, so it polls for a few ms to a few
    hundred, never between trials; the commit happened at most one round trip before the answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sent = time.time()
        r = http.get("/api/v1/incidents", params={"status": list(OPEN), "limit": 50})
        at = time.time()
        r.raise_for_status()
        for incident in r.json()["incidents"]:
            if incident["labels"].get("trial") == trial:
                return at, at - sent, float(incident["opened_at"])
        time.sleep(0.002)
    raise RuntimeError(f"no incident for trial {trial} in GET /api/v1/incidents within {timeout_s} s")


def transition_latency(port: int) -> tuple[int, float]:
    """The server's own histogram (batch handed to the evaluator → its transition committed):
    (transitions counted, share within 50 ms)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    buckets = {}
    for line in text.splitlines():
        if line.startswith("infragent_alert_transition_latency_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0.0)
    return int(total), (buckets.get("0.05", 0.0) / total if total else float("nan"))


FIGURES = ("flip_poll", "flip_stream", "accepted_poll", "accepted_stream", "accepted_opened")


def run_ours(args: argparse.Namespace, trials: int, interval_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {k: [] for k in (*FIGURES, "poll_rtt")}
    pause_max = max(1.0, interval_s)
    with database(args.database) as url, infragent_server(url, args.ingest_processes) as (_, port, key, _):
        create_rule(port, key, RULE_YAML)
        watcher = IncidentWatcher(port, key)
        sender = GaugeSender(port, key, interval_s)
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {key}"}, timeout=30
        )
        watcher.start()
        sender.start()
        try:
            for i in range(trials):
                trial = f"g{i + 1}"
                sender.set(trial, 1.0)
                sender.wait_accepted(trial, 1.0, 3 * interval_s + 30)
                time.sleep(random.uniform(0, pause_max))
                t0 = time.time()
                sender.set(trial, 0.0)
                accepted = sender.wait_accepted(trial, 0.0, 3 * interval_s + 30)
                seen_poll, rtt, opened_at = visible(http, trial, 60)
                out["poll_rtt"].append(rtt)
                seen_stream = watcher.wait(trial, 60)
                for name, value in zip(
                    FIGURES,
                    (
                        seen_poll - t0,
                        seen_stream - t0,
                        seen_poll - accepted,
                        seen_stream - accepted,
                        opened_at - accepted,
                    ),
                    strict=True,
                ):
                    out[name].append(value)
                print(
                    f"  ours trial {i + 1}: flip → incident {out['flip_poll'][-1]:.3f} s "
                    f"(stream {out['flip_stream'][-1]:.3f} s), accepted → incident "
                    f"{out['accepted_poll'][-1] * 1000:.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )
            out["server_histogram"] = transition_latency(port)
        finally:
            sender.stop()
            watcher.stop()
            http.close()
    return out


def anchor_command(anchors: Path, trials: int, defaults: bool) -> list[str]:
    cmd = [sys.executable, str(anchors / "alert_latency.py"), "--mode", "gauge"]
    if defaults:
        return [*cmd, "--parallel", str(trials), "--scrape", "1m", "--eval", "1m", "--group-wait", "30s"]
    return [*cmd, "--trials", str(trials), "--scrape", "1s", "--eval", "1s", "--group-wait", "0s"]


def start_anchor(anchors: Path, trials: int, defaults: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        anchor_command(anchors, trials, defaults),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish_anchor(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    """The anchor's JSON line; it stops its own servers on SIGTERM (a finally-block), so a run past
    ``timeout_s`` is ended that way, never left behind."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        return {"error": f"timed out after {timeout_s:.0f} s; {err.strip()[-300:]}"}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (err or out).strip()[-500:]}
    result = json.loads(lines[-1])
    gauge = result["latency_s"].get("gauge") or result["latency_s"]["gauge_parallel"]
    return {**result, "all_s": gauge["all_s"]}


def run_theirs(anchors: Path, trials: int, runs: int) -> dict[str, Any]:
    """``trials`` trials over ``runs`` starts of Prometheus + Alertmanager, pooled.

    Why several starts: Prometheus fixes the offset between a target's scrape and the rule group's
    evaluation when it starts, so within one run every trial waits the same extra 0..1 s for the
    evaluation after the scrape (measured here: a run's fastest trial anywhere from 0.07 to 0.94 s).
    A user gets whichever offset their server started with; pooling runs samples it."""
    pooled: list[float] = []
    result: dict[str, Any] = {}
    for k in range(runs):
        n = trials // runs + (1 if k < trials % runs else 0)
        if n == 0:
            continue
        print(
            f"theirs: Prometheus + Alertmanager, start {k + 1}/{runs}, {n} trials …",
            file=sys.stderr,
            flush=True,
        )
        result = finish_anchor(start_anchor(anchors, n, False), 60 + 15 * n)
        if "error" in result:
            return result
        pooled += result["all_s"]
        print(f"  theirs start {k + 1}: {', '.join(f'{x:.3f}' for x in result['all_s'])} s", file=sys.stderr)
    return {**result, "all_s": pooled, "runs": runs}


def effective_defaults(anchors: Path) -> str:
    """What the installed Prometheus and Alertmanager use when nothing is configured."""
    out = subprocess.run(
        ["bash", str(anchors / "alert_defaults.sh")], capture_output=True, text=True, timeout=120, check=False
    )
    return out.stdout.strip() or out.stderr.strip()[-300:]


def row(name: str, setup: str, xs: list[float], unit: str = "s") -> str:
    if not xs:
        return f"| {name} | {setup} | 0 | - | - | - | - |"
    k = 1000.0 if unit == "ms" else 1.0
    cells = [
        f"{v * k:.3f}" if unit == "s" else f"{v * k:.1f}"
        for v in (min(xs), pctl(xs, 50), pctl(xs, 95), max(xs))
    ]
    return f"| {name} | {setup} | {len(xs)} | " + " | ".join(cells) + f" {unit} |"


def version(banner: str) -> str:
    """``prometheus, version 2.42.0+ds (branch: …)`` → ``2.42.0``."""
    return banner.split("version ", 1)[-1].split()[0].split("+")[0]


def ratio(name: str, ours: list[float], theirs: list[float]) -> str:
    r50, r95 = pctl(ours, 50) / pctl(theirs, 50), pctl(ours, 95) / pctl(theirs, 95)
    verdict = "met" if r95 <= 0.8 else "NOT met"
    return f"ours ({name}) / theirs: p50 {r50:.2f}x, p95 {r95:.2f}x (goal p95 ≤ 0.80x: {verdict})"


def report(
    args: argparse.Namespace, ours: dict[str, Any], theirs: dict[str, Any] | None, interval_s: float
) -> None:
    mode = "defaults on both sides" if args.defaults else "1 s scrape/eval and send interval"
    db = "PostgreSQL" if args.database == "pg" else "SQLite"
    print(f"\n## alert latency, {mode}: a gauge flips → the alert is delivered\n")
    print("| side | what is timed | trials | min | p50 | p95 | max |\n|---|---|---|---|---|---|---|")
    if theirs is not None and "error" not in theirs:
        setup = "scrape/eval 1 m, group_wait 30 s" if args.defaults else "scrape/eval 1 s, group_wait 0 s"
        versions = (
            f"Prometheus {version(theirs['prometheus'])} + Alertmanager {version(theirs['alertmanager'])}"
        )
        starts = f", {theirs.get('runs', 1)} starts" if not args.defaults else ""
        print(row(f"theirs: {versions}", f"flip → webhook received ({setup}{starts})", theirs["all_s"]))
    ours_name = f"ours: InfrAgent, {db}, agent-like sender every {interval_s:g} s"
    for name, what, key, unit in (
        (ours_name, "flip → incident listed by GET /api/v1/incidents", "flip_poll", "s"),
        (ours_name, "flip → incident on the SSE stream", "flip_stream", "s"),
        ("ours", "breach sample accepted → incident listed", "accepted_poll", "ms"),
        ("ours", "  (round trip of the GET that listed it)", "poll_rtt", "ms"),
        ("ours", "breach sample accepted → incident on the stream", "accepted_stream", "ms"),
        ("ours", "breach sample accepted → incident `opened_at` (server clock)", "accepted_opened", "ms"),
    ):
        print(row(name, what, ours[key], unit))
    n, within = ours.get("server_histogram", (0, float("nan")))
    print(
        f"\nserver histogram (batch handed to the evaluator → transition committed): {n} transitions, "
        f"{within * 100:.0f} % within 50 ms"
    )
    if theirs is None:
        print("theirs: not run (no anchors)")
    elif "error" in theirs:
        print(f"theirs failed: {theirs['error']}")
    elif ours["flip_poll"]:
        print(ratio("incident listed", ours["flip_poll"], theirs["all_s"]))
        print(ratio("on the stream", ours["flip_stream"], theirs["all_s"]))
    if ours["accepted_poll"]:
        p95 = pctl(ours["accepted_poll"], 95) * 1000
        verdict = "met" if p95 <= 50 else "NOT met"
        print(f"breach sample accepted → incident listed: p95 {p95:.1f} ms (goal ≤ 50 ms: {verdict})")
    if args.defaults:
        print(
            f"trials: theirs {args.trials} gauges flipped at random times in one run, "
            f"ours {args.trials} in sequence"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--trials", type=int, help="trials each side (default 20; 10 with --defaults; 3 with --quick)"
    )
    ap.add_argument("--quick", action="store_true", help="3 trials each side: a smoke run in < 60 s")
    ap.add_argument("--defaults", action="store_true", help="defaults on both sides (~6 min)")
    ap.add_argument("--anchors", default=str(DEFAULT_ANCHORS), help="anchors dir, or 'none' for ours only")
    ap.add_argument(
        "--anchor-runs",
        type=int,
        help="Prometheus starts the anchor trials are spread over (default 4; 1 quick)",
    )
    ap.add_argument("--database", choices=["sqlite", "pg"], default="sqlite")
    ap.add_argument("--ingest-processes", type=int, default=0, help="INFRAGENT_INGEST_PROCESSES (PostgreSQL)")
    ap.add_argument("--json", dest="json_out", help="also write the raw figures as one JSON line here")
    args = ap.parse_args()
    if args.quick and args.defaults:
        ap.error(
            "--defaults cannot be quick: Prometheus' 1 m default scrape alone takes minutes; drop --quick"
        )
    args.trials = args.trials or (3 if args.quick else 10 if args.defaults else 20)
    args.anchor_runs = args.anchor_runs or (1 if args.quick or args.defaults else 4)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so finally-blocks stop every server
    anchors = None if args.anchors == "none" else Path(args.anchors)
    if anchors is not None and not (anchors / "alert_latency.py").exists():
        print(f"anchors not found at {anchors}: measuring ours only (pass --anchors PATH)", file=sys.stderr)
        anchors = None
    elif anchors is not None and shutil.which("prometheus") is None:
        print("prometheus is not installed (the anchors' setup.sh installs it): ours only", file=sys.stderr)
        anchors = None
    interval_s = 10.0 if args.defaults else 1.0
    theirs: dict[str, Any] | None = None
    anchor: subprocess.Popen[str] | None = None
    try:
        if anchors is not None and args.defaults:
            print(
                "theirs, effective defaults (alert_defaults.sh):\n" + effective_defaults(anchors),
                file=sys.stderr,
            )
            anchor = start_anchor(anchors, args.trials, True)  # runs alongside ours
        elif anchors is not None:
            theirs = run_theirs(anchors, args.trials, args.anchor_runs)
        print(f"ours: InfrAgent, {args.trials} trials …", file=sys.stderr, flush=True)
        ours = run_ours(args, args.trials, interval_s)
        if anchor is not None:
            theirs = finish_anchor(anchor, 590)
            anchor = None
    finally:
        if anchor is not None and anchor.poll() is None:
            anchor.send_signal(signal.SIGTERM)
            anchor.communicate(timeout=60)
    report(args, ours, theirs, interval_s)
    if args.json_out:
        line = {"bench": "alert_latency", "defaults": args.defaults, "ours": ours, "theirs": theirs}
        with open(args.json_out, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
