"""Notification benchmark: latency to the receivers, outbox throughput, and a receiver outage.

    .venv/bin/python bench/notify.py                      # ~15 min (a 10-minute outage)
    .venv/bin/python bench/notify.py --quick              # ~3 min (a 60 s outage)
    .venv/bin/python bench/notify.py --quick --skip-outage
    .venv/bin/python bench/notify.py --anchors none       # without Prometheus + Alertmanager

Every server is a real ``infragent server`` subprocess on loopback (``ingest.server_process``: port
0, temp data dir, stopped by PID), SQLite in a temp dir or a fresh PostgreSQL schema (dropped after);
the receivers are the test suite's stand-ins (``tests/support/standins``) on 127.0.0.1.

1. **Latency, incident → message** (``--incidents``, default 200; SQLite and PostgreSQL): a tenant
   with a webhook channel (Standard Webhooks signed) and a Slack incoming-webhook channel, one root
   route with ``group_wait: 0s`` and ``group_by: ["..."]`` (one notification per incident). Each
   trial POSTs an event of a new service (``POST /api/v1/events`` opens its incident in the same
   transaction) and waits until both stand-ins have its message. Figures: the incident's
   ``opened_at`` (server clock) → arrival at the webhook stand-in and at the Slack stand-in (the
   stand-ins stamp arrival with the same machine's clock), and POST sent → webhook arrival.
   Goal: opened → received ≤ 50 ms p95.
2. **Latency, gauge flip → webhook** (``--flip-trials``, SQLite): the same measurement as the
   Alertmanager anchor's, on our side: ``bench/alert_latency.py``'s agent-like sender ships
   ``bench_ok{trial}`` every 1 s, its rule (``bench_ok == 0``, ``for: 0s``) opens an incident, the
   route sends it to the webhook stand-in; latency = the gauge flips → the webhook arrives.
   **Theirs**: ``../shared/anchors/alert_latency.py`` (Prometheus + Alertmanager from Debian,
   scrape/eval 1 s, ``group_wait 0s``; gauge flip → Alertmanager's webhook arrives), run in the same
   invocation when ``prometheus`` is installed (the anchors' ``setup.sh``); the ratio is printed.
3. **Throughput** (PostgreSQL, 2 server processes): ``notify_load.throughput``.
4. **Outage** (``--outage-s``, default 600; 60 with ``--quick``): ``notify_load.outage``.

A benchmark reports; it asserts nothing and exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from notify_common import REPO, incident_of, pctl, registered_server, signing_secret, summary
from notify_load import Outage, Throughput, outage, throughput
from rule_eval_cost import create_rule, database

from support.standins import SlackStandIn, WebhookReceiver

DEFAULT_ANCHORS = REPO.parent / "shared" / "anchors"
GOAL_MS = 50.0
PARTS = ("latency", "flip", "throughput", "outage")


def latency(db: str, n: int) -> dict[str, list[float]]:
    """``n`` incidents, one at a time: opened → webhook / Slack, POST sent → webhook (seconds)."""
    out: dict[str, list[float]] = {"opened_hook": [], "opened_slack": [], "post_hook": [], "post_answer": []}
    secret = signing_secret()
    with (
        database(db) as url,
        WebhookReceiver(secret) as hook,
        SlackStandIn() as slack,
        registered_server(url, {}) as (_, tenant),
    ):
        tenant.webhook_and_slack(hook, slack, secret)
        for i in range(n):
            incident_id, sent, answered = tenant.event(f"lat-{i}")
            hook.wait_for(i + 1, timeout_s=30)
            slack.wait_for(i + 1, timeout_s=30)
            post = hook.received[i]
            incident = incident_of(post.json)
            if incident["id"] != incident_id or incident_id not in str(slack.received[i].json):
                raise RuntimeError(f"trial {i}: the messages are not about incident {incident_id}")
            opened = float(incident["opened_at"])
            out["opened_hook"].append(post.at - opened)
            out["opened_slack"].append(slack.received[i].at - opened)
            out["post_hook"].append(post.at - sent)
            out["post_answer"].append(answered - sent)
            if (i + 1) % 50 == 0:
                print(f"  {db}: {i + 1}/{n} incidents", flush=True)
    return out


FLIP_RULE = """\
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


def flip_latency(trials: int) -> list[float]:
    """Gauge flipped → our webhook arrives, as the anchor measures Alertmanager (seconds)."""
    from alert_latency import GaugeSender  # the same sender as the alert-latency bench

    lat: list[float] = []
    secret = signing_secret()
    with (
        database("sqlite") as url,
        WebhookReceiver(secret) as hook,
        registered_server(url, {}) as (_, tenant),
    ):
        tenant.webhook_and_slack(hook, None, secret, "BenchGaugeLow")
        create_rule(tenant.port, tenant.key, FLIP_RULE)
        sender = GaugeSender(tenant.port, tenant.key, 1.0)
        sender.start()
        try:
            for i in range(trials):
                trial = f"f{i + 1}"
                sender.set(trial, 1.0)
                sender.wait_accepted(trial, 1.0, 30)
                time.sleep(random.uniform(0, 1.0))  # a random phase of the 1 s send cycle
                t0 = time.time()
                sender.set(trial, 0.0)
                hook.wait_for(i + 1, timeout_s=30)
                post = hook.received[i]
                if incident_of(post.json)["labels"].get("trial") != trial:
                    raise RuntimeError(f"flip trial {trial}: the message is about another incident")
                lat.append(post.at - t0)
        finally:
            sender.stop()
    return lat


def anchor(anchors: Path | None, trials: int, runs: int) -> dict[str, Any]:
    """Prometheus + Alertmanager, flip → webhook, through ``bench/alert_latency.py``'s runner."""
    if anchors is None:
        return {"error": "not run (--anchors none)"}
    if not (anchors / "alert_latency.py").exists():
        return {"error": f"not run: no anchor scripts at {anchors}"}
    if shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None:
        return {
            "error": "not run: prometheus / prometheus-alertmanager are not installed (anchors' setup.sh)"
        }
    from alert_latency import run_theirs

    result: dict[str, Any] = run_theirs(anchors, trials, runs)
    return result


def report_latency(name: str, lat: dict[str, list[float]]) -> None:
    print(f"\n### latency, {name}: {len(lat['opened_hook'])} incidents, group_wait 0, one per incident\n")
    print(f"  incident opened → webhook stand-in received : {summary(lat['opened_hook'])}")
    print(f"  incident opened → Slack stand-in received   : {summary(lat['opened_slack'])}")
    print(f"  event POST sent → webhook stand-in received : {summary(lat['post_hook'])}")
    print(f"  (event POST round trip                       : {summary(lat['post_answer'])})")
    worst = max(pctl(lat["opened_hook"], 95), pctl(lat["opened_slack"], 95)) * 1000
    verdict = "met" if worst <= GOAL_MS else "NOT met"
    print(f"  goal opened → received ≤ {GOAL_MS:.0f} ms p95: {verdict} ({worst:.1f} ms)")


def report_flip(ours: list[float], theirs: dict[str, Any]) -> None:
    print("\n### latency, gauge flip → webhook received (ours vs Prometheus + Alertmanager)\n")
    print(f"  ours (SQLite, sender every 1 s)       : {summary(ours, 1.0)}")
    if "error" in theirs:
        print(f"  theirs: {theirs['error']}")
        return
    versions = f"{theirs.get('prometheus', '?').split()[2]} + {theirs.get('alertmanager', '?').split()[2]}"
    print(
        f"  theirs (Prometheus + Alertmanager {versions}, scrape/eval 1 s, group_wait 0s, "
        f"{theirs.get('runs', 1)} starts): {summary(theirs['all_s'], 1.0)}"
    )
    if ours:
        r50 = pctl(ours, 50) / pctl(theirs["all_s"], 50)
        r95 = pctl(ours, 95) / pctl(theirs["all_s"], 95)
        print(f"  ratio ours / theirs: p50 {r50:.2f}x, p95 {r95:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer trials and a 60 s outage (a smoke run)")
    ap.add_argument("--incidents", type=int, help="latency trials per database (default 200; 30 quick)")
    ap.add_argument("--flip-trials", type=int, help="gauge-flip trials each side (default 20; 3 quick)")
    ap.add_argument(
        "--throughput", type=int, help="notifications in the throughput run (default 2000; 300 quick)"
    )
    ap.add_argument("--outage-s", type=float, help="receiver outage in seconds (default 600; 60 quick)")
    ap.add_argument("--outage-incidents", type=int, default=20, help="incidents opened during the outage")
    ap.add_argument("--skip-outage", action="store_true")
    ap.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"which parts to run, comma-separated (default {','.join(PARTS)})",
    )
    ap.add_argument("--databases", default="sqlite,pg", help="latency databases: sqlite,pg")
    ap.add_argument("--anchors", default=str(DEFAULT_ANCHORS), help="anchors dir, or 'none'")
    args = ap.parse_args()
    quick = args.quick
    n = args.incidents or (30 if quick else 200)
    flips = args.flip_trials or (3 if quick else 20)
    tp = args.throughput or (300 if quick else 2000)
    outage_s = args.outage_s or (60.0 if quick else 600.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so finally-blocks stop every server
    anchors = None if args.anchors == "none" else Path(args.anchors)

    load_before = os.getloadavg()
    parts = set(args.parts.split(","))
    if args.skip_outage:
        parts.discard("outage")
    results: dict[str, dict[str, list[float]]] = {}
    for db in args.databases.split(",") if "latency" in parts else ():
        print(f"latency on {db}: {n} incidents …", flush=True)
        results[db] = latency(db, n)
    ours_flip: list[float] | None = None
    theirs: dict[str, Any] = {}
    if "flip" in parts:
        print(f"gauge flip → webhook, ours: {flips} trials …", flush=True)
        ours_flip = flip_latency(flips)
        print(f"gauge flip → webhook, theirs: {flips} trials …", flush=True)
        theirs = anchor(anchors, flips, 1 if quick else 4)
    tput = None
    if "throughput" in parts:
        print(f"throughput: {tp} notifications, 2 server processes on PostgreSQL …", flush=True)
        tput = throughput(tp)
    out = None
    if "outage" in parts:
        print(f"outage: {outage_s:.0f} s …", flush=True)
        out = outage("sqlite", outage_s, args.outage_incidents)
    report(results, ours_flip, theirs, tput, out)
    load = ", ".join(f"{a:.1f} → {b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    print(f"\nload average (1, 5, 15 min) at the start → the end: {load} on {os.cpu_count()} cores")


def report(
    results: dict[str, dict[str, list[float]]],
    ours_flip: list[float] | None,
    theirs: dict[str, Any],
    tput: Throughput | None,
    out: Outage | None,
) -> None:
    print("\n## Notifications\n")
    for db, lat in results.items():
        report_latency("SQLite" if db == "sqlite" else "PostgreSQL", lat)
    if ours_flip is not None:
        report_flip(ours_flip, theirs)
    if tput is None:
        print("\n### throughput: not run")
        return _report_outage(out)
    print("\n### throughput (PostgreSQL, 2 server processes sharing the outbox)\n")
    print(f"  produced {tput.produced} deliveries, received {tput.received} posts, {tput.unique} unique")
    print(f"  {tput.rate:.0f} notifications/s over {tput.seconds:.1f} s (both servers ready → last arrival)")
    for stage, (first, last) in tput.phases.items():
        print(
            f"    {stage:9}: from +{first - tput.ready_at:.1f} s to +{last - tput.ready_at:.1f} s after ready"
        )
    for worker, count in sorted(tput.per_worker.items()):
        print(f"    delivered by {worker}: {count}")
    if tput.note:
        print(f"  NOTE: {tput.note}")
    _report_outage(out)


def _report_outage(out: Outage | None) -> None:
    if out is not None:
        print(f"\n### receiver outage of {out.outage_s:.0f} s (SQLite, notify settings at their defaults)\n")
        lost = len(out.lost)
        print(f"  produced {out.produced}, delivered {out.unique} (lost {lost}), duplicates {out.duplicates}")
        if out.delays:
            print(
                f"  delay after recovery: p50 {pctl(out.delays, 50):.1f} s, max {max(out.delays):.1f} s "
                f"(goal every one ≤ 60 s: {'met' if max(out.delays) <= 60 else 'NOT met'})"
            )
    else:
        print("\n### receiver outage: not run")


if __name__ == "__main__":
    main()
